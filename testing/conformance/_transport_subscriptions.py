"""The transport conformance suite, part of ``TransportConformance``: unsubscribe, limits,
drain, ``next_msg`` (contract 7); pending counters and slow consumers (contract 8)."""

from __future__ import annotations

from functools import partial
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from transports.base import (
    BadQueueError,
    SlowConsumerError,
    SubscriptionClosedError,
    TransportEventKind,
)

from ._suite_base import WAIT, Recorder, SuiteBase, assert_no_responders
from ._transport_support import (
    INVALID_QUEUES,
    assert_rejected,
    connections,
    settle,
    take_pending,
)
from .backend import ConformanceBackend

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
            await assert_no_responders(publisher, subject)

    @pytest.mark.parametrize(
        ("read_before", "limit", "expected"),
        [
            pytest.param(0, 3, [0, 1, 2], id="ends-after-that-many"),
            pytest.param(2, 3, [2], id="counts-messages-already-received"),
            pytest.param(2, 1, [], id="already-reached-ends-at-once"),
        ],
    )
    async def test_unsubscribe_with_limit(
        self,
        conformance_backend: ConformanceBackend,
        read_before: int,
        limit: int,
        expected: list[int],
    ) -> None:
        """``unsubscribe(limit=n)`` ends the subscription after n deliveries in all,
        counting those before the call; at once when n are already delivered."""
        subscriber, publisher = await connections(conformance_backend, 2)
        sub = await subscriber.subscribe("limit.x")
        for number in range(read_before):
            await publisher.publish("limit.x", str(number).encode())
        got = [int((await sub.next_msg(timeout=WAIT)).data) for _ in range(read_before)]
        assert got == list(range(read_before))
        await sub.unsubscribe(limit=limit)
        for number in range(read_before, read_before + 6):
            await publisher.publish("limit.x", str(number).encode())
        with anyio.fail_after(WAIT):
            assert [int(msg.data) async for msg in sub] == expected
        assert not sub.is_active
        assert sub.delivered == read_before + len(expected)

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
        await assert_no_responders(publisher, "drain.x")
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
        subscribe = partial(transport.subscribe, "queue.x", queue=queue)
        await assert_rejected(subscribe, BadQueueError, queue=queue)

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
