"""The discovery-client conformance suite: ping/info/stats and endpoint calls by name.

Bind it by subclassing, as ``testing.conformance`` shows.  Services and the client each get
their own connection from ``conformance_backend``.  Timing cases use generous bounds: a call
that must return early is given a long ``max_wait``
(:data:`~testing.conformance._suite_base.WAIT`) and must return in a fraction of it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator

import anyio
import anyio.abc
import pytest

from micro.client import Client, EndpointNotFoundError
from micro.control import INFO_RESPONSE_TYPE, PING_RESPONSE_TYPE, STATS_RESPONSE_TYPE
from micro.models import PingInfo, ServiceInfo, ServiceStats
from micro.request import Request
from transports.base import Subscription, Transport

from ._client_gathering import GatheringCases
from ._service_support import STALL, ServiceEnv, ServiceSuiteBase, echo
from ._suite_base import WAIT

__all__ = ["ClientConformance"]

EARLY = WAIT / 4
"""A call that must not wait for ``max_wait=WAIT`` has to return within this many seconds."""


async def _junk_responder(transport: Transport, sub: Subscription, payloads: list[bytes]) -> None:
    async for msg in sub:
        if msg.reply:
            for payload in payloads:
                await transport.publish(msg.reply, payload)


class ClientConformance(GatheringCases, ServiceSuiteBase):
    """J. Discovery client (``micro.client.Client``) against any Transport, and the answers
    of a scatter/gather however it ends (:class:`GatheringCases`)."""

    @pytest.fixture
    async def client(self, service_env: ServiceEnv) -> Client:
        return Client(await service_env.client())

    @pytest.fixture
    async def task_group(self) -> AsyncIterator[anyio.abc.TaskGroup]:
        async with anyio.create_task_group() as tg:
            yield tg
            tg.cancel_scope.cancel()

    async def test_j76_one_instance_found_by_all_name_and_id_forms(
        self, service_env: ServiceEnv, client: Client
    ) -> None:
        service = await service_env.service("svc", "1.0.0")
        await service.add_endpoint("echo", echo)
        for payload in (b"one", b"two"):
            assert (await client.request("echo", payload)).data == payload
        for narrowing in (None, "svc"):
            for call, model, kind in (
                (client.ping, PingInfo, PING_RESPONSE_TYPE),
                (client.info, ServiceInfo, INFO_RESPONSE_TYPE),
                (client.stats, ServiceStats, STATS_RESPONSE_TYPE),
            ):
                documents = await call(narrowing)
                assert len(documents) == 1, f"{kind} with filter {narrowing!r}: {documents}"
                document = documents[0]
                assert isinstance(document, model)
                assert (document.name, document.id, document.version, document.type) == (
                    "svc",
                    service.id,
                    "1.0.0",
                    kind,
                )
        instance = client.instance("svc", service.id)
        ping, info, stats = await instance.ping(), await instance.info(), await instance.stats()
        assert (ping.id, info.id, stats.id) == (service.id,) * 3
        assert [e.name for e in info.endpoints] == ["echo"]
        assert [(e.num_requests, e.num_errors) for e in stats.endpoints] == [(2, 0)]
        by_name = (await client.stats("svc"))[0].endpoints[0]
        assert (by_name.num_requests, by_name.num_errors) == (2, 0)

    async def test_j77_max_count_returns_after_the_first_reply(
        self, service_env: ServiceEnv, client: Client
    ) -> None:
        first = await service_env.service("svc")
        second = await service_env.service("svc")
        start = time.monotonic()
        found = await client.ping("svc", max_count=1, max_wait=WAIT)
        elapsed = time.monotonic() - start
        assert len(found) == 1
        assert found[0].id in {first.id, second.id}
        assert elapsed < EARLY, f"took {elapsed:.3f} s for the first of 2 replies"

    async def test_j78_no_instance_gives_an_empty_list_without_waiting(
        self, client: Client
    ) -> None:
        start = time.monotonic()
        assert await client.ping(max_wait=WAIT) == []
        assert await client.info("svc", max_wait=WAIT) == []
        assert await client.stats("svc", max_wait=WAIT) == []
        elapsed = time.monotonic() - start
        assert elapsed < EARLY, f"took {elapsed:.3f} s although nothing was subscribed"

    async def test_j79_replies_of_the_wrong_type_or_not_json_are_skipped(
        self,
        service_env: ServiceEnv,
        client: Client,
        task_group: anyio.abc.TaskGroup,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        service = await service_env.service("svc")
        junk = await service_env.connect()
        wrong_type = {"type": PING_RESPONSE_TYPE, "name": "svc", "id": "x", "version": "1.0.0"}
        sub = await junk.subscribe("$SRV.INFO.svc")
        task_group.start_soon(
            _junk_responder, junk, sub, [b"<html>not json</html>", json.dumps(wrong_type).encode()]
        )
        with caplog.at_level(logging.WARNING, logger="micro.discovery"):
            infos = await client.info("svc", max_interval=STALL)
        assert [info.id for info in infos] == [service.id]
        skipped = [r for r in caplog.records if r.name == "micro.discovery"]
        assert len(skipped) == 2, [r.getMessage() for r in skipped]

    async def test_j80_endpoints_in_order_and_resolution_by_name(
        self, service_env: ServiceEnv, client: Client
    ) -> None:
        async def answer(request: Request) -> None:
            await request.respond(b"from " + request.subject().encode())

        service = await service_env.service("svc")
        await service.add_endpoint("ep1", answer)
        await service.add_endpoint("ep2", answer)
        await service.add_endpoint("echo", echo, subject="svc.echo")
        infos = await client.info("svc")
        assert [e.name for e in infos[0].endpoints] == ["ep1", "ep2", "echo"]
        assert (await client.find_endpoint("svc", "echo")).subject == "svc.echo"
        assert (await client.request_endpoint("svc", "echo", b"hello")).data == b"hello"
        assert (await client.request_endpoint("svc", "ep2")).data == b"from ep2"
        with pytest.raises(EndpointNotFoundError, match="ep1, ep2, echo") as caught:
            await client.request_endpoint("svc", "missing")
        assert caught.value.available == ["ep1", "ep2", "echo"]
