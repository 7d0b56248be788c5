"""An App with a service name is a core Service: $SRV discovery, endpoints, statistics."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from micro.app import App, AppFailedError, Message
from micro.errors import ServiceError
from transports.base import NoRespondersError, Transport

pytestmark = pytest.mark.anyio

WAIT = 5.0


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _srv(client: Transport, subject: str) -> dict[str, Any]:
    reply = await client.request(subject, b"", timeout=WAIT)
    document = json.loads(reply.data)
    assert isinstance(document, dict)
    return document


def _make_app(url: str) -> App:
    app = App(
        url,
        service_name="orders",
        service_version="1.2.3",
        service_description="takes orders",
        service_metadata={"team": "blue"},
    )

    @app.listen(subject="orders.create", data_type=dict)
    async def create(msg: Message) -> dict[str, Any]:
        if msg.data.get("fail"):
            raise ServiceError(409, "conflict")
        return {"id": 1}

    @app.listen(subject="orders.events", queue="auditors", name="audit")
    async def audit(msg: Message) -> None:
        pass

    return app


async def test_the_app_answers_srv_ping_info_and_stats(url: str, client: Transport) -> None:
    app = _make_app(url)
    async with app:
        assert app.service is not None
        service_id = app.service.id
        ping = await _srv(client, "$SRV.PING.orders")
        assert (ping["name"], ping["version"], ping["id"]) == ("orders", "1.2.3", service_id)
        assert ping["metadata"] == {"team": "blue"}
        info = await _srv(client, f"$SRV.INFO.orders.{service_id}")
        assert info["description"] == "takes orders"
        assert [(e["name"], e["subject"], e["queue_group"]) for e in info["endpoints"]] == [
            ("create", "orders.create", ""),
            ("audit", "orders.events", "auditors"),
        ]

        assert await app.request("orders.create", {"item": "x"}) == {"id": 1}
        with pytest.raises(ServiceError, match="409:conflict"):
            await app.request("orders.create", {"fail": True})
        with pytest.raises(ServiceError, match="400:cannot decode payload as dict"):
            await app.request("orders.create", [1])
        stats = await _srv(client, "$SRV.STATS.orders")
        create = stats["endpoints"][0]
        assert create["name"] == "create"
        assert create["num_requests"] == 3
        assert create["num_errors"] == 2
        assert create["last_error"].startswith("400:cannot decode payload as dict")
    with pytest.raises(NoRespondersError):
        await client.request("$SRV.PING.orders", b"", timeout=WAIT)


async def test_dynamic_subscriptions_are_endpoints_too(url: str, client: Transport) -> None:
    app = _make_app(url)
    async with app:
        assert app.service is not None

        async def price(msg: Message) -> float:
            return 9.5

        ssid = await app.subscribe_new_subject("orders.price", price, name="price")
        assert await app.request("orders.price", None) == 9.5
        info = await _srv(client, "$SRV.INFO.orders")
        assert [e["name"] for e in info["endpoints"]] == ["create", "audit", "price"]
        await app.unsubscribe_ssid(ssid)
        info = await _srv(client, "$SRV.INFO.orders")
        assert [e["name"] for e in info["endpoints"]] == ["create", "audit"]
        with pytest.raises(NoRespondersError):
            await app.request("orders.price", None)
        await app.unsubscribe_subject("orders.events")
        info = await _srv(client, "$SRV.INFO.orders")
        assert [e["name"] for e in info["endpoints"]] == ["create"]


async def test_endpoint_names_come_from_the_function(url: str, client: Transport) -> None:
    app = App(url, service_name="names", service_version="0.0.1")
    handlers = []
    for subject in ("a", "b"):
        handlers.append(app.listen(subject=subject)(lambda msg: None))

    @app.listen(subject="c")
    async def héllo_wörld(msg: Message) -> None:  # non-ASCII letters become '_'
        pass

    async with app:
        info = await _srv(client, "$SRV.INFO.names")
    assert [e["name"] for e in info["endpoints"]] == ["lambda", "lambda", "h_llo_w_rld"]


async def test_an_app_without_service_name_is_not_discoverable(url: str, client: Transport) -> None:
    app = App(url)

    @app.listen(subject="plain")
    async def plain(msg: Message) -> None:
        pass

    async with app:
        assert app.service is None
        with pytest.raises(NoRespondersError):
            await client.request("$SRV.PING", b"", timeout=WAIT)


async def test_losing_the_connection_stops_the_app_with_an_error(
    broker_name: str, client: Transport
) -> None:
    from transports.memory import get_broker

    connection = await get_broker(broker_name).connect()
    app = App(transport=connection, service_name="fragile", service_version="1.0.0")

    serving = anyio.Event()

    @app.listen(subject="x")
    async def x(msg: Message) -> None:
        pass

    @app.task()
    async def started() -> None:  # tasks start once every listener is live
        serving.set()

    async def close_soon() -> None:
        await serving.wait()
        await client.request("$SRV.PING.fragile", b"", timeout=WAIT)
        await connection.close()

    failures: list[AppFailedError] = []

    async def run_app() -> None:
        try:
            await app.run(handle_signals=False)
        except AppFailedError as exc:
            failures.append(exc)

    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as group:
            group.start_soon(run_app)
            await close_soon()
    assert len(failures) == 1
    assert "the connection closed while the app ran" in str(failures[0].__cause__)
    assert not app.is_running
