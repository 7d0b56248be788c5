"""An App with a service name is a core Service: $SRV discovery, endpoints, statistics."""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
import pytest

from micro.app import App, AppFailedError, Message
from micro.errors import ServiceError
from transports.base import NoRespondersError, Transport
from transports.memory import MemoryBroker

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
            ("create", "orders.create", "q"),  # a service's listener: the service's queue group
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
    assert [e["name"] for e in info["endpoints"]] == ["lambda", "lambda_2", "h_llo_w_rld"]


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


# --------------------------------------------------------------------------- one serving path


@pytest.mark.parametrize("service_name", [None, "listeners"])
async def test_listener_errors_follow_the_endpoint_rules_with_or_without_a_service_name(
    service_name: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    """Every listener is an endpoint: the same error replies, logs and strict-broker
    reports whether the app is discoverable or not."""
    broker = MemoryBroker(strict=True)
    connection = await broker.connect()
    version = None if service_name is None else "1.0.0"
    app = App(transport=connection, service_name=service_name, service_version=version)

    @app.listen(subject="fragile", data_type=str)
    async def fragile(msg: Message) -> str:
        if msg.data == "typed":
            raise ServiceError(409, "conflict")
        if msg.data == "boom":
            raise RuntimeError("kaboom")
        return "fine"

    @app.listen(subject="objects", data_type=dict)
    async def objects(msg: Message) -> None:
        pass

    try:
        with caplog.at_level(logging.INFO):
            async with app:
                with pytest.raises(ServiceError, match="409:conflict"):
                    await app.request("fragile", "typed", data_type=str)
                with pytest.raises(ServiceError, match="400:cannot decode payload as dict"):
                    await app.request("objects", [1])
                await broker.wait_idle()  # a ServiceError (decode failures too) is an answer
                with pytest.raises(ServiceError, match="500:Internal Server Error"):
                    await app.request("fragile", "boom", data_type=str)
                with pytest.raises(RuntimeError, match="kaboom"):
                    await broker.wait_idle()  # the strict broker re-raises the failure
                reply = await app.request("fragile", "on", data_type=str, response_data_type=str)
                assert reply == "fine"  # it keeps serving
    finally:
        await connection.close()
    messages = [record.getMessage() for record in caplog.records]
    assert [str(r.exc_info[1]) for r in caplog.records if r.exc_info] == ["kaboom"]
    assert sum("cannot decode payload as dict" in m for m in messages) == 1  # logged once
    assert not any("conflict" in m for m in messages)  # an answer, not logged


async def test_a_listener_without_a_service_name_is_an_endpoint_of_a_hidden_service(
    url: str, client: Transport
) -> None:
    app = App(url)

    @app.listen(subject="hidden.work", queue="workers")
    async def work(msg: Message) -> str:
        return "done"

    async with app:
        assert app.service is None  # the service serving its listeners is not offered
        assert await client.request("hidden.work", b"1", timeout=WAIT)
        with pytest.raises(NoRespondersError):
            await client.request("$SRV.INFO", b"", timeout=WAIT)
