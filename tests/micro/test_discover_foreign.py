"""Our Client discovers services written with other libraries.

* Services made with nats-py's own ``nats.micro`` and with ``nats_contrib.micro`` on a real
  nats-server (these tests import nats-py; the library itself never does).
* Go-, JS-, Py- and contrib-shaped documents (``tests/micro/golden/``) served verbatim by a
  raw responder are read tolerantly.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

from micro.client import Client
from micro.models import PingInfo, ServiceInfo, ServiceStats
from micro.service import add_service
from transports.base import Subscription, Transport
from transports.memory import MemoryBroker

pytestmark = pytest.mark.anyio

GOLDEN = Path(__file__).parent / "golden"
WAIT = 5.0


# --------------------------------------------------------------------------- golden payloads


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _serve(transport: Transport, sub: Subscription, payload: bytes) -> None:
    async for msg in sub:
        if msg.reply:
            await transport.publish(msg.reply, payload)


@pytest.fixture
async def raw_world() -> AsyncIterator[tuple[MemoryBroker, anyio.abc.TaskGroup]]:
    broker = MemoryBroker()
    async with anyio.create_task_group() as tg:
        yield broker, tg
        for connection in broker.connections:
            await connection.close()


async def _discover(raw_world: Any, verb: str, *names: str) -> list[Any]:
    broker, tg = raw_world
    for name in names:
        responder = await broker.connect()
        sub = await responder.subscribe(f"$SRV.{verb}")
        tg.start_soon(_serve, responder, sub, (GOLDEN / name).read_bytes())
    client = Client(await broker.connect())
    method = {"PING": client.ping, "INFO": client.info, "STATS": client.stats}[verb]
    found: list[Any] = await method(max_count=len(names), max_wait=WAIT)
    return found


PING_FILES = ["go_ping.json", "js_ping.json", "py_ping.json", "contrib_ping.json", "spec_ping.json"]
INFO_FILES = [
    "go_info.json",
    "js_info.json",
    "py_info.json",
    "contrib_info.json",
    "spec_info.json",
    "future_info.json",
]
STARTED = {
    "go_stats.json": datetime(2024, 5, 1, 10, 20, 30, 123456, timezone.utc),
    "go_stats_whole_second.json": datetime(2024, 5, 1, 10, 20, 30, 0, timezone.utc),
    "js_stats.json": datetime(2024, 5, 1, 10, 20, 30, 123000, timezone.utc),
    "py_stats.json": datetime(2024, 5, 1, 10, 20, 30, 123000, timezone.utc),
    "contrib_stats.json": datetime(2024, 5, 1, 10, 20, 30, 123456, timezone.utc),
    "spec_stats.json": datetime(2024, 5, 1, 10, 20, 30, 500000, timezone.utc),
    "offset_stats.json": datetime(2024, 5, 1, 10, 20, 30, 500000, timezone.utc),
}


def _raw(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((GOLDEN / name).read_text())
    return document


@pytest.mark.parametrize("name", PING_FILES)
async def test_golden_ping_documents_are_read(raw_world: Any, name: str) -> None:
    [ping] = await _discover(raw_world, "PING", name)
    raw = _raw(name)
    assert isinstance(ping, PingInfo)
    assert (ping.name, ping.id, ping.version) == (raw["name"], raw["id"], raw["version"])
    assert ping.metadata == (raw.get("metadata") or {})


@pytest.mark.parametrize("name", INFO_FILES)
async def test_golden_info_documents_are_read(raw_world: Any, name: str) -> None:
    [info] = await _discover(raw_world, "INFO", name)
    raw = _raw(name)
    assert isinstance(info, ServiceInfo)
    assert (info.name, info.id, info.version) == (raw["name"], raw["id"], raw["version"])
    assert info.description == (raw.get("description") or "")
    assert info.metadata == (raw.get("metadata") or {})
    assert [(e.name, e.subject) for e in info.endpoints] == [
        (e["name"], e["subject"]) for e in raw["endpoints"]
    ]
    for endpoint, raw_endpoint in zip(info.endpoints, raw["endpoints"], strict=True):
        assert endpoint.queue_group == (raw_endpoint.get("queue_group") or None)
        assert endpoint.metadata == raw_endpoint.get("metadata")


@pytest.mark.parametrize("name", sorted(STARTED))
async def test_golden_stats_documents_are_read(raw_world: Any, name: str) -> None:
    [stats] = await _discover(raw_world, "STATS", name)
    raw = _raw(name)
    assert isinstance(stats, ServiceStats)
    assert stats.started == STARTED[name]
    assert [
        (e.name, e.num_requests, e.num_errors, e.processing_time, e.last_error)
        for e in stats.endpoints
    ] == [
        (
            e["name"],
            e["num_requests"],
            e["num_errors"],
            e["processing_time"],
            e.get("last_error", ""),
        )
        for e in raw["endpoints"]
    ]


async def test_all_implementations_answer_one_discovery(raw_world: Any) -> None:
    found = await _discover(raw_world, "STATS", *sorted(STARTED))
    assert len(found) == len(STARTED)
    assert {s.started for s in found} == set(STARTED.values())


# --------------------------------------------------------------------------- real services


async def _settle(nc: Any) -> None:
    """Make the foreign library's subscriptions live at the server before we query.

    Neither ``nats.micro`` nor ``nats_contrib.micro`` waits for that, and with nats-py one
    ``flush()`` is not a barrier (bench/RESULTS.md); two round trips are.
    """
    await nc.flush()
    await nc.flush()


class TestForeignServicesOnARealServer:
    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"  # nats-py runs on asyncio only

    @pytest.fixture
    async def nc(self, micro_nats_server: Any) -> AsyncIterator[Any]:
        import nats

        connection = await nats.connect(micro_nats_server.url)
        yield connection
        await connection.close()

    @pytest.fixture
    async def client(self, micro_nats_server: Any) -> AsyncIterator[Client]:
        from transports.nats import NatsTransport

        transport = await NatsTransport.connect(micro_nats_server.url)
        yield Client(transport)
        await transport.close()

    async def test_a_nats_py_micro_service_is_discovered(self, nc: Any, client: Client) -> None:
        import nats.micro

        async def work(request: Any) -> None:
            await request.respond(b"done")

        service = await nats.micro.add_service(
            nc, name="pysvc", version="1.2.3", metadata={"lang": "python"}
        )
        try:
            await service.add_endpoint(name="work", handler=work, subject="py.work")
            await _settle(nc)
            [ping] = await client.ping("pysvc")
            assert (ping.name, ping.id, ping.version) == ("pysvc", service.id, "1.2.3")
            assert ping.metadata == {"lang": "python"}
            [info] = await client.instance("pysvc", service.id).info_iter().collect()
            assert info.description == ""  # nats.py sends null
            assert [(e.name, e.subject, e.queue_group) for e in info.endpoints] == [
                ("work", "py.work", "q")
            ]
            assert (await client.request_endpoint("pysvc", "work")).data == b"done"
            stats = await client.instance("pysvc", service.id).stats()
            assert stats.endpoints[0].num_requests == 1
        finally:
            await service.stop()

    async def test_a_nats_contrib_micro_service_is_discovered(
        self, nc: Any, client: Client
    ) -> None:
        from nats_contrib import micro as contrib

        async def fail(request: Any) -> None:
            await request.respond_error(409, "conflict")

        service = contrib.add_service(nc, "contribsvc", "0.0.5", description="contrib")
        async with service:
            await service.add_endpoint("fail", fail)
            await _settle(nc)
            [info] = await client.info("contribsvc")
            assert (info.name, info.description) == ("contribsvc", "contrib")
            assert len(info.id) == 32  # contrib ids are 32 hex digits
            assert [e.name for e in info.endpoints] == ["fail"]
            assert info.endpoints[0].metadata in ({}, None)
            [stats] = await client.stats("contribsvc")
            assert stats.started.tzinfo is not None
            assert (await client.instance("contribsvc", info.id).ping()).id == info.id

    async def test_a_raw_nats_py_client_is_wrapped(self, nc: Any, micro_nats_server: Any) -> None:
        from transports.nats import NatsTransport

        ours = add_service(await NatsTransport.connect(micro_nats_server.url), "ours", "1.0.0")
        await ours.start()
        try:
            client = Client(nc)  # a nats-py client, wrapped by the Client itself
            assert [p.id for p in await client.ping("ours")] == [ours.id]
        finally:
            await ours.stop()
            await ours.transport.close()

    async def test_the_contrib_client_discovers_our_service(
        self, nc: Any, micro_nats_server: Any
    ) -> None:
        from nats_contrib import micro as contrib

        from transports.nats import NatsTransport

        transport = await NatsTransport.connect(micro_nats_server.url)
        ours = add_service(transport, "ours", "1.0.0", metadata={"k": "v"})
        await ours.start()
        try:
            pings = await contrib.Client(nc).ping("ours", max_wait=WAIT, max_count=1)
            assert [(p.id, p.metadata) for p in pings] == [(ours.id, {"k": "v"})]
            [stats] = await contrib.Client(nc).stats("ours", max_wait=WAIT, max_count=1)
            assert stats.id == ours.id
        finally:
            await ours.stop()
            await transport.close()
