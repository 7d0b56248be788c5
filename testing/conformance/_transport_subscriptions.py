"""The transport conformance suite, part of ``TransportConformance``: unsubscribe, limits,
drain, ``next_msg`` (contract 7); pending counters and slow consumers (contract 8)."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest

from testing.conformance._suite_base import WAIT, Recorder, SuiteBase
from testing.conformance._transport_support import INVALID_QUEUES, connections, settle, take_pending
from testing.conformance.backend import ConformanceBackend
from transports.base import (
    BadQueueError,
    NoRespondersError,
    SlowConsumerError,
    SubscriptionClosedError,
    TransportEventKind,
)

__all__ = ["SubscriptionCases"]


class SubscriptionCases(SuiteBase):
    """Unsubscribe, limits, drain, ``next_msg`` (contract 7); pending counters and slow
    consumers (contract 8)."""

    # -------------------------------------------------------- contract 7: unsubscribe, drain

    async def test_unsubscribe_discards_the_buffer_and_ends_the_subscription(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await connections(conformance_backend, 2)
        sub = await subscriber.subscribe("unsub.x")
        for number in range(3):
            await publisher.publish("unsub.x", str(number).encode())
        await settle(publisher, subscriber)
        assert sub.pending_msgs == 3
        await sub.unsubscribe()
        assert not sub.is_active
        assert sub.pending_msgs == 0
        with anyio.fail_after(WAIT):
            assert [msg async for msg in sub] == []
        with pytest.raises(SubscriptionClosedError) as caught:
            await sub.next_msg(timeout=WAIT)
        assert caught.value.subject == "unsub.x"
        await sub.unsubscribe()  # on an ended subscription: does nothing

    async def test_after_unsubscribe_returns_the_broker_routes_elsewhere(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        a, b, publisher = await connections(conformance_backend, 3)
        for attempt in range(10):
            subject = f"unsub.q.{attempt}"
            leaving = await a.subscribe(subject, queue="g")
            staying = await b.subscribe(subject, queue="g")
            await leaving.unsubscribe()
            for number in range(20):
                await publisher.publish(subject, str(number).encode())
            await settle(publisher, b)
            assert [int(msg.data) for msg in await take_pending(staying)] == list(range(20))
            await staying.unsubscribe()
        for attempt in range(20):
            subject = f"unsub.only.{attempt}"
            only = await a.subscribe(subject)
            await only.unsubscribe()
            with anyio.fail_after(WAIT), pytest.raises(NoRespondersError):
                await publisher.request(subject, timeout=WAIT)

    async def test_unsubscribe_with_limit_ends_after_that_many(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await connections(conformance_backend, 2)
        sub = await subscriber.subscribe("limit.x")
        await sub.unsubscribe(limit=3)
        for number in range(6):
            await publisher.publish("limit.x", str(number).encode())
        with anyio.fail_after(WAIT):
            got = [int(msg.data) async for msg in sub]
        assert got == [0, 1, 2]
        assert not sub.is_active
        assert sub.delivered == 3

    async def test_unsubscribe_limit_counts_messages_already_received(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await connections(conformance_backend, 2)
        sub = await subscriber.subscribe("limit.y")
        for number in range(2):
            await publisher.publish("limit.y", str(number).encode())
        assert [int((await sub.next_msg(timeout=WAIT)).data) for _ in range(2)] == [0, 1]
        await sub.unsubscribe(limit=3)
        for number in range(2, 8):
            await publisher.publish("limit.y", str(number).encode())
        with anyio.fail_after(WAIT):
            assert [int(msg.data) async for msg in sub] == [2]
        assert not sub.is_active

    async def test_unsubscribe_limit_already_reached_ends_at_once(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await connections(conformance_backend, 2)
        sub = await subscriber.subscribe("limit.z")
        for number in range(2):
            await publisher.publish("limit.z", str(number).encode())
        for _ in range(2):
            await sub.next_msg(timeout=WAIT)
        await sub.unsubscribe(limit=1)
        await publisher.publish("limit.z", b"late")
        with anyio.fail_after(WAIT):
            assert [msg async for msg in sub] == []
        assert not sub.is_active

    async def test_drain_delivers_the_buffer_then_ends(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await connections(conformance_backend, 2)
        sub = await subscriber.subscribe("drain.x")
        for number in range(5):
            await publisher.publish("drain.x", str(number).encode())
        await settle(publisher, subscriber)
        drained = anyio.Event()

        async def drain() -> None:
            await sub.drain()
            drained.set()

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(drain)
                got = [int(msg.data) async for msg in sub]
        assert got == list(range(5))
        assert drained.is_set()
        assert not sub.is_active
        with pytest.raises(SubscriptionClosedError):
            await sub.next_msg(timeout=WAIT)
        with anyio.fail_after(WAIT), pytest.raises(NoRespondersError):
            await publisher.request("drain.x", timeout=WAIT)
        with anyio.fail_after(WAIT):
            await sub.drain()  # on an ended subscription: does nothing

    async def test_next_msg_times_out_with_timeout_error_and_keeps_the_subscription(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await connections(conformance_backend, 2)
        sub = await subscriber.subscribe("next.x")
        with anyio.fail_after(WAIT), pytest.raises(TimeoutError) as caught:
            await sub.next_msg(timeout=0.05)
        assert not isinstance(caught.value, SubscriptionClosedError)
        assert sub.is_active
        await publisher.publish("next.x", b"later")
        assert (await sub.next_msg(timeout=WAIT)).data == b"later"
        await publisher.publish("next.x", b"no timeout")
        with anyio.fail_after(WAIT):
            assert (await sub.next_msg()).data == b"no timeout"  # timeout=None: waits

    async def test_subscription_properties(self, conformance_backend: ConformanceBackend) -> None:
        transport = await conformance_backend.connect()
        plain = await transport.subscribe("props.*")
        grouped = await transport.subscribe("props.>", queue="workers")
        assert (plain.subject, plain.queue, plain.is_active) == ("props.*", None, True)
        assert (grouped.subject, grouped.queue, grouped.is_active) == ("props.>", "workers", True)
        assert (plain.pending_msgs, plain.pending_bytes, plain.delivered, plain.dropped) == (
            0,
            0,
            0,
            0,
        )

    @pytest.mark.parametrize("queue", INVALID_QUEUES)
    async def test_subscribe_rejects_an_invalid_queue_group(
        self, conformance_backend: ConformanceBackend, queue: str
    ) -> None:
        transport = await conformance_backend.connect()
        with pytest.raises(BadQueueError) as caught:
            await transport.subscribe("queue.x", queue=queue)
        assert isinstance(caught.value, ValueError)
        assert caught.value.queue == queue
        assert repr(queue) in str(caught.value)

    @pytest.mark.parametrize(
        ("option", "value"),
        [
            ("pending_msgs_limit", 0),
            ("pending_msgs_limit", -1),
            ("pending_bytes_limit", 0),
            ("pending_bytes_limit", -1),
        ],
    )
    async def test_pending_limits_must_be_positive(
        self, conformance_backend: ConformanceBackend, option: str, value: int
    ) -> None:
        transport = await conformance_backend.connect()
        options: dict[str, Any] = {option: value}
        with pytest.raises(ValueError, match=option):
            await transport.subscribe("limits.x", **options)

    # ---------------------------------------------------- contract 8: pending, slow consumer

    async def test_pending_and_delivered_counters(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await connections(conformance_backend, 2)
        sub = await subscriber.subscribe("count.x")
        for payload in (b"a", b"bb", b"ccc"):
            await publisher.publish("count.x", payload)
        await settle(publisher, subscriber)
        assert (sub.pending_msgs, sub.pending_bytes, sub.delivered, sub.dropped) == (3, 6, 0, 0)
        assert (await sub.next_msg(timeout=WAIT)).data == b"a"
        assert (sub.pending_msgs, sub.pending_bytes, sub.delivered) == (2, 5, 1)
        async for msg in sub:
            if msg.data == b"ccc":
                break
        assert (sub.pending_msgs, sub.pending_bytes, sub.delivered) == (0, 0, 3)

    async def test_slow_consumer_on_the_message_limit_drops_visibly(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await connections(conformance_backend, 2)
        log = Recorder()
        subscriber.add_event_listener(log)
        limit, count = 10, 50
        sub = await subscriber.subscribe("slow.msgs", pending_msgs_limit=limit)
        with anyio.fail_after(WAIT):
            for number in range(count):
                await publisher.publish("slow.msgs", str(number).encode())
            await publisher.flush()
        await settle(publisher, subscriber)
        assert sub.dropped > 0
        assert sub.pending_msgs == limit
        assert sub.pending_msgs + sub.dropped == count
        await self._assert_slow_consumer_event(log, "slow.msgs")
        assert [int(msg.data) for msg in await take_pending(sub)] == list(range(limit))
        await publisher.publish("slow.msgs", b"after")
        assert (await sub.next_msg(timeout=WAIT)).data == b"after"
        assert sub.is_active

    async def test_slow_consumer_on_the_byte_limit_drops_visibly(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await connections(conformance_backend, 2)
        log = Recorder()
        subscriber.add_event_listener(log)
        sub = await subscriber.subscribe("slow.bytes", pending_bytes_limit=100)
        for number in range(50):
            await publisher.publish("slow.bytes", f"{number:010d}".encode())
        await settle(publisher, subscriber)
        assert sub.dropped > 0
        assert 0 < sub.pending_bytes <= 100
        assert sub.pending_bytes == 10 * sub.pending_msgs
        assert sub.pending_msgs + sub.dropped == 50
        await self._assert_slow_consumer_event(log, "slow.bytes")
        await take_pending(sub)
        await publisher.publish("slow.bytes", b"after")
        assert (await sub.next_msg(timeout=WAIT)).data == b"after"

    @staticmethod
    async def _assert_slow_consumer_event(log: Recorder, subject: str) -> None:
        event = await log.wait_for_event(TransportEventKind.ERROR)
        assert isinstance(event.error, SlowConsumerError)
        assert event.error.subject == subject
        assert repr(subject) in str(event.error)
