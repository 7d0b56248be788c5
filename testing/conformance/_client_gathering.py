"""Discovery conformance: the same answers on every transport, however the gathering ends.

Over a network a gathering ends on ADR-32's limits (``max_wait``, a stall after the last
reply); a transport that knows when every receiver of the request is done
(``transports.extensions.ReplyGatherer``, the memory broker) ends it then.  These cases run
one scatter/gather against responders of every kind -- several instances on their own
connections, a queue group, a subscriber that returns without answering, one answering
from a task it spawned -- and check that the answers are the same multiset on every
transport, and that a transport offering ``ReplyGatherer`` ends the gathering itself
(:attr:`micro.discovery.Gathering.complete`) instead of waiting out the limits.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.abc
import pytest

from micro.client import Client
from micro.discovery import Gathering, request_many_iter
from transports._protocols import implements
from transports.base import Msg, Subscription, Transport
from transports.extensions import ReplyGatherer

from ._service_support import STALL, ServiceEnv, ServiceSuiteBase
from ._suite_base import WAIT

__all__ = ["GatheringCases"]


async def _answer(transport: Transport, sub: Subscription, data: bytes) -> None:
    async for msg in sub:
        if msg.reply:
            await transport.publish(msg.reply, data)


async def _ignore(sub: Subscription) -> None:
    async for _msg in sub:  # returns without answering, as a handler may
        pass


async def _answer_from_a_task(
    transport: Transport, sub: Subscription, tg: anyio.abc.TaskGroup
) -> None:
    async def reply(msg: Msg) -> None:
        assert msg.reply is not None
        await anyio.lowlevel.checkpoint()  # a few scheduling rounds later, no timer
        await transport.publish(msg.reply, b"spawned")

    async for msg in sub:
        tg.start_soon(reply, msg)


class GatheringCases(ServiceSuiteBase):
    """Scatter/gather answers, and who ends the gathering."""

    @pytest.fixture
    async def responder_group(self) -> AsyncIterator[anyio.abc.TaskGroup]:
        async with anyio.create_task_group() as tg:
            yield tg
            tg.cancel_scope.cancel()

    async def test_every_kind_of_responder_gives_the_same_answers(
        self, service_env: ServiceEnv, responder_group: anyio.abc.TaskGroup
    ) -> None:
        tg = responder_group
        for number in range(3):  # three instances, each on its own connection
            instance = await service_env.connect()
            tg.start_soon(_answer, instance, await instance.subscribe("g.all"), b"i%d" % number)
        queue = await service_env.connect()
        for _member in range(2):  # one of the two answers
            tg.start_soon(_answer, queue, await queue.subscribe("g.all", queue="q"), b"queue")
        silent = await service_env.connect()
        tg.start_soon(_ignore, await silent.subscribe("g.*"))
        spawner = await service_env.connect()
        tg.start_soon(_answer_from_a_task, spawner, await spawner.subscribe("g.>"), tg)

        client = await service_env.client()
        gathering = request_many_iter(client, "g.all", max_wait=WAIT, max_interval=STALL)
        async with gathering:
            answers = sorted([msg.data async for msg in gathering])
        assert answers == [b"i0", b"i1", b"i2", b"queue", b"spawned"]
        assert gathering.complete == implements(client, ReplyGatherer)
        assert not gathering.no_responders

    async def test_three_instances_are_discovered_by_every_verb(
        self, service_env: ServiceEnv
    ) -> None:
        services = [await service_env.service("svc") for _ in range(3)]
        ids = sorted(service.id for service in services)
        transport = await service_env.client()
        client = Client(transport)
        # Without a stall rule and with a long max_wait, only the transport ends it early.
        stall = STALL if not implements(transport, ReplyGatherer) else math.inf
        for gathering in (
            client.ping_iter("svc", max_wait=WAIT, max_interval=stall),
            client.info_iter(max_wait=WAIT, max_interval=stall),
            client.stats_iter("svc", max_wait=WAIT, max_interval=stall),
        ):
            async with gathering:
                found = sorted([document.id async for document in gathering])
            assert found == ids, gathering.subject
            assert gathering.complete == implements(transport, ReplyGatherer)
        assert sorted(p.id for p in await client.ping("svc", max_interval=STALL)) == ids

    async def test_overlapping_gatherings_each_find_every_instance(
        self, service_env: ServiceEnv
    ) -> None:
        # Four gatherings at once on one connection: INFO and STATS under two control
        # prefixes.  Each must get its own instances, and a transport that ends gatherings
        # itself must end every one of them (not one, nor none: overlapping waits).
        ids: dict[str, list[str]] = {}
        for prefix in ("$SRV", "$ALT"):
            found = [await service_env.service("svc", api_prefix=prefix) for _ in range(2)]
            ids[prefix] = sorted(service.id for service in found)
        transport = await service_env.client()
        stall = STALL if not implements(transport, ReplyGatherer) else math.inf
        gatherings = [
            (prefix, gathering)
            for prefix in ids
            for gathering in (
                Client(transport, api_prefix=prefix).info_iter(max_wait=WAIT, max_interval=stall),
                Client(transport, api_prefix=prefix).stats_iter(max_wait=WAIT, max_interval=stall),
            )
        ]
        results: dict[int, list[str]] = {}

        async def gather(index: int, gathering: Gathering[Any]) -> None:
            async with gathering:
                results[index] = sorted([document.id async for document in gathering])

        async with anyio.create_task_group() as tg:
            for index, (_prefix, gathering) in enumerate(gatherings):
                tg.start_soon(gather, index, gathering)
        for index, (prefix, gathering) in enumerate(gatherings):
            assert results[index] == ids[prefix], gathering.subject
            assert gathering.complete == implements(transport, ReplyGatherer), gathering.subject
