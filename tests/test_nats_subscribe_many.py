"""``NatsTransport.subscribe_many`` (``transports.extensions``) against a real nats-server.

The generic promises are the conformance suite's (``testing.conformance``); here what is
nats-specific: the wire (one plain ``SUB`` per subject, distinct sids, one UNSUB each), the
per-subject byte accounting over nats-py's subscriptions, the limit that ends locally while
some subjects are still live at the server, permissions, reconnects and connection close.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import pytest

from testing.nats_server import NatsServer
from transports.base import (
    BadSubjectError,
    ConnectionClosedError,
    Msg,
    NoRespondersError,
    PermissionViolationError,
    SubscriptionClosedError,
    TransportEvent,
    TransportEventKind,
)
from transports.extensions import MultiSubjectSubscriber, MultiSubscription
from transports.nats import NatsMultiSubscription, NatsTransport
from transports.nats.subscription import share_queue

pytestmark = pytest.mark.anyio

WAIT = 10.0
_unique = itertools.count()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def publisher(micro_nats_server: NatsServer) -> AsyncIterator[NatsTransport]:
    transport = await NatsTransport.connect(micro_nats_server.url, name="publisher")
    try:
        yield transport
    finally:
        await transport.close()


def _subjects(count: int = 3) -> list[str]:
    """Fresh subjects (the server is shared by the session): ``many.<n>.a``, ``.b``, ..."""
    prefix = f"many.{os.getpid()}.{next(_unique)}"
    return [f"{prefix}.{chr(ord('a') + index)}" for index in range(count)]


async def _settle(*transports: NatsTransport) -> None:
    """Return once the server delivered to each connection what was published before.

    A flush (PING/PONG) of each connection in turn: the server processed the publishes
    before the first PONG, and delivers to a connection before answering its PING."""
    with anyio.fail_after(WAIT):
        for transport in transports:
            await transport.flush()


async def _no_responders(requester: NatsTransport, subjects: list[str]) -> None:
    with anyio.fail_after(WAIT):
        for subject in subjects:
            with pytest.raises(NoRespondersError):
                await requester.request(subject, timeout=WAIT)


class Recorder:
    """Collects transport events; ``wait_for`` blocks (bounded) until one matches."""

    def __init__(self) -> None:
        self.events: list[TransportEvent] = []
        self._changed = anyio.Event()

    def __call__(self, event: TransportEvent) -> None:
        self.events.append(event)
        self._changed.set()

    def errors(self) -> list[BaseException | None]:
        return [event.error for event in self.events if event.kind is TransportEventKind.ERROR]

    async def wait_for(self, predicate: Callable[[TransportEvent], bool]) -> TransportEvent:
        with anyio.fail_after(WAIT):
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                self._changed = anyio.Event()
                await self._changed.wait()


# ---------------------------------------------------------------- the wire and the iterator


async def test_one_plain_nats_subscription_per_subject_behind_one_iterator(
    micro_nats_transport: NatsTransport, publisher: NatsTransport
) -> None:
    transport = micro_nats_transport
    subjects = _subjects()
    assert isinstance(transport, MultiSubjectSubscriber)
    sub = await transport.subscribe_many(subjects)
    assert isinstance(sub, MultiSubscription)
    assert isinstance(sub, NatsMultiSubscription)
    assert (sub.subjects, sub.subject, sub.queue) == (tuple(subjects), subjects[0], None)
    assert len(set(sub.sids)) == 3
    assert sub.sid == sub.sids[0]
    raws = [transport.nc._subs[sid] for sid in sub.sids]  # what nats-py sent a SUB for
    assert [(raw._subject, raw._queue) for raw in raws] == [(s, "") for s in subjects]
    assert len({id(raw._pending_queue) for raw in raws}) == 1  # one shared buffer

    sent = [(subjects[number % 3], str(number).encode()) for number in range(12)]
    for subject, data in sent:
        await publisher.publish(subject, data)
    await publisher.publish(f"{subjects[0]}.deeper", b"not subscribed")
    with anyio.fail_after(WAIT):
        got = [await sub.__anext__() for _ in sent]
    assert all(type(msg) is Msg for msg in got)
    assert [(msg.subject, msg.data) for msg in got] == sent
    await _settle(publisher, transport)
    assert sub.pending_msgs == 0

    await sub.unsubscribe()
    assert not sub.is_active
    assert not set(sub.sids) & set(transport.nc._subs)  # nats-py will not re-subscribe them
    await _no_responders(publisher, subjects)
    with anyio.fail_after(WAIT):
        assert [msg async for msg in sub] == []


async def test_requests_to_each_subject_get_replies(
    micro_nats_transport: NatsTransport, publisher: NatsTransport
) -> None:
    responder = micro_nats_transport
    subjects = _subjects()
    sub = await responder.subscribe_many(subjects)

    async def answer() -> None:
        async for msg in sub:
            assert msg.reply is not None
            await responder.publish(msg.reply, b"re:" + msg.subject.encode())

    async with anyio.create_task_group() as group:
        group.start_soon(answer)
        with anyio.fail_after(WAIT):
            for subject in subjects * 2:
                reply = await publisher.request(subject, b"q", timeout=WAIT)
                assert reply.data == b"re:" + subject.encode()
        await sub.unsubscribe()  # ends the responder loop
    assert sub.delivered == 6
    await _no_responders(publisher, subjects)


async def test_counters_account_for_every_subject(
    micro_nats_transport: NatsTransport, publisher: NatsTransport
) -> None:
    transport = micro_nats_transport
    subjects = _subjects()
    sub = await transport.subscribe_many(subjects)
    raws = {raw._subject: raw for raw in (transport.nc._subs[sid] for sid in sub.sids)}
    for subject, size in zip(subjects, (1, 10, 100), strict=True):
        await publisher.publish(subject, b"x" * size)
    await publisher.publish(subjects[2], b"y" * 1000)
    await _settle(publisher, transport)
    assert (sub.pending_msgs, sub.pending_bytes, sub.delivered) == (4, 1111, 0)
    assert [raws[subject]._pending_size for subject in subjects] == [1, 10, 1100]

    with anyio.fail_after(WAIT):
        first = await sub.__anext__()
        assert first.subject == subjects[0]
        assert (sub.pending_msgs, sub.pending_bytes, sub.delivered) == (3, 1110, 1)
        second = await sub.next_msg(timeout=WAIT)
        assert second.subject == subjects[1]
        assert (sub.pending_msgs, sub.pending_bytes, sub.delivered) == (2, 1100, 2)
        await sub.next_msg()
        assert [raws[subject]._pending_size for subject in subjects] == [0, 0, 1000]
        await sub.__anext__()
    assert (sub.pending_msgs, sub.pending_bytes, sub.delivered, sub.dropped) == (0, 0, 4, 0)
    with pytest.raises(TimeoutError):
        await sub.next_msg(timeout=0.01)


# ---------------------------------------------------------------- ending


async def test_drain_delivers_what_is_buffered_then_ends(
    micro_nats_transport: NatsTransport, publisher: NatsTransport
) -> None:
    transport = micro_nats_transport
    subjects = _subjects()
    sub = await transport.subscribe_many(subjects)
    sent = [(subjects[number % 3], str(number).encode()) for number in range(7)]
    for subject, data in sent:
        await publisher.publish(subject, data)
    await _settle(publisher, transport)
    assert sub.pending_msgs == 7
    got: list[tuple[str, bytes]] = []

    async def consume() -> None:
        async for msg in sub:
            got.append((msg.subject, msg.data))

    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as group:
            group.start_soon(consume)
            await sub.drain()
            assert not sub.is_active
    assert got == sent
    assert not set(sub.sids) & set(transport.nc._subs)
    await _no_responders(publisher, subjects)
    with pytest.raises(SubscriptionClosedError):
        await sub.next_msg(timeout=0)


async def test_unsubscribe_with_a_limit_counts_every_subject_together(
    micro_nats_transport: NatsTransport, publisher: NatsTransport
) -> None:
    transport = micro_nats_transport
    subjects = _subjects()
    sub = await transport.subscribe_many(subjects)
    await sub.unsubscribe(limit=2)
    assert sub.is_active
    for number in range(6):
        await publisher.publish(subjects[number % 3], str(number).encode())
    with anyio.fail_after(WAIT):
        got = [(msg.subject, msg.data) async for msg in sub]
    assert got == [(subjects[0], b"0"), (subjects[1], b"1")]
    assert not sub.is_active
    assert sub.delivered == 2
    assert not set(sub.sids) & set(transport.nc._subs)
    await _settle(transport)  # the UNSUB of the subjects the server still served is through
    await _no_responders(publisher, subjects)


async def test_a_limit_reached_on_one_subject_leaves_no_interest_in_the_others(
    micro_nats_transport: NatsTransport, publisher: NatsTransport
) -> None:
    """The server caps each subject at the limit on its own: the others are still live when
    the total is reached, and must be unsubscribed then."""
    transport = micro_nats_transport
    subjects = _subjects()
    sub = await transport.subscribe_many(subjects)
    await publisher.publish(subjects[1], b"before")
    await _settle(publisher, transport)
    await sub.unsubscribe(limit=3)  # one received already: two more, on any subject
    await publisher.publish(subjects[1], b"one")
    await publisher.publish(subjects[1], b"two")
    await publisher.publish(subjects[1], b"three")  # the server dropped that sid: not sent
    with anyio.fail_after(WAIT):
        got = [msg.data async for msg in sub]
    assert got == [b"before", b"one", b"two"]
    await _settle(transport)
    await _no_responders(publisher, subjects)


async def test_closing_the_connection_ends_it_discarding_what_is_buffered(
    micro_nats_server: NatsServer, publisher: NatsTransport
) -> None:
    transport = await NatsTransport.connect(micro_nats_server.url)
    subjects = _subjects(2)
    sub = await transport.subscribe_many(subjects)
    waiting = await transport.subscribe_many(_subjects(2))
    consumer = asyncio.ensure_future(waiting.next_msg())
    await publisher.publish(subjects[1], b"discarded")
    await _settle(publisher, transport)
    assert sub.pending_msgs == 1
    await transport.close()  # like a plain subscription (and nats-py): buffered is discarded
    assert (sub.is_active, sub.pending_msgs) == (False, 0)
    with anyio.fail_after(WAIT):
        assert [msg.data async for msg in sub] == []
        with pytest.raises(SubscriptionClosedError):
            await consumer
    with pytest.raises(ConnectionClosedError):
        await transport.subscribe_many(_subjects())


async def test_draining_the_connection_drains_it_once(
    micro_nats_server: NatsServer, publisher: NatsTransport
) -> None:
    transport = await NatsTransport.connect(micro_nats_server.url)
    recorder = Recorder()
    transport.add_event_listener(recorder)
    subjects = _subjects()
    sub = await transport.subscribe_many(subjects)
    plain = await transport.subscribe(_subjects(1)[0])
    for subject in subjects:
        await publisher.publish(subject, subject.encode())
    await _settle(publisher, transport)
    got: list[str] = []

    async def consume() -> None:
        async for msg in sub:
            got.append(msg.subject)

    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as group:
            group.start_soon(consume)
            await transport.drain()
    assert got == subjects
    assert not sub.is_active
    assert not plain.is_active
    assert recorder.errors() == []
    assert [event.kind for event in recorder.events][-1:] == [TransportEventKind.CLOSED]


# ---------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("subjects", "error", "named"),
    [
        ([], ValueError, "[]"),
        ("many.a", ValueError, "many.a"),
        (["many.a", "many.*"], BadSubjectError, "many.*"),
        (["many.>"], BadSubjectError, "many.>"),
        (["many.a", "two words"], BadSubjectError, "two words"),
        (["many.a", "many.b", "many.a"], ValueError, "many.a"),
    ],
)
async def test_bad_subjects_are_refused_at_once_naming_the_value(
    micro_nats_transport: NatsTransport, subjects: object, error: type, named: str
) -> None:
    nc = micro_nats_transport.nc
    before = set(nc._subs)
    with pytest.raises(error) as caught:
        await micro_nats_transport.subscribe_many(subjects)  # type: ignore[arg-type]
    assert named in str(caught.value)
    assert set(nc._subs) == before  # nothing was subscribed


# ---------------------------------------------------------------- reconnect, permissions


async def test_every_subject_survives_a_reconnect() -> None:
    with NatsServer() as server:
        transport = await NatsTransport.connect(
            server.url, reconnect_time_wait=0.05, max_reconnect_attempts=-1
        )
        recorder = Recorder()
        transport.add_event_listener(recorder)
        try:
            subjects = _subjects()
            sub = await transport.subscribe_many(subjects)
            sids = sub.sids
            await anyio.to_thread.run_sync(server.restart)
            await recorder.wait_for(lambda e: e.kind is TransportEventKind.RECONNECTED)
            for subject in subjects:
                await transport.publish(subject, b"again")  # nats-py re-subscribed each sid
            with anyio.fail_after(WAIT):
                got = [await sub.next_msg() for _ in subjects]
            assert [msg.subject for msg in got] == subjects
            assert sub.sids == sids
            other = await NatsTransport.connect(server.url)
            try:
                await sub.unsubscribe()
                await _no_responders(other, subjects)
            finally:
                await other.close()
        finally:
            await transport.close()


_PERMISSIONS = """
authorization { users = [
  { user: "limited", password: "pw", permissions: { subscribe: { deny: ["Secret.>"] } } }
  { user: "other", password: "pw" }
] }
"""


async def test_a_refused_subject_ends_the_whole_subscription(tmp_path: Path) -> None:
    config = tmp_path / "permissions.conf"
    config.write_text(_PERMISSIONS)
    with NatsServer(config_file=config) as server:
        transport = await NatsTransport.connect(server.url, user="limited", password="pw")
        other = await NatsTransport.connect(server.url, user="other", password="pw")
        try:
            nc = transport.nc
            before = set(nc._subs)
            subjects = ["public.a", "Secret.Plans", "public.b"]
            with anyio.fail_after(WAIT), pytest.raises(PermissionViolationError) as info:
                await transport.subscribe_many(subjects)
            assert (info.value.operation, info.value.subject) == ("subscription", "Secret.Plans")
            assert set(nc._subs) == before
            await _no_responders(other, ["public.a", "public.b"])  # no interest was left
            sub = await transport.subscribe_many(["public.a", "public.b"])  # still usable
            await other.publish("public.b", b"ok")
            with anyio.fail_after(WAIT):
                assert (await sub.next_msg()).data == b"ok"
        finally:
            await transport.close()
            await other.close()


_BEFORE_RELOAD = """
authorization { users = [ { user: "svc", password: "pw" }, { user: "cli", password: "pw" } ] }
"""
_AFTER_RELOAD = """
authorization { users = [
  { user: "svc", password: "pw", permissions: { subscribe: { deny: ["Orders.>"] } } }
  { user: "cli", password: "pw" }
] }
"""


async def test_a_subject_revoked_later_ends_the_whole_subscription(tmp_path: Path) -> None:
    config = tmp_path / "reload.conf"
    config.write_text(_BEFORE_RELOAD)
    with NatsServer(config_file=config) as server:
        transport = await NatsTransport.connect(server.url, user="svc", password="pw")
        client = await NatsTransport.connect(server.url, user="cli", password="pw")
        recorder = Recorder()
        transport.add_event_listener(recorder)
        try:
            subjects = ["status.a", "Orders.Place", "status.b"]
            sub = await transport.subscribe_many(subjects)
            await client.publish("status.b", b"buffered")
            await _settle(client, transport)
            config.write_text(_AFTER_RELOAD)
            assert server.pid is not None
            os.kill(server.pid, signal.SIGHUP)  # the server reloads and removes one subject
            event = await recorder.wait_for(lambda e: e.kind is TransportEventKind.ERROR)
            assert isinstance(event.error, PermissionViolationError)
            assert event.error.subject == "Orders.Place"  # as subscribed, not lower-cased
            assert not sub.is_active
            with anyio.fail_after(WAIT):
                assert [msg.data async for msg in sub] == [b"buffered"]  # then it ends
            await _settle(transport)
            await _no_responders(client, ["status.a", "status.b"])  # the others were UNSUBed
            assert transport.is_connected
            assert len(recorder.errors()) == 1
        finally:
            await transport.close()
            await client.close()


# ---------------------------------------------------------------- internals


async def test_nats_internals_subscribe_many_relies_on(
    micro_nats_transport: NatsTransport,
) -> None:
    """Beyond ``test_nats_internals_we_rely_on``: what the shared queue and the UNSUB sent
    without waiting use; an upgrade of nats-py that moves them fails here."""
    nc = micro_nats_transport.nc
    assert isinstance(nc._flush_queue, asyncio.Queue)  # woken by queue_commands
    assert nc._reading_task is not None
    sub = await micro_nats_transport.subscribe_many(_subjects(2))
    for sid in sub.sids:
        raw = nc._subs[sid]
        assert raw._pending_queue is sub._queue  # nats-py queues into whatever is there
        for name in ("_subject", "_pending_size", "_received", "_max_msgs"):
            assert hasattr(raw, name), name
    wake: Any = nc._flush_queue
    waiting = wake.qsize()
    micro_nats_transport._unsubscribe_now(sub.sids)  # UNSUBs queued, the flusher woken
    assert nc._pending[-2:] == [f"UNSUB {sid} \r\n".encode() for sid in sub.sids]
    assert wake.qsize() == waiting + 1
    with anyio.fail_after(WAIT):
        await wake._queue[-1]  # resolved by the flusher once it wrote what was pending
    assert not nc._pending


def test_share_queue_moves_what_arrived_while_nats_py_subscribed() -> None:
    own: asyncio.Queue[Any] = asyncio.Queue()
    for data in (b"a", b"bb", b"ccc"):
        own.put_nowait(Msg("s", data))
    raw: Any = SimpleNamespace(_pending_queue=own, _pending_size=6)
    shared: asyncio.Queue[Any] = asyncio.Queue(maxsize=3)
    shared.put_nowait(Msg("t", b"earlier"))
    share_queue(raw, shared)
    assert raw._pending_queue is shared
    assert [shared.get_nowait().data for _ in range(3)] == [b"earlier", b"a", b"bb"]
    assert raw._pending_size == 3  # b"ccc" did not fit: dropped, as nats-py drops overflow
