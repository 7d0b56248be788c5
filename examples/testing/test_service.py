"""Testing a whole service on the in-memory broker: requests, discovery, stats, traffic.

``micro_broker`` (from the ``nats-service-kit`` pytest plugin) is a fresh broker per test: no
server, microseconds per request, and strict -- a handler that crashes fails the test with
its own traceback instead of hiding behind a 500 reply.
"""

from __future__ import annotations

import json

import pytest
from orders import start_orders

from micro import Client, ServiceError
from transports.memory import MemoryBroker

pytestmark = pytest.mark.anyio


async def test_orders_service_end_to_end(micro_broker: MemoryBroker) -> None:
    service = await start_orders(await micro_broker.connect(), "eu")
    client = Client(await micro_broker.connect())
    with micro_broker.record() as traffic:
        reply = await client.request(
            "orders.eu.create", json.dumps({"item": "tea", "quantity": 1}).encode()
        )
        assert json.loads(reply.data) == {"item": "tea", "status": "created"}
        with pytest.raises(ServiceError) as refused:
            await client.request("orders.eu.create", b'{"quantity": -1}')
        assert refused.value.code == 422

        [info] = await client.info("orders")
        assert (info.version, info.metadata) == ("1.2.0", {"region": "eu"})
        assert [endpoint.subject for endpoint in info.endpoints] == ["orders.eu.create"]
        [stats] = await client.stats("orders")
        assert (stats.endpoints[0].num_requests, stats.endpoints[0].num_errors) == (2, 1)
        assert stats.endpoints[0].last_error == "422:quantity must be positive"

    # Every request got an answer, and discovery went over $SRV as it should.
    assert traffic.matching("orders.>").unanswered() == []
    assert traffic.matching("$SRV.INFO.orders").requests()
    await service.stop()


async def test_two_instances_share_the_work(micro_broker: MemoryBroker) -> None:
    first = await start_orders(await micro_broker.connect(), "eu")
    second = await start_orders(await micro_broker.connect(), "eu")
    client = Client(await micro_broker.connect())
    for _ in range(20):
        await client.request("orders.eu.create", b'{"quantity": 1}')
    await micro_broker.wait_idle()  # every handler has finished
    counts = [s.stats().endpoints[0].num_requests for s in (first, second)]
    assert sum(counts) == 20
    assert min(counts) > 0  # the queue group spread them (seeded: the same split every run)
    assert len(await client.ping("orders")) == 2
    await first.stop()
    await second.stop()
