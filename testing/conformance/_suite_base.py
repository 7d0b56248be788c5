"""What every conformance suite (transport, service, client) shares: the bounds of its waits,
the base class of its test classes, and :class:`Recorder`, the callback tests wait on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest

from transports.base import NoRespondersError, Transport, TransportEvent, TransportEventKind

from .backend import CAP_TRIO, ConformanceBackend

__all__ = ["QUIET", "WAIT", "Recorder", "SuiteBase", "assert_no_responders"]

WAIT = 10.0
"""Upper bound (seconds) of any wait for something that must happen; generous for busy CI
machines."""

QUIET = 0.1
"""Bounded wait (seconds) for something that must NOT happen."""


class SuiteBase:
    """The anyio marker, and the skip by declared capability (never by transport name)."""

    pytestmark = pytest.mark.anyio

    @pytest.fixture(autouse=True)
    def _declared_capabilities(
        self, conformance_backend: ConformanceBackend, anyio_backend_name: str
    ) -> None:
        if anyio_backend_name == "trio" and CAP_TRIO not in conformance_backend.capabilities:
            pytest.skip("the backend does not declare the 'trio' capability")


async def assert_no_responders(requester: Transport, *subjects: str) -> None:
    """Assert that nothing at the broker subscribes to any of ``subjects``: a request to
    each gets the no-responders status (bounded by :data:`WAIT` in all)."""
    with anyio.fail_after(WAIT):
        for subject in subjects:
            with pytest.raises(NoRespondersError):
                await requester.request(subject, timeout=WAIT)


class Recorder:
    """A sync callback -- a service notification handler, or a transport event listener --
    that records the arguments of every call; tests wait on it with bounded waits."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self._changed = anyio.Event()

    def __call__(self, *args: Any) -> None:
        self.calls.append(args)
        self._changed.set()
        self._changed = anyio.Event()

    @property
    def events(self) -> list[TransportEvent]:
        """As an event listener: the events received, in order."""
        return [event for (event,) in self.calls]

    def kinds(self) -> list[TransportEventKind]:
        """As an event listener: the kinds of the events received, in order."""
        return [event.kind for event in self.events]

    async def wait_until(self, done: Callable[[], bool], limit: float = WAIT) -> None:
        """Return once ``done()`` holds (checked after every call); ``TimeoutError`` after
        ``limit`` seconds."""
        with anyio.fail_after(limit):
            while not done():
                await self._changed.wait()

    async def wait(self, count: int = 1, limit: float = WAIT) -> list[tuple[Any, ...]]:
        """The calls, once there are at least ``count``."""
        await self.wait_until(lambda: len(self.calls) >= count, limit)
        return self.calls

    async def wait_for_event(self, kind: TransportEventKind) -> TransportEvent:
        """As an event listener: the first event of ``kind``, once there is one."""
        await self.wait_until(lambda: kind in self.kinds())
        return next(event for event in self.events if event.kind is kind)

    async def stays_below(self, count: int, quiet: float = QUIET) -> bool:
        """True when fewer than ``count`` calls happened within ``quiet`` seconds."""
        with anyio.move_on_after(quiet):
            await self.wait(count, limit=quiet + 1)
        return len(self.calls) < count
