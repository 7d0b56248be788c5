"""Memory-broker lifecycle specifics: slow-consumer reporting, listener isolation,
close and drain details, request timeouts through the shared expiry timer.

The shared transport conformance suite covers the protocol itself.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import anyio
import pytest

from transports.base import (
    ConnectionClosedError,
    NoRespondersError,
    RequestTimeoutError,
    SlowConsumerError,
    SubscriptionClosedError,
    TransportError,
    TransportEvent,
    TransportEventKind,
)
from transports.memory import MemoryBroker

WAIT = 5.0  # upper bound for anything that should happen at once

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def broker() -> AsyncIterator[MemoryBroker]:
    broker = MemoryBroker(seed=7)
    yield broker
    for connection in broker.connections:
        await connection.close()


class _Events:
    """An event listener that records events and lets a test wait for one."""

    def __init__(self) -> None:
        self.events: list[TransportEvent] = []
        self._changed: anyio.Event | None = None

    def __call__(self, event: TransportEvent) -> None:
        self.events.append(event)
        if self._changed is not None:
            self._changed.set()

    def kinds(self) -> list[TransportEventKind]:
        return [event.kind for event in self.events]

    async def wait_for(self, count: int) -> None:
        with anyio.fail_after(WAIT):
            while len(self.events) < count:
                self._changed = anyio.Event()
                await self._changed.wait()


# ---------------------------------------------------------------------- slow consumers, events


async def test_slow_consumer_events_are_delivered_later_not_inside_publish(
    broker: MemoryBroker,
) -> None:
    subscriber, publisher = await broker.connect(), await broker.connect()
    events = _Events()
    subscriber.add_event_listener(events)
    sub = await subscriber.subscribe("slow", pending_msgs_limit=2)
    for _ in range(5):
        await publisher.publish("slow", b"1234")
    assert (sub.pending_msgs, sub.dropped) == (2, 3)  # counted at once
    assert events.events == []  # reported asynchronously, like nats-py's error callback
    await subscriber.flush()  # flush is a checkpoint: queued events are delivered
    assert events.kinds() == [TransportEventKind.ERROR] * 3
    error = events.events[0].error
    assert isinstance(error, SlowConsumerError)
    assert error.subject == "slow"


async def test_slow_consumer_events_arrive_without_flush(broker: MemoryBroker) -> None:
    subscriber = await broker.connect()
    events = _Events()
    subscriber.add_event_listener(events)
    sub = await subscriber.subscribe("slow.b", pending_bytes_limit=10)
    for size in (4, 4, 4, 2):
        await subscriber.publish("slow.b", b"x" * size)
    assert (sub.pending_bytes, sub.dropped) == (10, 1)  # up to the limit is kept
    await events.wait_for(1)
    assert events.kinds() == [TransportEventKind.ERROR]


async def test_a_failing_listener_is_logged_and_isolated(
    broker: MemoryBroker, caplog: pytest.LogCaptureFixture
) -> None:
    connection = await broker.connect()
    seen = _Events()

    def broken(event: TransportEvent) -> None:
        raise RuntimeError("listener bug")

    connection.add_event_listener(broken)
    connection.add_event_listener(seen)
    with caplog.at_level(logging.ERROR, logger="transports.memory"):
        await connection.close()
    assert seen.kinds() == [TransportEventKind.CLOSED]
    assert "listener bug" in caplog.text
    assert connection.is_closed


# ---------------------------------------------------------------------- close and drain


async def test_close_ends_consumers_and_fails_requests(broker: MemoryBroker) -> None:
    requester, responder = await broker.connect(), await broker.connect()
    await responder.subscribe("slow.service")  # matches, never answers
    sub = await requester.subscribe("c")
    await requester.publish("c", b"buffered")
    outcome: list[BaseException] = []

    async def ask() -> None:
        try:
            await requester.request("slow.service", timeout=WAIT * 10)
        except ConnectionClosedError as error:
            outcome.append(error)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        await requester.close()
    assert len(outcome) == 1
    assert sub.pending_msgs == 0
    assert not sub.is_active
    with pytest.raises(SubscriptionClosedError):
        await sub.next_msg(timeout=0)
    assert requester.new_inbox().startswith("_INBOX.")  # pure and local: works after close
    requester.add_event_listener(print)()  # allowed; nothing more is emitted
    assert broker.subscription_count == 1  # only the responder's subscription is left


async def test_drain_gives_up_after_drain_timeout_and_reports_it(broker: MemoryBroker) -> None:
    connection = await broker.connect(drain_timeout=0.05)
    events = _Events()
    connection.add_event_listener(events)
    sub = await connection.subscribe("d")
    await connection.publish("d", b"never consumed")
    with anyio.fail_after(WAIT):
        await connection.drain()
    assert connection.is_closed
    assert not sub.is_active
    assert events.kinds() == [TransportEventKind.ERROR, TransportEventKind.CLOSED]
    error = events.events[0].error
    assert isinstance(error, TransportError)
    assert "1 buffered message(s)" in str(error)


async def test_subscription_drain_returns_only_after_the_buffer_is_taken(
    broker: MemoryBroker,
) -> None:
    connection = await broker.connect()
    sub = await connection.subscribe("sd")
    for number in range(2):
        await connection.publish("sd", b"%d" % number)
    drained = anyio.Event()

    async def drain() -> None:
        await sub.drain()
        drained.set()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(drain)
        await anyio.wait_all_tasks_blocked()
        assert not drained.is_set()
        assert sub.is_active
        await connection.publish("sd", b"late")  # interest already stopped
        assert [msg.data async for msg in sub] == [b"0", b"1"]
        with anyio.fail_after(WAIT):
            await drained.wait()
    assert not sub.is_active


async def test_concurrent_transport_drains_all_return_once_closed(broker: MemoryBroker) -> None:
    connection = await broker.connect()
    sub = await connection.subscribe("td")
    await connection.publish("td", b"x")
    finished: list[int] = []

    async def drain(index: int) -> None:
        await connection.drain()
        finished.append(index)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(drain, 1)
        tasks.start_soon(drain, 2)
        await anyio.wait_all_tasks_blocked()
        assert finished == []
        with pytest.raises(ConnectionClosedError, match="draining"):
            await connection.subscribe("td.more")
        assert (await sub.next_msg(timeout=WAIT)).data == b"x"
    assert sorted(finished) == [1, 2]
    assert connection.is_closed


async def test_cancelling_a_transport_drain_closes_the_connection(broker: MemoryBroker) -> None:
    connection = await broker.connect()
    sub = await connection.subscribe("cd")
    await connection.publish("cd", b"never consumed")
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(connection.drain)
        await anyio.wait_all_tasks_blocked()
        assert not connection.is_closed
        tasks.cancel_scope.cancel()
    assert connection.is_closed
    assert not sub.is_active


# ---------------------------------------------------------------------- requests, timeouts


async def test_requests_with_different_timeouts_expire_in_order(broker: MemoryBroker) -> None:
    requester, responder = await broker.connect(), await broker.connect()
    sub = await responder.subscribe("svc")
    results: dict[str, str] = {}
    short_done = anyio.Event()

    async def ask(name: str, seconds: float) -> None:
        try:
            reply = await requester.request("svc", name.encode(), timeout=seconds)
            results[name] = reply.data.decode()
        except RequestTimeoutError as error:
            results[name] = f"timeout after {error.timeout}"
        if name == "short":
            short_done.set()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(ask, "long", WAIT)
        await anyio.wait_all_tasks_blocked()
        tasks.start_soon(ask, "short", 0.05)  # earlier deadline: the shared timer re-arms
        first = await sub.next_msg(timeout=WAIT)
        second = await sub.next_msg(timeout=WAIT)
        with anyio.fail_after(WAIT):
            await short_done.wait()
        assert first.reply
        assert second.reply
        await responder.publish(first.reply, b"answer")
    assert results == {"short": "timeout after 0.05", "long": "answer"}
    await sub.unsubscribe()
    with pytest.raises(NoRespondersError):
        await requester.request("svc", timeout=WAIT)


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), "1"])
async def test_bad_request_timeouts_are_rejected_naming_them(
    broker: MemoryBroker, seconds: object
) -> None:
    connection = await broker.connect()
    with pytest.raises(ValueError, match="invalid timeout") as caught:
        await connection.request("x", timeout=seconds)  # type: ignore[arg-type]
    assert repr(seconds) in str(caught.value)


async def test_next_msg_timeout_zero_polls_and_negative_is_rejected(broker: MemoryBroker) -> None:
    connection = await broker.connect()
    sub = await connection.subscribe("n")
    with pytest.raises(TimeoutError):
        await sub.next_msg(timeout=0)
    with pytest.raises(ValueError, match="-1"):
        await sub.next_msg(timeout=-1)
    with pytest.raises(ValueError, match="limit -1"):
        await sub.unsubscribe(limit=-1)
    await connection.publish("n", b"x")
    assert (await sub.next_msg(timeout=0)).data == b"x"
