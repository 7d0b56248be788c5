"""Virtual time on the memory leg: trio's ``MockClock`` with autojump, through anyio.

With ``anyio_backend = ("trio", {"clock": MockClock(autojump_threshold=0)})`` the clock
jumps ahead whenever every task is blocked, so request timeouts, ``next_msg`` timeouts,
delayed messages and discovery waits take no real time while keeping their order.
"""

from __future__ import annotations

import time

import anyio
import pytest
from trio.testing import MockClock

from micro import Client, Request, add_service
from transports.base import RequestTimeoutError
from transports.memory import MemoryBroker

pytestmark = pytest.mark.anyio

REAL_BUDGET = 2.0  # seconds of wall time the whole test may take (it should take ~0)


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


async def test_a_request_timeout_takes_no_real_time(micro_broker: MemoryBroker) -> None:
    responder = await micro_broker.connect()
    requester = await micro_broker.connect()
    await responder.subscribe("silent")  # listens, never answers
    real, virtual = time.monotonic(), anyio.current_time()
    with pytest.raises(RequestTimeoutError):
        await requester.request("silent", b"x", timeout=30.0)
    assert anyio.current_time() - virtual >= 30.0
    assert time.monotonic() - real < REAL_BUDGET


async def test_next_msg_and_delays_follow_the_virtual_clock(micro_broker: MemoryBroker) -> None:
    conn = await micro_broker.connect()
    sub = await conn.subscribe("later")
    real, virtual = time.monotonic(), anyio.current_time()
    with pytest.raises(TimeoutError):
        await sub.next_msg(timeout=60.0)
    micro_broker.delay("later", 3600.0)
    await conn.publish("later", b"an hour later")
    msg = await sub.next_msg(timeout=7200.0)
    assert msg.data == b"an hour later"
    assert anyio.current_time() - virtual >= 60.0 + 3600.0
    assert time.monotonic() - real < REAL_BUDGET


async def test_a_slow_handler_and_discovery_waits_take_no_real_time(
    micro_broker: MemoryBroker,
) -> None:
    async def slow(request: Request) -> None:
        await anyio.sleep(10.0)  # "a slow database"
        await request.respond(b"done")

    service = add_service(await micro_broker.connect(), "slow", "1.0.0")
    client = Client(await micro_broker.connect())
    real = time.monotonic()
    async with service:
        await service.add_endpoint("work", slow)
        assert (await client.request("work", timeout=20.0)).data == b"done"
        with pytest.raises(TimeoutError):
            await client.request("work", timeout=5.0)
        await micro_broker.wait_idle(timeout=60.0)  # the timed-out request's handler ends
        assert len(await client.ping("slow", max_wait=30.0)) == 1
    assert time.monotonic() - real < REAL_BUDGET
