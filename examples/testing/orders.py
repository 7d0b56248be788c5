"""The service the testing examples test: an ``orders`` service, one instance per region.

Orders are published to ``orders.<region>.<kind>`` (:func:`order_subject`); each region's
instance serves ``orders.<region>.create`` and listens to every subject of its region.
"""

from __future__ import annotations

from micro import Request, Service, ServiceError, add_service
from transports.base import Transport

REGIONS = ("eu", "us", "apac")


def order_subject(region: str, kind: str) -> str:
    """The routing rule: where an order of ``kind`` for ``region`` is published."""
    return f"orders.{region}.{kind}"


def region_pattern(region: str) -> str:
    """What the ``region`` instance subscribes to: every order subject of its region."""
    return f"orders.{region}.>"


async def create_order(request: Request) -> None:
    """Create an order from a JSON body ``{"item": str, "quantity": int}``."""
    try:
        order = request.json()
    except ValueError:
        raise ServiceError(400, "the body must be JSON") from None
    if not isinstance(order, dict) or not isinstance(order.get("quantity"), int):
        raise ServiceError(400, "quantity must be an integer")
    if order["quantity"] <= 0:
        raise ServiceError(422, "quantity must be positive")
    await request.respond_json({"item": order.get("item"), "status": "created"})


async def start_orders(transport: Transport, region: str) -> Service:
    """Start the ``region`` instance of the orders service (stop it with ``stop()``)."""
    service = add_service(
        transport, "orders", "1.2.0", description="takes orders", metadata={"region": region}
    )
    await service.start()
    await service.add_group(f"orders.{region}").add_endpoint("create", create_order)
    return service
