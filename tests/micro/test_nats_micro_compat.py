"""Our services through the eyes of nats-py's consumers, against a real nats-server.

* plain nats-py ``request`` on ``$SRV.PING/INFO/STATS``, decoded by nats-py's own
  ``nats.micro`` models;
* ``nats_contrib.micro.Client`` (the ``nats-micro`` package): discovery and endpoint calls;
* plain nats-py requests to endpoints (error headers as nats-py exposes them);
* the ``nats_contrib.micro``-compat path: ``add_service(nc, ...)`` with a raw nats-py client,
  code written for ``nats_contrib.micro`` unchanged.

Tests may import ``nats``; library code may not.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import anyio
import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.micro.service import ServiceInfo as NatsPyInfo
from nats.micro.service import ServicePing as NatsPyPing
from nats.micro.service import ServiceStats as NatsPyStats
from nats_contrib.micro import Client as ContribClient
from nats_contrib.micro import ServiceError as ContribServiceError

from micro.endpoint import Endpoint
from micro.request import Request
from micro.service import Service, add_service
from transports.nats import NatsTransport

pytestmark = pytest.mark.anyio

WAIT = 5.0
STARTED = datetime(2024, 5, 1, 10, 20, 30, 123000, tzinfo=timezone.utc)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def nc(micro_nats_server: Any) -> AsyncIterator[NatsClient]:
    client = await nats.connect(micro_nats_server.url)
    yield client
    await client.close()


@pytest.fixture
async def requester(micro_nats_server: Any) -> AsyncIterator[NatsClient]:
    client = await nats.connect(micro_nats_server.url)
    yield client
    await client.close()


async def echo(request: Request) -> None:
    await request.respond(request.data())


async def fail(request: Request) -> None:
    await request.respond_error(418, "teapot", b"details")


def endpoint_data(endpoint: Endpoint) -> dict[str, object]:
    return {"endpoint": endpoint.name}


async def start_calc(transport: Any, **options: Any) -> Service:
    service = add_service(
        transport,
        "calc",
        "1.2.3",
        description="adds things",
        metadata={"team": "core"},
        now=lambda: STARTED,
        **options,
    )
    await service.add_endpoint("echo", echo, metadata={"kind": "demo"})
    await service.add_group("math").add_endpoint("fail", fail)
    await service.start()
    return service


async def test_nats_py_models_decode_our_control_replies(
    micro_nats_server: Any, requester: NatsClient
) -> None:
    transport = await NatsTransport.connect(micro_nats_server.url)
    # nats-py's EndpointStats.from_dict requires a "data" key: give it one
    service = await start_calc(transport, stats_handler=endpoint_data)
    try:
        await requester.request("echo", b"x", timeout=WAIT)
        ping = NatsPyPing.from_dict(json.loads((await requester.request("$SRV.PING.calc")).data))
        assert (ping.name, ping.id, ping.version, ping.metadata) == (
            "calc",
            service.id,
            "1.2.3",
            {"team": "core"},
        )
        info = NatsPyInfo.from_dict(json.loads((await requester.request("$SRV.INFO.calc")).data))
        assert info.description == "adds things"
        assert [(e.name, e.subject, e.queue_group, e.metadata) for e in info.endpoints] == [
            ("echo", "echo", "q", {"kind": "demo"}),
            ("fail", "math.fail", "q", None),
        ]
        stats = NatsPyStats.from_dict(
            json.loads((await requester.request(f"$SRV.STATS.calc.{service.id}")).data)
        )
        assert stats.started == STARTED.replace(tzinfo=None)
        assert [(e.name, e.num_requests, e.data) for e in stats.endpoints] == [
            ("echo", 1, {"endpoint": "echo"}),
            ("fail", 0, {"endpoint": "fail"}),
        ]
    finally:
        await service.stop()
        await transport.close()


async def test_plain_nats_py_request_sees_replies_and_error_headers(
    micro_nats_server: Any, requester: NatsClient
) -> None:
    transport = await NatsTransport.connect(micro_nats_server.url)
    service = await start_calc(transport)
    try:
        reply = await requester.request("echo", b"hello", timeout=WAIT)
        assert reply.data == b"hello"
        assert not reply.headers
        error = await requester.request("math.fail", b"", timeout=WAIT)
        assert error.data == b"details"
        assert error.headers == {
            "Nats-Service-Error": "teapot",
            "Nats-Service-Error-Code": "418",
        }
    finally:
        await service.stop()
        await transport.close()


async def test_contrib_client_discovers_and_calls_our_service(
    micro_nats_server: Any, requester: NatsClient
) -> None:
    transport = await NatsTransport.connect(micro_nats_server.url)
    service = await start_calc(transport)
    try:
        client = ContribClient(requester)
        pings = await client.ping("calc", max_count=1, max_wait=WAIT)
        assert [(p.name, p.id, p.version) for p in pings] == [("calc", service.id, "1.2.3")]
        infos = await client.info("calc", max_count=1, max_wait=WAIT)
        assert [e.subject for e in infos[0].endpoints] == ["echo", "math.fail"]
        await client.request("echo", b"counted", timeout=WAIT)
        stats = await client.stats("calc", max_count=1, max_wait=WAIT)
        assert stats[0].started == STARTED
        assert [(e.name, e.num_requests) for e in stats[0].endpoints] == [
            ("echo", 1),
            ("fail", 0),
        ]
        instance = await client.instance("calc", service.id).info(timeout=WAIT)
        assert instance.id == service.id
        with pytest.raises(ContribServiceError) as caught:
            await client.request("math.fail", b"", timeout=WAIT)
        assert (caught.value.code, caught.value.description) == (418, "teapot")
    finally:
        await service.stop()
        await transport.close()


async def test_seed_code_runs_unchanged_on_a_raw_nats_py_client(
    nc: NatsClient, requester: NatsClient
) -> None:
    # what code written for nats_contrib.micro does: pass the nats-py client itself
    service = add_service(nc, "seed", "0.1.0", queue_group="workers")

    async def hello(request: Request) -> None:
        await request.respond(b"hello " + request.data(), headers={"x": "y"})

    async with service:
        group = service.add_group("greet", queue_group="greeters")
        await group.add_endpoint("hello", hello)
        await service.add_endpoint("plain", echo)
        reply = await requester.request("greet.hello", b"world", timeout=WAIT)
        assert reply.data == b"hello world"
        assert reply.headers == {"x": "y"}
        info = service.info()
        assert [(e.subject, e.queue_group) for e in info.endpoints] == [
            ("greet.hello", "greeters"),
            ("plain", "workers"),
        ]
        assert service.stats().endpoints[0].num_requests == 1
    assert service.stopped()
    assert nc.is_connected  # the user's client is not ours to close
    second = add_service(nc, "seed2", "0.1.0")  # the same client is adopted once
    assert second.transport is service.transport


async def test_closing_the_raw_client_stops_services_on_it(nc: NatsClient) -> None:
    service = add_service(nc, "seed", "0.1.0")
    await service.start()
    await nc.close()
    with anyio.fail_after(WAIT):
        assert await service.wait_stopped() is None
    assert service.stopped()
