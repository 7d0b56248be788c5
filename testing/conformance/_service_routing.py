"""Service conformance, groups D (groups and endpoint subjects) and E (queue groups)."""

from __future__ import annotations

from typing import Any

import anyio

from micro.request import Request
from micro.service import Service
from transports.base import Transport

from ._service_support import (
    ServiceEnv,
    ServiceSuiteBase,
    echo,
    endpoint_entries,
    gather,
    gather_json,
)
from ._suite_base import QUIET, WAIT

__all__ = ["GroupCases", "QueueGroupCases"]


async def _queue_groups(client: Transport, service: Service) -> dict[str, str]:
    """endpoint name -> queue_group, checking INFO and STATS agree."""
    from_info, from_stats = [
        {
            entry["name"]: entry["queue_group"]
            for entry in await endpoint_entries(client, verb, service)
        }
        for verb in ("INFO", "STATS")
    ]
    assert from_info == from_stats
    return from_info


class GroupCases(ServiceSuiteBase):
    """D. Subject composition through groups, wildcards in subjects."""

    async def test_d28_endpoint_on_the_service(self, service_env: ServiceEnv) -> None:
        service = await service_env.service()
        endpoint = await service.add_endpoint("foo", echo)
        client = await service_env.client()
        assert await endpoint_entries(client, "INFO", service) == [
            {"name": "foo", "subject": "foo", "queue_group": "q", "metadata": None}
        ]
        assert endpoint.subscription is not None
        assert endpoint.subscription.queue == "q"
        assert (await client.request("foo", b"hi", timeout=WAIT)).data == b"hi"

    async def test_d29_endpoint_in_a_group(self, service_env: ServiceEnv) -> None:
        service = await service_env.service()
        await service.add_group("g1").add_endpoint("foo", echo)
        client = await service_env.client()
        assert [e["subject"] for e in await endpoint_entries(client, "INFO", service)] == ["g1.foo"]
        assert (await client.request("g1.foo", b"hi", timeout=WAIT)).data == b"hi"

    async def test_d30_empty_group_names_are_skipped(self, service_env: ServiceEnv) -> None:
        service = await service_env.service()
        await service.add_group("").add_endpoint("foo", echo)
        nested = service.add_group("").add_group("g1").add_group("")
        await nested.add_endpoint("bar", echo, subject="foo")
        client = await service_env.client()
        subjects = [e["subject"] for e in await endpoint_entries(client, "INFO", service)]
        assert subjects == ["foo", "g1.foo"]
        assert (await client.request("g1.foo", b"n", timeout=WAIT)).data == b"n"

    async def test_d31_nested_groups_join_their_names(self, service_env: ServiceEnv) -> None:
        service = await service_env.service()
        await service.add_group("g1").add_group("g2").add_group("g3").add_endpoint("foo", echo)
        client = await service_env.client()
        subjects = [e["subject"] for e in await endpoint_entries(client, "INFO", service)]
        assert subjects == ["g1.g2.g3.foo"]
        assert (await client.request("g1.g2.g3.foo", b"x", timeout=WAIT)).data == b"x"

    async def test_d32_explicit_subject_differs_from_the_name(
        self, service_env: ServiceEnv
    ) -> None:
        service = await service_env.service()
        await service.add_endpoint("endpoint1", echo, subject="other")
        client = await service_env.client()
        info = await endpoint_entries(client, "INFO", service)
        stats = await endpoint_entries(client, "STATS", service)
        assert (info[0]["name"], info[0]["subject"]) == ("endpoint1", "other")
        assert (stats[0]["name"], stats[0]["subject"]) == ("endpoint1", "other")

    async def test_d33_wildcard_group_prefix_receives_concrete_subjects(
        self, service_env: ServiceEnv
    ) -> None:
        seen: list[str] = []

        async def add(request: Request) -> None:
            seen.append(request.subject())
            await request.respond(b"added")

        service = await service_env.service()
        endpoint = await service.add_group("one.*.three").add_endpoint("add", add)
        assert endpoint.subject == "one.*.three.add"
        client = await service_env.client()
        reply = await client.request("one.two.three.add", timeout=WAIT)
        assert reply.data == b"added"
        assert seen == ["one.two.three.add"]

    async def test_d34_dollar_group_with_wildcard_endpoint_subject(
        self, service_env: ServiceEnv
    ) -> None:
        service = await service_env.service()
        group = service.add_group("$SYS.SOMETHING.OR.OTHER")
        await group.add_endpoint("wild", echo, subject="*")
        client = await service_env.client()
        subjects = [e["subject"] for e in await endpoint_entries(client, "INFO", service)]
        assert subjects == ["$SYS.SOMETHING.OR.OTHER.*"]
        reply = await client.request("$SYS.SOMETHING.OR.OTHER.x", b"w", timeout=WAIT)
        assert reply.data == b"w"

    async def test_d35_endpoints_on_service_and_group_count_separately(
        self, service_env: ServiceEnv
    ) -> None:
        async def hey(request: Request) -> None:
            await request.respond(b"hi")

        service = await service_env.service()
        await service.add_endpoint("hey", hey)
        await service.add_group("service").add_endpoint("echo", echo)
        client = await service_env.client()
        assert (await client.request("hey", timeout=WAIT)).data == b"hi"
        assert (await client.request("service.echo", b"ping", timeout=WAIT)).data == b"ping"
        stats = await endpoint_entries(client, "STATS", service)
        assert {e["subject"]: e["num_requests"] for e in stats} == {"hey": 1, "service.echo": 1}


class QueueGroupCases(ServiceSuiteBase):
    """E. Queue group names, inheritance, disabling, and what the broker does with them."""

    async def test_e36_default_queue_group_is_q(self, service_env: ServiceEnv) -> None:
        service = await service_env.service()
        direct = await service.add_endpoint("foo", echo)
        grouped = await service.add_group("g").add_endpoint("bar", echo)
        assert await _queue_groups(await service_env.client(), service) == {
            "foo": "q",
            "bar": "q",
        }
        for endpoint in (direct, grouped):
            assert endpoint.subscription is not None
            assert endpoint.subscription.queue == "q"

    async def test_e37_service_queue_group_is_inherited(self, service_env: ServiceEnv) -> None:
        service = await service_env.service(queue_group="custom")
        await service.add_endpoint("foo", echo)
        await service.add_group("g").add_endpoint("bar", echo)
        assert await _queue_groups(await service_env.client(), service) == {
            "foo": "custom",
            "bar": "custom",
        }

    async def test_e38_queue_groups_resolve_level_by_level(self, service_env: ServiceEnv) -> None:
        service = await service_env.service(queue_group="q-config")
        await service.add_endpoint("default", echo, subject="default", queue_group="q-default")
        await service.add_endpoint("bar", echo, queue_group="q-bar")
        g1 = service.add_group("g1", queue_group="q-g1")
        g2 = g1.add_group("g2")
        await g2.add_endpoint("baz", echo)
        await g2.add_endpoint("qux", echo, queue_group="q-qux")
        g3 = g2.add_group("g3", queue_group="q-g3")
        await g3.add_endpoint("quux", echo)
        assert await _queue_groups(await service_env.client(), service) == {
            "default": "q-default",
            "bar": "q-bar",
            "baz": "q-g1",
            "qux": "q-qux",
            "quux": "q-g3",
        }

    async def test_e39_empty_endpoint_queue_group_means_inherit(
        self, service_env: ServiceEnv
    ) -> None:
        service = await service_env.service(queue_group="q-config")
        endpoint = await service.add_endpoint("foo", echo, queue_group="")
        assert await _queue_groups(await service_env.client(), service) == {"foo": "q-config"}
        assert endpoint.subscription is not None
        assert endpoint.subscription.queue == "q-config"

    async def test_e40_service_with_queue_groups_disabled(self, service_env: ServiceEnv) -> None:
        service = await service_env.service(disable_queue_group=True)
        direct = await service.add_endpoint("foo", echo)
        await service.add_group("g").add_endpoint("bar", echo)
        await service.add_endpoint("baz", echo, queue_group="q-qux")
        assert await _queue_groups(await service_env.client(), service) == {
            "foo": "",
            "bar": "",
            "baz": "q-qux",
        }
        assert direct.subscription is not None
        assert direct.subscription.queue is None

    async def test_e41_group_with_queue_groups_disabled(self, service_env: ServiceEnv) -> None:
        service = await service_env.service()
        group = service.add_group("g", disable_queue_group=True)
        endpoint = await group.add_endpoint("foo", echo)
        await group.add_group("inner").add_endpoint("bar", echo)
        await service.add_endpoint("baz", echo)
        assert await _queue_groups(await service_env.client(), service) == {
            "foo": "",
            "bar": "",
            "baz": "q",
        }
        assert endpoint.subscription is not None
        assert endpoint.subscription.queue is None

    async def test_e42_distinct_queue_groups_each_get_the_request(
        self, service_env: ServiceEnv
    ) -> None:
        for index in range(5):
            service = await service_env.service(queue_group=f"q-{index}")
            await service.add_endpoint("foo", echo)
        client = await service_env.client()
        # one reply per queue group, then nothing more within the quiet window
        replies = await gather(client, "foo", data=b"x", max_count=6, stall=QUIET)
        assert [reply.data for reply in replies] == [b"x"] * 5

    async def test_e43_without_queue_groups_every_instance_handles(
        self, service_env: ServiceEnv
    ) -> None:
        handled: list[str] = []
        all_done = anyio.Event()

        def handler_for(instance: str) -> Any:
            async def handle(request: Request) -> None:
                handled.append(instance)
                if len(handled) == 10:
                    all_done.set()
                await request.respond(instance.encode())

            return handle

        for index in range(10):
            service = await service_env.service(disable_queue_group=True)
            await service.add_endpoint("foo", handler_for(f"i{index}"))
        replies = await gather(await service_env.client(), "foo", max_count=10)
        with anyio.fail_after(WAIT):
            await all_done.wait()
        assert sorted(handled) == sorted(f"i{index}" for index in range(10))
        assert sorted(reply.data for reply in replies) == sorted(
            f"i{index}".encode() for index in range(10)
        )

    async def test_e44_default_queue_group_balances_load_once_per_request(
        self, service_env: ServiceEnv
    ) -> None:
        for _ in range(5):
            service = await service_env.service()
            await service.add_endpoint("foo", echo)
        client = await service_env.client()
        for index in range(50):
            payload = str(index).encode()
            assert (await client.request("foo", payload, timeout=WAIT)).data == payload
        # a request delivered to more than one member would push the sum above 50
        stats = await gather_json(client, "$SRV.STATS.svc", max_count=5)
        assert len(stats) == 5
        assert sum(s["endpoints"][0]["num_requests"] for s in stats) == 50
