"""A slow endpoint under a flood: bounded memory, visible drops, a publisher that never blocks.

The endpoint's handler is stuck (a gate) with a small pending limit; a publisher floods it.
Then:

* the subscription never buffers more than its limit (memory stays bounded);
* every message is accounted for: handled + buffered + dropped == published (nothing is lost
  silently), and the drops are visible three ways: ``ERROR`` events carrying a
  ``SlowConsumerError`` for the endpoint's subject, the service's ``error_handler``, and the
  endpoint's ``num_errors`` / ``last_error``;
* the publisher finished the whole flood within a bound (it is never blocked by the slow
  consumer);
* the service keeps serving (our ruling: drops are load, not a broken subscription; nats.go
  would stop the service): once the handler is unstuck it works through its buffer and
  answers new requests, and ``stop()`` then ends it normally.
"""

from __future__ import annotations

import time

import anyio
import pytest
from reliability_support import EventLog, FaultDriver, note

from micro import Request, Service, add_service
from transports.base import SlowConsumerError
from transports.runtime import current_async_library

pytestmark = pytest.mark.anyio

LIMIT = 20
FLOOD = 2_000
SIZE = 100


async def test_slow_endpoint_under_a_flood(fault_driver: FaultDriver) -> None:
    service_conn = await fault_driver.connect("flood-service")
    publisher = await fault_driver.connect("flood-publisher")
    events = EventLog(service_conn)
    gate = anyio.Event()
    first = anyio.Event()
    handled: list[bytes] = []
    reported: list[BaseException] = []
    done: list[Service] = []

    drained = anyio.Event()

    async def stuck(request: Request) -> None:
        handled.append(request.data())
        first.set()
        await gate.wait()
        if len(handled) == LIMIT + 1:
            drained.set()  # the first message and the whole buffer have been handled
        if request.reply():
            await request.respond(b"ok")

    service = add_service(
        service_conn,
        "flood",
        "1.0.0",
        error_handler=lambda _service, error: reported.append(error),
        done_handler=done.append,
    )
    endpoint = await service.add_endpoint("sink", stuck, pending_msgs_limit=LIMIT)
    await service.start()
    subscription = endpoint.subscription
    assert subscription is not None

    await publisher.publish("sink", b"first")
    with anyio.fail_after(5):
        await first.wait()  # the handler is stuck from now on
    payload = b"x" * SIZE
    started = time.monotonic()
    with anyio.fail_after(10):  # the publisher is never blocked by the slow consumer
        for _ in range(FLOOD):
            await publisher.publish("sink", payload)
        await publisher.flush()
    publish_seconds = time.monotonic() - started

    def drops() -> list[SlowConsumerError]:
        return [error for error in events.errors() if isinstance(error, SlowConsumerError)]

    def accounted() -> bool:
        reported_drops = sum(error.dropped for error in drops())
        return (
            len(handled) + subscription.pending_msgs + subscription.dropped == FLOOD + 1
            and reported_drops == subscription.dropped
        )

    await events.wait_until(accounted)  # every drop is reported by an event: wait on them
    assert subscription.pending_msgs <= LIMIT
    assert subscription.pending_bytes <= LIMIT * SIZE
    assert subscription.dropped >= FLOOD - LIMIT

    assert {error.subject for error in drops()} == {"sink"}

    gate.set()
    with anyio.fail_after(10):
        await drained.wait()
        reply = await publisher.request("sink", b"after the flood", timeout=5)
    assert reply.data == b"ok"
    assert not service.stopped()
    assert reported
    assert all(isinstance(error, SlowConsumerError) for error in reported)
    stats = endpoint.stats
    assert stats.num_errors >= 1
    assert "slow consumer" in stats.last_error
    assert stats.num_requests == len(handled) == LIMIT + 2  # buffer drained, then one more
    with anyio.fail_after(10):
        await service.stop()
    assert service.stop_error is None
    assert done == [service]

    note(
        f"flood[{fault_driver.label}/{current_async_library()}]",
        f"{FLOOD} x {SIZE} B published in {publish_seconds * 1e3:.0f} ms at a stuck endpoint "
        f"(pending limit {LIMIT}): {subscription.dropped} dropped and reported, "
        f"{len(handled)} handled, {len(drops())} slow-consumer events",
    )
