"""Unit-testing a handler: no broker, no server, no fixtures -- call it with a stub request."""

from __future__ import annotations

import json

import pytest
from orders import create_order

from testing import make_request

pytestmark = pytest.mark.anyio


async def test_an_order_is_created() -> None:
    stub = make_request("orders.eu.create", json.dumps({"item": "tea", "quantity": 2}).encode())
    await create_order(stub)
    assert stub.responded
    assert stub.error_code is None
    assert stub.json_response() == {"item": "tea", "status": "created"}


@pytest.mark.parametrize(
    ("body", "code"),
    [(b"not json", 400), (b'{"item": "tea"}', 400), (b'{"item": "tea", "quantity": 0}', 422)],
)
async def test_bad_orders_are_refused(body: bytes, code: int) -> None:
    from micro import ServiceError

    stub = make_request("orders.eu.create", body)
    with pytest.raises(ServiceError) as refused:  # in a service: an error reply with this code
        await create_order(stub)
    assert refused.value.code == code
