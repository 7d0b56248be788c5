"""The transport conformance suite, part of ``TransportConformance``: connection basics,
subscriptions live on return (contract 1) and delivery order (contract 2)."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from transports._protocols import implements
from transports.base import (
    Subscription,
    Transport,
)
from transports.subjects import is_valid_subject

from ._suite_base import WAIT, SuiteBase
from ._transport_support import (
    SENTINEL,
    collect_until_sentinel,
    connections,
    settle,
    take_pending,
)
from .backend import ConformanceBackend

__all__ = ["ConnectionCases"]


class ConnectionCases(SuiteBase):
    """Connection basics, subscriptions live on return (contract 1) and delivery order (contract
    2)."""

    # --------------------------------------------------------------------- connection basics

    async def test_connect_gives_a_connected_transport(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        transport = await conformance_backend.connect()
        assert implements(transport, Transport)
        assert transport.is_connected
        assert not transport.is_closed
        assert transport.max_payload > 0

    async def test_async_with_returns_the_transport_and_closes_it(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        transport = await conformance_backend.connect()
        async with transport as entered:
            assert entered is transport
        assert transport.is_closed
        assert not transport.is_connected
        other = await conformance_backend.connect()
        with pytest.raises(KeyError):
            async with other:
                raise KeyError("boom")
        assert other.is_closed

    async def test_new_inbox_is_unique_and_a_valid_subject(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        a, b = await connections(conformance_backend, 2)
        inboxes = [a.new_inbox() for _ in range(500)] + [b.new_inbox() for _ in range(500)]
        assert len(set(inboxes)) == len(inboxes)
        for inbox in inboxes:
            assert inbox.startswith("_INBOX.")
            assert len(inbox) > len("_INBOX.")
            assert is_valid_subject(inbox), inbox

    # ------------------------------------------------------------ contract 1: live on return

    async def test_subscribe_is_live_at_the_broker_on_return(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        responder, requester = await connections(conformance_backend, 2)

        async def answer_one(sub: Subscription) -> None:
            msg = await sub.next_msg(timeout=WAIT)
            assert msg.reply is not None
            await responder.publish(msg.reply, b"pong:" + msg.data)

        for attempt in range(50):
            subject = f"live.{attempt}"
            sub = await responder.subscribe(subject)
            with anyio.fail_after(WAIT):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(answer_one, sub)
                    reply = await requester.request(subject, str(attempt).encode(), timeout=WAIT)
            assert reply.data == f"pong:{attempt}".encode()
            await sub.unsubscribe()

    # ------------------------------------------------------------------ contract 2: ordering

    async def test_one_publisher_order_is_kept_per_subscription(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await connections(conformance_backend, 2)
        sub = await subscriber.subscribe("order.x")
        for number in range(1000):
            await publisher.publish("order.x", str(number).encode())
        await publisher.publish("order.x", SENTINEL)
        got = await collect_until_sentinel(sub)
        assert [int(msg.data) for msg in got] == list(range(1000))

    async def test_each_publisher_order_is_kept_with_concurrent_publishers(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, first, second = await connections(conformance_backend, 3)
        sub = await subscriber.subscribe("order.many")

        async def publish_all(publisher: Transport, name: str) -> None:
            for number in range(300):
                await publisher.publish("order.many", f"{name}:{number}".encode())
                if number % 50 == 0:
                    await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as tg:
            tg.start_soon(publish_all, first, "first")
            tg.start_soon(publish_all, second, "second")
        await settle(first, subscriber)
        await settle(second, subscriber)
        got = [msg.data.decode() for msg in await take_pending(sub)]
        for name in ("first", "second"):
            numbers = [int(item.split(":")[1]) for item in got if item.startswith(name + ":")]
            assert numbers == list(range(300)), name

    async def test_one_connection_receives_one_publisher_in_order_across_subscriptions(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await connections(conformance_backend, 2)
        left = await subscriber.subscribe("across.left")
        right = await subscriber.subscribe("across.right")
        for number in range(100):
            await publisher.publish("across.left", str(number).encode())
            await publisher.publish("across.right", str(number).encode())
        await publisher.publish("across.right", SENTINEL)
        assert len(await collect_until_sentinel(right)) == 100
        assert left.pending_msgs == 100
        assert [int(msg.data) for msg in await take_pending(left)] == list(range(100))
