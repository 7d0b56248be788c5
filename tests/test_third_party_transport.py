"""The recipe of ``docs/writing-a-transport.md``, proved with a small third-party transport.

``ExampleTransport`` (below) is what a transport author writes: a class implementing
``transports.base.Transport`` -- here a thin wrapper delegating to a memory connection --
and an ``async connect_url(url, **options)``.  It is registered both ways the guide shows:

* at run time, ``transports.register_scheme("example+rt", connect_url)``;
* through a real ``micro.transports`` entry point: a ``*.dist-info`` directory with an
  ``entry_points.txt`` (what ``pip install`` of a package declaring the entry point
  leaves behind) on ``sys.path``, so ``transports.connect("example://...")`` finds it.

The whole transport conformance suite then runs on it, connecting through the entry point,
bound exactly as the guide says (``FactoryBackend`` plus capabilities).
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import pytest

import transports
from testing.conformance import (
    CAP_THREADS,
    CAP_TRIO,
    ConformanceBackend,
    FactoryBackend,
    TransportConformance,
)
from testing.conformance.transport import (
    ConnectionCases,
    FidelityCases,
    LifecycleCases,
    MessageCases,
    MultiSubjectCases,
    RequestCases,
    SubjectCases,
    SubscriptionCases,
    ThreadCases,
)
from transports.base import (
    EventListener,
    Headers,
    Msg,
    NoRespondersError,
    Subscription,
    Transport,
)
from transports.memory import MemoryBroker, MemoryTransport

# --------------------------------------------------------------------------- the transport

_BROKERS: dict[str, MemoryBroker] = {}


class ExampleTransport:
    """A third-party transport in miniature: every operation delegates to a memory
    connection (a real one would talk to its own broker here)."""

    def __init__(self, inner: MemoryTransport) -> None:
        self._inner = inner

    @property
    def max_payload(self) -> int:
        return self._inner.max_payload

    @property
    def is_connected(self) -> bool:
        return self._inner.is_connected

    @property
    def is_closed(self) -> bool:
        return self._inner.is_closed

    def new_inbox(self) -> str:
        return self._inner.new_inbox()

    async def publish(
        self,
        subject: str,
        data: bytes = b"",
        *,
        reply: str | None = None,
        headers: Headers | None = None,
    ) -> None:
        await self._inner.publish(subject, data, reply=reply, headers=headers)

    async def subscribe(
        self,
        subject: str,
        *,
        queue: str | None = None,
        pending_msgs_limit: int | None = None,
        pending_bytes_limit: int | None = None,
    ) -> Subscription:
        return await self._inner.subscribe(
            subject,
            queue=queue,
            pending_msgs_limit=pending_msgs_limit,
            pending_bytes_limit=pending_bytes_limit,
        )

    async def request(
        self,
        subject: str,
        data: bytes = b"",
        *,
        headers: Headers | None = None,
        timeout: float = 1.0,
    ) -> Msg:
        return await self._inner.request(subject, data, headers=headers, timeout=timeout)

    async def flush(self, timeout: float = 10.0) -> None:
        await self._inner.flush(timeout)

    async def drain(self) -> None:
        await self._inner.drain()

    async def close(self) -> None:
        await self._inner.close()

    def add_event_listener(self, listener: EventListener) -> Callable[[], None]:
        return self._inner.add_event_listener(listener)

    async def __aenter__(self) -> ExampleTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def connect_url(url: str, **options: Any) -> ExampleTransport:
    """``example://<broker name>`` -> a connection to that broker (created on first use)."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("example"):
        raise ValueError(f"invalid example URL {url!r}: expected 'example://<name>'")
    broker = _BROKERS.setdefault(parts.netloc, MemoryBroker())
    return ExampleTransport(await broker.connect(**options))


# --------------------------------------------------------------------------- registration


@pytest.fixture(scope="module")
def example_entry_point(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Install the ``example`` scheme as a real entry point for this module's tests."""
    site = tmp_path_factory.mktemp("site")
    dist_info = site / "example_transport-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: example-transport\nVersion: 0.1\n", encoding="utf-8"
    )
    (dist_info / "entry_points.txt").write_text(
        f"[{transports.ENTRY_POINT_GROUP}]\nexample = {__name__}:connect_url\n", encoding="utf-8"
    )
    sys.path.insert(0, str(site))
    try:
        yield "example"
    finally:
        sys.path.remove(str(site))


@pytest.fixture
def runtime_scheme() -> Iterator[str]:
    transports.register_scheme("example+rt", connect_url)
    try:
        yield "example+rt"
    finally:
        transports._registered.pop("example+rt", None)


@pytest.mark.anyio
async def test_a_scheme_registered_at_run_time_connects(runtime_scheme: str) -> None:
    assert runtime_scheme in transports.known_schemes()
    async with await transports.connect(f"{runtime_scheme}://rt") as transport:
        assert isinstance(transport, ExampleTransport)
        assert isinstance(transport, Transport)
        sub = await transport.subscribe("hello")
        await transport.publish("hello", b"world")
        assert (await sub.next_msg(timeout=5)).data == b"world"


@pytest.mark.anyio
async def test_an_entry_point_scheme_connects(example_entry_point: str) -> None:
    assert example_entry_point in transports.known_schemes()
    async with await transports.connect(f"{example_entry_point}://ep") as transport:
        assert isinstance(transport, ExampleTransport)
        with pytest.raises(NoRespondersError):
            await transport.request("nobody.home", timeout=5)


# --------------------------------------------------------------------------- the suite

_names = itertools.count()


class TestExampleTransport(
    ConnectionCases,
    SubjectCases,
    RequestCases,
    MessageCases,
    SubscriptionCases,
    LifecycleCases,
    FidelityCases,
    ThreadCases,
):
    """The transport suite on ``ExampleTransport``, connecting by URL through the entry
    point; it declares ``CAP_TRIO`` (the memory broker under it runs on trio).

    Every case of ``TransportConformance`` except ``MultiSubjectCases``: the example
    implements the ``Transport`` protocol only, and those cases of the optional
    ``subscribe_many`` would all skip (``test_the_suite_is_the_whole_suite_but_the_optional``
    keeps this list complete)."""

    @pytest.fixture(params=["asyncio", "trio"])
    def anyio_backend(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture
    async def conformance_backend(
        self, example_entry_point: str
    ) -> AsyncIterator[ConformanceBackend]:
        url = f"{example_entry_point}://suite-{next(_names)}"  # a fresh broker per test

        async def connect(**options: Any) -> Transport:
            return await transports.connect(url, **options)

        backend = FactoryBackend(connect, capabilities=frozenset({CAP_TRIO, CAP_THREADS}))
        yield backend
        await backend.aclose()
        _BROKERS.pop(urlsplit(url).netloc, None)


def test_the_suite_is_the_whole_suite_but_the_optional() -> None:
    assert set(TransportConformance.__mro__) - set(TestExampleTransport.__mro__) == {
        TransportConformance,
        MultiSubjectCases,
    }


def test_the_guide_shows_this_binding() -> None:
    guide = (Path(__file__).resolve().parents[1] / "docs" / "writing-a-transport.md").read_text(
        encoding="utf-8"
    )
    for needle in (
        "FactoryBackend",
        "TransportConformance",
        "from testing.conformance import",
        '[project.entry-points."micro.transports"]',
        "register_scheme",
    ):
        assert needle in guide, needle
