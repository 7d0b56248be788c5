"""Fault injection on the in-memory broker: lost replies, redeliveries, a dropped connection.

The caller below retries on timeout.  Without an idempotency key, a lost reply makes the
service create the order twice; the fault rule shows it deterministically, in milliseconds.
"""

from __future__ import annotations

import pytest

from micro import Client, Request, add_service
from transports.base import NoRespondersError
from transports.memory import MemoryBroker

pytestmark = pytest.mark.anyio


async def test_a_lost_reply_and_a_retry_create_two_orders(micro_broker: MemoryBroker) -> None:
    created: list[bytes] = []

    async def create(request: Request) -> None:
        created.append(request.data())
        await request.respond(b"ok")

    service = add_service(await micro_broker.connect(), "orders", "1.0.0")
    client = Client(await micro_broker.connect())
    async with service:
        await service.add_endpoint("create", create, subject="orders.create")
        with micro_broker.drop("_INBOX.>", times=1):  # the first reply never arrives
            for _attempt in range(2):
                try:
                    await client.request("orders.create", b"order-1", timeout=0.1)
                    break
                except TimeoutError:
                    continue
        await micro_broker.wait_idle()
    assert created == [b"order-1", b"order-1"]  # the bug: no idempotency key


async def test_requests_fail_fast_while_the_service_is_disconnected(
    micro_broker: MemoryBroker,
) -> None:
    async def echo(request: Request) -> None:
        await request.respond(request.data())

    connection = await micro_broker.connect(name="service")
    service = add_service(connection, "echo", "1.0.0")
    client = Client(await micro_broker.connect())
    async with service:
        await service.add_endpoint("echo", echo)
        with connection.disconnected():  # DISCONNECTED ... RECONNECTED, like nats-py
            assert not connection.is_connected
            with pytest.raises(NoRespondersError):
                await client.request("echo", b"x")
        assert (await client.request("echo", b"back")).data == b"back"
