"""The broker goes away and comes back while a client keeps calling a service.

One scenario body, run on every transport leg through its fault driver (a real nats-server
killed and restarted on the same port; the memory broker's forced disconnect/reconnect):

* every request sent during the outage ends within its timeout with a clear error
  (``RequestTimeoutError`` or ``NoRespondersError``): none hangs, none fails otherwise;
* once the broker is back, the service serves again by itself (its subscriptions are
  restored by the reconnect), without having stopped or reported an error;
* STATS stay consistent: the endpoint counted exactly the requests its handler saw, at least
  every request that was answered, and no error;
* after ``stop()`` no task of the service is left, and after closing the connections no task
  at all.
"""

from __future__ import annotations

import time

import anyio
import pytest
from reliability_support import (
    CLEAN_FAILURES,
    EventLog,
    FaultDriver,
    Load,
    assert_no_leftover_tasks,
    live_tasks,
    note,
)

from micro import Client, Request, add_service
from transports.base import TransportEventKind
from transports.runtime import current_async_library

pytestmark = pytest.mark.anyio

TIMEOUT = 0.25
"""Each request's timeout: failures during the outage take at most this long."""
SLACK = 0.5
"""How much later than its timeout a failed request may end (a loaded, shared machine)."""


async def test_service_resumes_after_the_broker_restarts(fault_driver: FaultDriver) -> None:
    service_conn = await fault_driver.connect("restart-service")
    client_conn = await fault_driver.connect("restart-client")
    service_events, client_events = EventLog(service_conn), EventLog(client_conn)
    baseline = live_tasks()

    handled: list[bytes] = []
    reported: list[BaseException] = []

    async def echo(request: Request) -> None:
        handled.append(request.data())
        await request.respond(request.data())

    service = add_service(
        service_conn,
        "restart",
        "1.0.0",
        error_handler=lambda _service, error: reported.append(error),
    )
    await service.add_endpoint("echo", echo)
    await service.start()

    load = Load(client_conn, "echo", timeout=TIMEOUT, workers=2)
    async with anyio.create_task_group() as group:
        group.start_soon(load.run)
        await load.wait_until(lambda outcomes: sum(o.ok for o in outcomes) >= 20)

        down_at = time.monotonic()
        async with fault_driver.outage():
            await service_events.wait_for(TransportEventKind.DISCONNECTED)
            await client_events.wait_for(TransportEventKind.DISCONNECTED)
            failed_before = sum(not o.ok for o in load.outcomes)
            # hold the outage until requests sent during it have failed (an event, no timer)
            await load.wait_until(
                lambda outcomes: sum(not o.ok for o in outcomes) >= failed_before + 4
            )
        up_at = time.monotonic()

        await load.wait_until(lambda outcomes: any(o.ok and o.sent >= up_at for o in outcomes))
        resumed_at = min(o.ended for o in load.outcomes if o.ok and o.sent >= up_at)
        await load.wait_until(
            lambda outcomes: sum(o.ok and o.sent >= up_at for o in outcomes) >= 20
        )
        load.stop()

    outcomes = load.outcomes
    failures = [o for o in outcomes if not o.ok]
    during = [o for o in failures if down_at <= o.sent <= up_at]
    assert during, "no request was sent while the broker was away"
    for outcome in failures:
        assert isinstance(outcome.error, CLEAN_FAILURES)
        assert outcome.duration <= TIMEOUT + SLACK, (
            f"request {outcome.index} took {outcome.duration:.3f} s"
        )
    for outcome in outcomes:
        if outcome.ok:
            assert outcome.reply is not None
            assert outcome.reply.data == Load.payload(outcome.index)  # nobody got another's reply
    assert not service.stopped()
    assert service_events.count(TransportEventKind.RECONNECTED) == 1
    assert client_events.count(TransportEventKind.RECONNECTED) == 1

    # STATS over the network, from the recovered service
    with anyio.fail_after(5):
        [stats] = await Client(client_conn).stats("restart", max_count=1)
    [endpoint] = stats.endpoints
    answered = sum(o.ok for o in outcomes)
    assert endpoint.num_requests == len(handled)
    assert answered <= endpoint.num_requests <= len(outcomes)
    assert endpoint.num_errors == 0, endpoint.last_error
    assert reported == []

    await service.stop()
    await assert_no_leftover_tasks(baseline, only_ours=True)
    service_events.close()
    client_events.close()
    await fault_driver.aclose()
    await assert_no_leftover_tasks(baseline, only_ours=False)

    note(
        f"restart[{fault_driver.label}/{current_async_library()}]",
        f"outage {up_at - down_at:.3f} s, resumed {resumed_at - up_at:.3f} s after the broker "
        f"came back; {len(during)} request(s) failed cleanly during the outage "
        f"({sum(isinstance(o.error, CLEAN_FAILURES[0]) for o in failures)} timeouts, "
        f"{sum(isinstance(o.error, CLEAN_FAILURES[1]) for o in failures)} no-responders in all), "
        f"{answered}/{len(outcomes)} answered, handler saw {len(handled)}",
    )
