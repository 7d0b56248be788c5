"""``micro.client``: discovery, scoped clients, tolerant parsing, requests (memory transport)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.abc
import pytest

from micro.client import (
    Client,
    EndpointNotFoundError,
    InstanceClient,
    ServiceClient,
    ServiceNotFoundError,
)
from micro.control import INFO_RESPONSE_TYPE, PING_RESPONSE_TYPE, STATS_RESPONSE_TYPE
from micro.errors import ServiceError, ValidationError
from micro.models import PingInfo, ServiceInfo, ServiceStats
from micro.request import Request
from micro.service import Service, add_service
from transports.base import NoRespondersError, RequestTimeoutError, Subscription, Transport
from transports.memory import MemoryBroker

pytestmark = pytest.mark.anyio

LONG = 5.0
FAST = 1.0


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def echo(request: Request) -> None:
    await request.respond(request.data())


async def fail(request: Request) -> None:
    await request.respond_error(411, "data required", data=b"details", headers={"k": "v"})


class World:
    """A broker, services on their own connections, a client on another; all closed at the end."""

    def __init__(self, broker: MemoryBroker, tg: anyio.abc.TaskGroup) -> None:
        self.broker = broker
        self.tg = tg
        self.services: list[Service] = []
        self.transports: list[Transport] = []

    async def connect(self) -> Transport:
        transport = await self.broker.connect()
        self.transports.append(transport)
        return transport

    async def service(self, name: str = "svc", version: str = "1.0.0", **options: Any) -> Service:
        service = add_service(await self.connect(), name, version, **options)
        await service.add_endpoint("echo", echo)
        await service.add_endpoint("fail", fail)
        await service.start()
        self.services.append(service)
        return service

    async def junk(self, subject: str, *payloads: bytes) -> None:
        """A raw responder answering each message on ``subject`` with ``payloads``."""
        transport = await self.connect()
        sub = await transport.subscribe(subject)
        self.tg.start_soon(self._answer, transport, sub, payloads)

    @staticmethod
    async def _answer(transport: Transport, sub: Subscription, payloads: tuple[bytes, ...]) -> None:
        async for msg in sub:
            assert msg.reply is not None
            for payload in payloads:
                await transport.publish(msg.reply, payload)

    async def aclose(self) -> None:
        for service in self.services:
            await service.stop()
        for transport in self.transports:
            await transport.close()


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with anyio.create_task_group() as tg:
        w = World(MemoryBroker(seed=7), tg)
        yield w
        await w.aclose()


@pytest.fixture
async def client(world: World) -> Client:
    return Client(await world.connect())


# --------------------------------------------------------------------------- construction


def test_a_non_transport_is_rejected() -> None:
    with pytest.raises(TypeError, match="transport must be"):
        Client(object())


async def test_bad_prefix_and_default_wait_are_rejected(world: World) -> None:
    transport = await world.connect()
    with pytest.raises(ValidationError, match="api prefix"):
        Client(transport, api_prefix="a.>")
    with pytest.raises(ValueError, match="max_wait"):
        Client(transport, default_max_wait=0)


async def test_bad_names_are_rejected_before_sending(client: Client) -> None:
    with pytest.raises(ValidationError, match=r"a\.b"):
        await client.ping("a.b")
    with pytest.raises(ValidationError):
        client.service("no spaces")
    with pytest.raises(ValidationError):
        client.instance("svc", "bad.id")
    with pytest.raises(ValueError, match="max_count"):
        client.ping_iter(max_count=0)


# --------------------------------------------------------------------------- discovery


async def test_ping_info_stats_all_by_name_and_by_instance(world: World, client: Client) -> None:
    one = await world.service("svc", "1.2.3")
    other = await world.service("other", "0.1.0")
    assert {p.id for p in await client.ping(max_count=2, max_wait=LONG)} == {one.id, other.id}
    pings = await client.ping("svc")
    assert [(p.name, p.id, p.version, p.type) for p in pings] == [
        ("svc", one.id, "1.2.3", PING_RESPONSE_TYPE)
    ]
    infos = await client.info("svc")
    assert isinstance(infos[0], ServiceInfo)
    assert [e.name for e in infos[0].endpoints] == ["echo", "fail"]
    assert infos[0].type == INFO_RESPONSE_TYPE
    stats = await client.stats("other")
    assert isinstance(stats[0], ServiceStats)
    assert (stats[0].id, stats[0].type) == (other.id, STATS_RESPONSE_TYPE)

    instance = client.instance("svc", one.id)
    assert isinstance(instance, InstanceClient)
    assert (await instance.ping()).id == one.id
    assert (await instance.info()).id == one.id
    assert (await instance.stats()).id == one.id


async def test_service_client_narrows_to_one_name(world: World, client: Client) -> None:
    first = await world.service("svc")
    second = await world.service("svc")
    await world.service("other")
    scoped = client.service("svc")
    assert isinstance(scoped, ServiceClient)
    assert {p.id for p in await scoped.ping(max_count=2, max_wait=LONG)} == {first.id, second.id}
    assert len(await scoped.info()) == 2
    assert len(await scoped.stats()) == 2
    async with scoped.info_iter() as infos:
        assert {i.id async for i in infos} == {first.id, second.id}
    assert (await scoped.instance(second.id).ping()).id == second.id


async def test_iterators_yield_models_as_they_arrive(world: World, client: Client) -> None:
    service = await world.service()
    async with client.ping_iter(max_count=1, max_wait=LONG) as pings:
        found = [p async for p in pings]
    assert [type(p) for p in found] == [PingInfo]
    async with client.stats_iter("svc") as all_stats:
        assert [s.id async for s in all_stats] == [service.id]
    async with client.instance("svc", service.id).info_iter() as infos:
        assert [i.id async for i in infos] == [service.id]
    async with client.instance("svc", "unknown").stats_iter() as none:
        assert [s async for s in none] == []


async def test_an_instance_query_returns_after_the_single_reply(
    world: World, client: Client
) -> None:
    service = await world.service()
    await world.service()
    start = time.monotonic()
    found = await client.instance("svc", service.id).info_iter(max_wait=LONG).collect()
    assert [i.id for i in found] == [service.id]
    assert time.monotonic() - start < FAST


async def test_nothing_running_gives_empty_lists_at_once(client: Client) -> None:
    start = time.monotonic()
    assert await client.ping(max_wait=LONG) == []
    assert await client.info("svc", max_wait=LONG) == []
    assert await client.service("svc").stats(max_wait=LONG) == []
    assert time.monotonic() - start < FAST


async def test_single_instance_calls_raise_no_responders(client: Client) -> None:
    start = time.monotonic()
    with pytest.raises(NoRespondersError, match=r"\$SRV\.PING\.svc\.nobody"):
        await client.instance("svc", "nobody").ping(timeout=LONG)
    assert time.monotonic() - start < FAST


async def test_single_instance_calls_time_out_when_nobody_answers(
    world: World, client: Client
) -> None:
    silent = await world.connect()
    await silent.subscribe("$SRV.INFO.svc.quiet")
    with pytest.raises(RequestTimeoutError, match="quiet"):
        await client.instance("svc", "quiet").info(timeout=0.1)


async def test_default_max_wait_applies_to_calls_without_max_wait(world: World) -> None:
    silent = await world.connect()
    await silent.subscribe("$SRV.PING")
    client = Client(await world.connect(), default_max_wait=0.1)
    start = time.monotonic()
    assert await client.ping() == []
    assert 0.1 <= time.monotonic() - start < FAST


async def test_a_custom_api_prefix_is_used(world: World) -> None:
    service = await world.service(api_prefix="hello.service")
    default = Client(await world.connect())
    custom = Client(await world.connect(), api_prefix="hello.service")
    assert await default.ping() == []
    assert [p.id for p in await custom.ping()] == [service.id]
    assert (await custom.instance("svc", service.id).stats()).id == service.id


async def test_arrival_order_is_preserved(world: World, client: Client) -> None:
    documents = [
        json.dumps({"type": PING_RESPONSE_TYPE, "name": "svc", "id": f"id{i}", "version": "1.0.0"})
        for i in range(10)
    ]
    await world.junk("$SRV.PING", *(d.encode() for d in documents))
    assert [p.id for p in await client.ping(max_count=10)] == [f"id{i}" for i in range(10)]


# --------------------------------------------------------------------------- tolerance


async def test_junk_replies_are_skipped_and_logged(
    world: World, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    service = await world.service()
    info_doc = {"type": INFO_RESPONSE_TYPE, "name": "x", "id": "y", "version": "1.0.0"}
    await world.junk(
        "$SRV.PING",
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        json.dumps(info_doc).encode(),  # wrong type
        json.dumps({"type": PING_RESPONSE_TYPE, "id": "no-name", "version": "1"}).encode(),
    )
    with caplog.at_level(logging.WARNING, logger="micro.discovery"):
        found = await client.ping(max_wait=LONG)
    assert [p.id for p in found] == [service.id]
    messages = [r.getMessage() for r in caplog.records if r.name == "micro.discovery"]
    assert len(messages) == 5
    assert any("not JSON" in m for m in messages)
    assert any("not a JSON object" in m for m in messages)
    assert any(INFO_RESPONSE_TYPE in m for m in messages)
    assert any("'name'" in m for m in messages)


async def test_skipped_replies_do_not_count_toward_max_count(world: World, client: Client) -> None:
    await world.junk("$SRV.INFO", b"junk")
    service = await world.service()
    found = await client.info(max_count=1, max_wait=LONG)
    assert [i.id for i in found] == [service.id]


async def test_replies_without_type_are_accepted(world: World, client: Client) -> None:
    await world.junk("$SRV.PING", b'{"name":"old","id":"abc","version":"1.0.0"}')
    assert [(p.name, p.type) for p in await client.ping()] == [("old", PING_RESPONSE_TYPE)]


# --------------------------------------------------------------------------- requests


async def test_request_returns_the_reply(world: World, client: Client) -> None:
    await world.service()
    reply = await client.request("echo", b"hello", headers={"a": "b"})
    assert reply.data == b"hello"
    assert (await client.request("echo")).data == b""


async def test_an_error_reply_raises_service_error(world: World, client: Client) -> None:
    await world.service()
    with pytest.raises(ServiceError) as caught:
        await client.request("fail", b"x")
    error = caught.value
    assert (error.code, error.description) == (411, "data required")
    assert (error.subject, error.data) == ("fail", b"details")
    assert error.headers["k"] == "v"
    assert error.headers["Nats-Service-Error-Code"] == "411"


async def test_request_without_responders_raises_promptly(client: Client) -> None:
    with pytest.raises(NoRespondersError):
        await client.request("nobody", timeout=LONG)


async def test_request_endpoint_resolves_the_subject_by_name(world: World, client: Client) -> None:
    service = add_service(await world.connect(), "grouped", "1.0.0")
    group = service.add_group("g.sub")
    await group.add_endpoint("echo", echo)
    await service.start()
    world.services.append(service)
    assert (await client.find_endpoint("grouped", "echo")).subject == "g.sub.echo"
    reply = await client.request_endpoint("grouped", "echo", b"hi")
    assert reply.data == b"hi"
    assert (await client.service("grouped").request_endpoint("echo", b"yo")).data == b"yo"


async def test_an_unknown_endpoint_lists_the_available_names(world: World, client: Client) -> None:
    await world.service()
    with pytest.raises(EndpointNotFoundError, match="available endpoints: echo, fail") as caught:
        await client.request_endpoint("svc", "nope")
    assert caught.value.available == ["echo", "fail"]


async def test_an_unknown_service_cannot_be_resolved(client: Client) -> None:
    with pytest.raises(ServiceNotFoundError, match="'ghost'"):
        await client.request_endpoint("ghost", "echo")


async def test_a_wildcard_endpoint_needs_a_concrete_subject(world: World, client: Client) -> None:
    service = add_service(await world.connect(), "wild", "1.0.0")
    await service.add_endpoint("any", echo, subject="wild.*")
    await service.start()
    world.services.append(service)
    with pytest.raises(ValueError, match=r"wildcard subject 'wild\.\*'"):
        await client.request_endpoint("wild", "any")
    assert (await client.request("wild.one", b"1")).data == b"1"
