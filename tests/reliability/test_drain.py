"""``stop()`` under load: every request the service accepted before stopping gets its reply
(drain); none sent after ``stop()`` returned reaches it; nothing times out or is lost.

Transport-neutral (real nats-server, memory broker on asyncio and trio).  The endpoint's
handler waits on a gate, so when ``stop()`` is called a backlog is buffered in the
subscription and running in handlers; the gate opens once ``stop()`` is under way.
"""

from __future__ import annotations

import time

import anyio
import anyio.lowlevel
import pytest
from reliability_support import FaultDriver, Load, note, poll_until

from micro import Request, add_service
from transports.base import NoRespondersError
from transports.runtime import current_async_library

pytestmark = pytest.mark.anyio

WORKERS = 16
CONCURRENCY = 4


async def test_stop_under_load_answers_what_it_accepted(fault_driver: FaultDriver) -> None:
    service_conn = await fault_driver.connect("drain-service")
    client_conn = await fault_driver.connect("drain-client")
    gate = anyio.Event()
    entered: list[tuple[float, bytes]] = []

    async def slow(request: Request) -> None:
        entered.append((time.monotonic(), request.data()))
        await gate.wait()
        await request.respond(request.data())

    service = add_service(service_conn, "drain", "1.0.0")
    endpoint = await service.add_endpoint("work", slow, max_concurrency=CONCURRENCY)
    await service.start()
    subscription = endpoint.subscription
    assert subscription is not None

    load = Load(client_conn, "work", timeout=10.0, workers=WORKERS)
    stopped_at = 0.0
    entered_at_stop = 0
    stop_done = anyio.Event()

    async def stop_service() -> None:
        nonlocal stopped_at, entered_at_stop
        await service.stop()
        stopped_at = time.monotonic()
        entered_at_stop = len(entered)
        stop_done.set()

    async with anyio.create_task_group() as group:
        group.start_soon(load.run)
        # every requester's request is at the service: CONCURRENCY in handlers, the rest buffered
        await poll_until(
            lambda: (
                len(entered) == CONCURRENCY and subscription.pending_msgs == WORKERS - CONCURRENCY
            ),
            what="the backlog to build up",
        )
        stop_called_at = time.monotonic()
        group.start_soon(stop_service)
        await anyio.lowlevel.checkpoint()  # stop() is under way
        gate.set()
        with anyio.fail_after(10):
            await stop_done.wait()
        # keep calling after the stop: every such request must find nobody
        await load.wait_until(
            lambda outcomes: sum(o.sent > stopped_at for o in outcomes) >= 2 * WORKERS
        )
        load.stop()

    outcomes = load.outcomes
    answered = {o.reply.data for o in outcomes if o.reply is not None}
    handled = {data for _, data in entered}
    assert handled == answered, "a request the service accepted got no reply (or vice versa)"
    for outcome in outcomes:
        if not outcome.ok:
            assert isinstance(outcome.error, NoRespondersError), outcome.error  # no timeouts
    after = [o for o in outcomes if o.sent > stopped_at]
    assert after
    assert all(isinstance(o.error, NoRespondersError) for o in after)
    assert len(entered) == entered_at_stop, "the service took a request after stop() returned"
    drained = sum(at >= stop_called_at for at, _ in entered)
    assert drained >= WORKERS - CONCURRENCY  # the buffered backlog was handled, not dropped
    assert service.stopped()

    note(
        f"drain[{fault_driver.label}/{current_async_library()}]",
        f"stop() with {CONCURRENCY} requests running and {WORKERS - CONCURRENCY} buffered: "
        f"{drained} drained after stop() was called, all {len(answered)} accepted requests "
        f"answered, stop took {(stopped_at - stop_called_at) * 1e3:.1f} ms, "
        f"{len(after)} later requests got no-responders",
    )
