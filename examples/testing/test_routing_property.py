"""A property test of a routing rule: each region's instance gets exactly its region's orders.

Hypothesis draws regions and arbitrary valid subject tokens (``testing.strategies``); each
example runs on a fresh in-memory broker, so hundreds of examples take about a second.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from orders import REGIONS, order_subject, region_pattern

from testing import strategies as mst
from transports.memory import MemoryBroker

pytestmark = pytest.mark.anyio


@settings(max_examples=200, deadline=None)
@given(
    listener=st.sampled_from(REGIONS),
    orders=st.lists(st.tuples(st.sampled_from(REGIONS), mst.tokens()), min_size=1, max_size=8),
)
async def test_a_region_receives_exactly_its_orders(
    listener: str, orders: list[tuple[str, str]]
) -> None:
    broker = MemoryBroker()
    subscriber = await broker.connect()
    publisher = await broker.connect()
    sub = await subscriber.subscribe(region_pattern(listener))
    for region, kind in orders:
        await publisher.publish(order_subject(region, kind), b"order")
    await publisher.publish(order_subject(listener, "end"), b"sentinel")  # arrives last
    got = []
    while (msg := await sub.next_msg(timeout=5)).data != b"sentinel":
        got.append(msg.subject)
    assert got == [order_subject(r, k) for r, k in orders if r == listener]
    await subscriber.close()
    await publisher.close()


@given(kind=mst.tokens())
def test_every_token_makes_a_valid_subject(kind: str) -> None:
    from transports.subjects import is_valid_subject

    for region in REGIONS:
        assert is_valid_subject(order_subject(region, kind))
