"""Shared pieces of the reliability suite: fault drivers, event recorders, a bounded load
generator, task-leak checks and the figures the suite prints.

A :class:`FaultDriver` hides *how* a transport loses its broker, so one scenario body runs on
every transport that can simulate the fault:

* :class:`NatsFaultDriver` kills a real nats-server (SIGKILL) and starts it again on the same
  port; its connections reconnect by themselves (nats-py);
* :class:`MemoryFaultDriver` makes every connection of a ``MemoryBroker`` lose the broker
  (``MemoryTransport.force_disconnect``) and get it back (``force_reconnect``).

Nothing here sleeps to synchronize: waits are on events (transport events, the load
generator's outcomes), bounded by ``anyio.fail_after``.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import math
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread

from testing.nats_server import NatsServer
from transports.base import (
    Msg,
    NoRespondersError,
    RequestTimeoutError,
    Transport,
    TransportEvent,
    TransportEventKind,
)
from transports.runtime import current_async_library

__all__ = [
    "FIGURES",
    "CLEAN_FAILURES",
    "EventLog",
    "FaultDriver",
    "Load",
    "MemoryFaultDriver",
    "NatsFaultDriver",
    "Outcome",
    "assert_no_leftover_tasks",
    "live_tasks",
    "percentile",
    "poll_until",
]

FIGURES: list[tuple[str, str]] = []
"""``(test, figure)`` lines collected by the tests; the conftest prints them at the end."""

CLEAN_FAILURES: tuple[type[Exception], ...] = (RequestTimeoutError, NoRespondersError)
"""How a request may fail while the broker is away: a prompt "nobody is subscribed" or a
timeout at its own deadline.  Anything else is a bug."""


def percentile(values: Iterable[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank) of ``values``; ``nan`` for none."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank]


# ---------------------------------------------------------------------- events


class EventLog:
    """Records one connection's events; :meth:`wait_for` waits (bounded) for a kind."""

    def __init__(self, transport: Transport) -> None:
        self.events: list[tuple[float, TransportEvent]] = []
        self._changed = anyio.Event()
        self._remove = transport.add_event_listener(self._record)

    def _record(self, event: TransportEvent) -> None:
        self.events.append((time.monotonic(), event))
        self._changed.set()
        self._changed = anyio.Event()

    def kinds(self) -> list[TransportEventKind]:
        return [event.kind for _, event in self.events]

    def count(self, kind: TransportEventKind) -> int:
        return self.kinds().count(kind)

    def errors(self) -> list[BaseException]:
        return [event.error for _, event in self.events if event.error is not None]

    async def wait_for(
        self, kind: TransportEventKind, *, count: int = 1, within: float = 10
    ) -> float:
        """Wait (at most ``within`` seconds) until ``count`` events of ``kind`` were seen;
        return when the last one came."""
        with anyio.fail_after(within):
            while self.count(kind) < count:
                await self._changed.wait()
        return [at for at, event in self.events if event.kind is kind][count - 1]

    async def wait_until(self, condition: Callable[[], bool], *, within: float = 10) -> None:
        """Wait (at most ``within`` seconds) until ``condition()`` holds, checking it after
        every event."""
        with anyio.fail_after(within):
            while not condition():
                await self._changed.wait()

    def close(self) -> None:
        self._remove()


# ---------------------------------------------------------------------- fault drivers


class FaultDriver(abc.ABC):
    """Connections to one broker, and a way to take that broker away and give it back."""

    label: str

    def __init__(self) -> None:
        self._made: list[Transport] = []

    async def connect(self, name: str) -> Transport:
        """A connection that survives outages (it reconnects by itself)."""
        transport = await self._connect(name)
        self._made.append(transport)
        return transport

    @abc.abstractmethod
    async def _connect(self, name: str) -> Transport: ...

    @abc.abstractmethod
    async def go_down(self) -> None:
        """Every connection loses the broker (returns once the fault is in place)."""

    @abc.abstractmethod
    async def come_back(self) -> None:
        """The broker is reachable again; connections reconnect by themselves."""

    @contextlib.asynccontextmanager
    async def outage(self) -> AsyncIterator[None]:
        """``async with driver.outage():`` -- down on entry, back on exit (even on error)."""
        await self.go_down()
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                await self.come_back()

    async def aclose(self) -> None:
        """Close every connection made here."""
        made, self._made = self._made, []
        for transport in reversed(made):
            if not transport.is_closed:
                await transport.close()


class NatsFaultDriver(FaultDriver):
    """A real nats-server: killed (SIGKILL) and started again on the same port."""

    label = "nats"

    def __init__(self, server: NatsServer) -> None:
        super().__init__()
        self.server = server

    async def _connect(self, name: str) -> Transport:
        from transports.nats import NatsTransport

        return await NatsTransport.connect(
            self.server.url,
            name=name,
            reconnect_time_wait=0.05,
            max_reconnect_attempts=-1,
            connect_timeout=1,
        )

    async def go_down(self) -> None:
        await anyio.to_thread.run_sync(self.server.kill)

    async def come_back(self) -> None:
        await anyio.to_thread.run_sync(self.server.start)


class MemoryFaultDriver(FaultDriver):
    """A ``MemoryBroker``: every connection is forced offline, then back online."""

    label = "memory"

    def __init__(self) -> None:
        super().__init__()
        from transports.memory import MemoryBroker

        self.broker = MemoryBroker(seed=7)

    async def _connect(self, name: str) -> Transport:
        return await self.broker.connect(name=name)

    async def go_down(self) -> None:
        for connection in self.broker.connections:
            connection.force_disconnect()
        await anyio.lowlevel.checkpoint()

    async def come_back(self) -> None:
        for connection in self.broker.connections:
            connection.force_reconnect()
        await anyio.lowlevel.checkpoint()


# ---------------------------------------------------------------------- load


@dataclass(frozen=True)
class Outcome:
    """One request of a :class:`Load`: when it was sent and ended, and how it ended."""

    index: int
    sent: float
    ended: float
    reply: Msg | None
    error: Exception | None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def duration(self) -> float:
        return self.ended - self.sent


@dataclass
class Load:
    """``workers`` concurrent requesters sending ``payload(i)`` to ``subject`` until stopped
    (or ``max_requests`` were sent), each request with ``timeout``.  Errors in
    :data:`CLEAN_FAILURES` are recorded; any other exception ends the load and is re-raised
    by :meth:`run`.  ``on_outcome`` hears about every outcome (used to wake waiters)."""

    transport: Transport
    subject: str
    timeout: float
    workers: int = 2
    max_requests: int = 20_000
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: bool = False
    _changed: anyio.Event = field(default_factory=anyio.Event)
    _next: int = 0

    @staticmethod
    def payload(index: int) -> bytes:
        return f"req-{index}".encode()

    def stop(self) -> None:
        self._stop = True

    async def run(self) -> None:
        async with anyio.create_task_group() as group:
            for _ in range(self.workers):
                group.start_soon(self._worker)

    async def _worker(self) -> None:
        while not self._stop and self._next < self.max_requests:
            index = self._next
            self._next += 1
            sent = time.monotonic()
            reply: Msg | None = None
            error: Exception | None = None
            try:
                reply = await self.transport.request(
                    self.subject, self.payload(index), timeout=self.timeout
                )
            except CLEAN_FAILURES as exc:
                error = exc
            self.outcomes.append(Outcome(index, sent, time.monotonic(), reply, error))
            self._changed.set()
            self._changed = anyio.Event()
            if error is not None and isinstance(error, NoRespondersError):
                await anyio.lowlevel.checkpoint()  # a prompt failure must not starve others

    async def wait_until(
        self, condition: Callable[[list[Outcome]], bool], *, within: float = 10
    ) -> None:
        """Wait (at most ``within`` seconds) until ``condition(outcomes)`` holds (checked
        after every outcome)."""
        with anyio.fail_after(within):
            while not condition(self.outcomes):
                await self._changed.wait()


async def poll_until(condition: Callable[[], bool], *, what: str, within: float = 10) -> None:
    """Wait (at most ``within`` seconds) until ``condition()`` holds, looking again every
    millisecond.

    Only for states that no event announces (e.g. how many messages sit in a subscription's
    buffer); everything else waits on an event.
    """
    try:
        with anyio.fail_after(within):
            while not condition():  # noqa: ASYNC110 (no event exists for this state)
                await anyio.sleep(0.001)  # a short checkpoint
    except TimeoutError:
        raise AssertionError(f"not reached within {within:g} s: {what}") from None


# ---------------------------------------------------------------------- tasks


def _task_label(task: Any) -> str:
    """``name @ file`` of an asyncio or trio task (the file of its coroutine's code)."""
    coro = task.get_coro() if hasattr(task, "get_coro") else getattr(task, "coro", None)
    code = getattr(coro, "cr_code", None)
    name = task.get_name() if hasattr(task, "get_name") else getattr(task, "name", "?")
    return f"{name} @ {getattr(code, 'co_filename', '?')}"


def live_tasks() -> set[Any]:
    """Every unfinished task of the running event loop (asyncio or trio)."""
    if current_async_library() == "asyncio":
        return {task for task in asyncio.all_tasks() if not task.done()}
    import trio

    found: set[Any] = set()
    pending = [trio.lowlevel.current_root_task()]
    while pending:
        task = pending.pop()
        if task is None:
            continue
        found.add(task)
        for nursery in task.child_nurseries:
            pending.extend(nursery.child_tasks)
    return found


def _is_ours(label: str) -> bool:
    return "micro service" in label or "/micro/" in label


async def assert_no_leftover_tasks(
    baseline: set[Any], *, only_ours: bool, within: float = 5.0
) -> None:
    """Fail unless every task started since ``baseline`` has finished.

    ``only_ours``: look only at the service layer's tasks (the task host and what it ran),
    not at the transport's own (e.g. nats-py's reader while the connection stays open).
    On asyncio the tasks are awaited (bounded); trio offers no handle to await a foreign
    task, so its task tree is re-read after each scheduling checkpoint (bounded).
    """

    def leftovers() -> list[Any]:
        new = live_tasks() - baseline
        return [task for task in new if not only_ours or _is_ours(_task_label(task))]

    deadline = time.monotonic() + within
    while True:
        left = leftovers()
        current = _current_task()
        left = [task for task in left if task is not current]
        if not left:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                "tasks still running: " + ", ".join(sorted(_task_label(t) for t in left))
            )
        if current_async_library() == "asyncio":
            await asyncio.wait(left, timeout=max(0.0, deadline - time.monotonic()))
        else:
            await anyio.lowlevel.checkpoint()  # no event exists for a foreign trio task


def _current_task() -> Any:
    if current_async_library() == "asyncio":
        return asyncio.current_task()
    import trio

    return trio.lowlevel.current_task()


def backend_of(transport: Transport) -> str:
    """``nats`` or ``memory``: for figure labels."""
    return "nats" if type(transport).__module__.startswith("transports.nats") else "memory"


def note(test: str, text: str) -> None:
    """Record a figure line (printed by the conftest at the end of the session)."""
    FIGURES.append((test, text))
    print(f"[{test}] {text}", file=sys.stderr)
