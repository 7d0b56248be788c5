"""Forced disconnect / reconnect of a memory connection behaves like nats-py losing its server.

``MemoryTransport.force_disconnect()`` / ``force_reconnect()`` / ``disconnected()``: events,
``is_connected``, interest withdrawn and restored, publishes buffered up to ``pending_size``
and sent on reconnect in order, ``flush`` waiting for the reconnection, requests surviving
an outage, and what is lost (messages published to the connection while it was away).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import anyio.abc
import anyio.lowlevel
import pytest

from micro import Client, Request, add_service
from transports.base import (
    ConnectionClosedError,
    FlushTimeoutError,
    NoRespondersError,
    RequestTimeoutError,
    TransportError,
    TransportEvent,
    TransportEventKind,
)
from transports.memory import MemoryBroker, MemoryTransport

WAIT = 5.0

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def broker() -> AsyncIterator[MemoryBroker]:
    broker = MemoryBroker(seed=1)
    yield broker
    for connection in broker.connections:
        await connection.close()


class _Events:
    def __init__(self) -> None:
        self.kinds: list[TransportEventKind] = []
        self.changed = anyio.Event()

    def __call__(self, event: TransportEvent) -> None:
        self.kinds.append(event.kind)
        self.changed.set()
        self.changed = anyio.Event()

    async def wait_for(self, *kinds: TransportEventKind) -> None:
        with anyio.fail_after(WAIT):
            while self.kinds[: len(kinds)] != list(kinds):
                await self.changed.wait()


async def test_events_and_state_through_an_outage(broker: MemoryBroker) -> None:
    conn = await broker.connect(name="app")
    events = _Events()
    conn.add_event_listener(events)
    conn.force_disconnect()
    assert not conn.is_connected
    assert not conn.is_closed
    assert "disconnected" in repr(conn)
    conn.force_disconnect()  # no effect when already disconnected
    conn.force_reconnect()
    assert conn.is_connected
    conn.force_reconnect()  # no effect when connected
    await events.wait_for(TransportEventKind.DISCONNECTED, TransportEventKind.RECONNECTED)
    assert events.kinds == [TransportEventKind.DISCONNECTED, TransportEventKind.RECONNECTED]


async def test_interest_is_withdrawn_then_restored_and_the_gap_is_lost(
    broker: MemoryBroker,
) -> None:
    subscriber = await broker.connect()
    publisher = await broker.connect()
    sub = await subscriber.subscribe("orders.*")
    grouped = await subscriber.subscribe("work", queue="q")
    await publisher.publish("orders.1", b"before")
    with subscriber.disconnected():
        await publisher.publish("orders.2", b"during")  # nobody is there to get it
        with pytest.raises(NoRespondersError):
            await publisher.request("work", b"x", timeout=WAIT)
        assert (await sub.next_msg(timeout=WAIT)).data == b"before"  # buffered stays readable
    await publisher.publish("orders.3", b"after")
    await publisher.publish("work", b"job")
    assert (await sub.next_msg(timeout=WAIT)).data == b"after"
    assert (await grouped.next_msg(timeout=WAIT)).data == b"job"
    assert sub.pending_msgs == 0


async def test_publishes_are_buffered_and_sent_in_order_after_subscriptions(
    broker: MemoryBroker,
) -> None:
    conn = await broker.connect()
    other = await broker.connect()
    watcher = await other.subscribe("log")
    conn.force_disconnect()
    own = await conn.subscribe("log")  # returns at once, live after the reconnection
    for number in range(5):
        await conn.publish("log", str(number).encode(), headers={"N": str(number)})
    assert conn.outbox_bytes == 5 * (1 + len("N") + 1 + 4)
    assert watcher.pending_msgs == 0
    conn.force_reconnect()
    assert conn.outbox_bytes == 0
    for sub in (watcher, own):  # the subscription is restored before the buffer is sent
        got = [await sub.next_msg(timeout=WAIT) for _ in range(5)]
        assert [m.data for m in got] == [str(n).encode() for n in range(5)]


async def test_the_outbox_is_bounded_by_pending_size(broker: MemoryBroker) -> None:
    conn = await broker.connect(pending_size=10)
    conn.force_disconnect()
    await conn.publish("a", b"12345")
    await conn.publish("a", b"12345")
    with pytest.raises(TransportError, match="pending_size"):
        await conn.publish("a", b"x")
    assert conn.outbox_bytes == 10
    unbuffered = await broker.connect(pending_size=0)
    unbuffered.force_disconnect()
    with pytest.raises(TransportError, match="pending_size"):
        await unbuffered.publish("a", b"")  # pending_size=0: no buffering at all (nats-py)
    with pytest.raises(ValueError, match="pending_size"):
        await broker.connect(pending_size=-1)


async def test_flush_waits_for_the_reconnection_or_times_out(broker: MemoryBroker) -> None:
    conn = await broker.connect()
    conn.force_disconnect()
    with pytest.raises(FlushTimeoutError, match="disconnected"):
        await conn.flush(timeout=0.05)
    flushed = anyio.Event()

    async def flush(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        task_status.started()
        await conn.flush(timeout=WAIT)  # registers its wait before the parent resumes
        flushed.set()

    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            await tg.start(flush)
            assert not flushed.is_set()
            conn.force_reconnect()
    assert flushed.is_set()


async def test_a_request_survives_an_outage(broker: MemoryBroker) -> None:
    responder = await broker.connect()
    requester = await broker.connect()
    sub = await responder.subscribe("echo")

    async def serve() -> None:
        async for msg in sub:
            assert msg.reply is not None
            await responder.publish(msg.reply, b"re:" + msg.data)

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        requester.force_disconnect()
        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as inner:

                async def ask() -> None:
                    reply = await requester.request("echo", b"hi", timeout=WAIT)
                    assert reply.data == b"re:hi"

                inner.start_soon(ask)
                while requester.outbox_bytes == 0:  # the request is buffered, not sent
                    await anyio.lowlevel.checkpoint()
                requester.force_reconnect()  # the buffered request goes out now
        tg.cancel_scope.cancel()


async def test_a_reply_published_while_the_requester_is_away_is_lost(
    broker: MemoryBroker,
) -> None:
    responder = await broker.connect()
    requester = await broker.connect()
    sub = await responder.subscribe("slow")
    async with anyio.create_task_group() as tg:

        async def ask() -> None:
            with pytest.raises(RequestTimeoutError):
                await requester.request("slow", b"x", timeout=0.2)

        tg.start_soon(ask)
        msg = await sub.next_msg(timeout=WAIT)
        assert msg.reply is not None
        with requester.disconnected():
            await responder.publish(msg.reply, b"too late")


async def test_close_while_disconnected_fails_waiters_and_drops_the_outbox(
    broker: MemoryBroker,
) -> None:
    conn = await broker.connect()
    watcher = await (await broker.connect()).subscribe("x")
    conn.force_disconnect()
    await conn.publish("x", b"lost")

    async def flush(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        task_status.started()
        with pytest.raises(ConnectionClosedError):
            await conn.flush(timeout=WAIT)

    async with anyio.create_task_group() as tg:
        await tg.start(flush)
        await conn.close()
    assert conn.is_closed
    assert watcher.pending_msgs == 0
    for attempt in (conn.force_disconnect, conn.force_reconnect):
        with pytest.raises(ConnectionClosedError):
            attempt()


async def test_a_service_keeps_serving_after_an_outage(broker: MemoryBroker) -> None:
    """What a reliability test on the memory leg looks like: the service's connection
    drops, requests fail meanwhile, and it serves again after reconnecting."""

    async def hello(request: Request) -> None:
        await request.respond(b"hello " + request.data())

    service_conn: MemoryTransport = await broker.connect(name="service")
    client = Client(await broker.connect(name="client"))
    service = add_service(service_conn, "greeter", "1.0.0")
    async with service:
        await service.add_endpoint("hello", hello)
        assert (await client.request("hello", b"a")).data == b"hello a"
        with service_conn.disconnected():
            with pytest.raises(NoRespondersError):
                await client.request("hello", b"b")
            assert await client.ping("greeter") == []
        assert (await client.request("hello", b"c")).data == b"hello c"
        [ping] = await client.ping("greeter")
        assert ping.id == service.id
