"""Service conformance, groups A (configuration validation) and C (discovery responses)."""

from __future__ import annotations

import re
from typing import Any

import anyio
import pytest

from micro.errors import ValidationError
from micro.service import Service, add_service
from transports.base import Transport

from ._service_support import (
    ServiceEnv,
    ServiceSuiteBase,
    control,
    echo,
    endpoint_entries,
    gather,
    gather_json,
    instance_documents,
    subject_forms,
)
from ._suite_base import WAIT, assert_no_responders

__all__ = ["ConfigurationCases", "DiscoveryCases"]

PING_KEYS = {"type", "name", "id", "version", "metadata"}


async def _one_answer_per_form(
    client: Transport, verb: str, service: Service
) -> list[dict[str, Any]]:
    """What ``service`` answers on each subject form of ``verb``: exactly one reply each."""
    documents = []
    for subject in subject_forms(verb, service):
        replies = [
            document
            for document in await gather_json(client, subject, max_count=1)
            if document["id"] == service.id
        ]
        assert len(replies) == 1, subject
        documents += replies
    return documents


class ConfigurationCases(ServiceSuiteBase):
    """A. Configuration validation: a clear error at once, nothing subscribed."""

    @pytest.mark.parametrize(
        ("name", "version", "rule", "named"),
        [
            pytest.param("test_service!", "1.0.0", "service name", "'test_service!'", id="a01-!"),
            pytest.param("test.service@!", "1.0.0", "service name", "'test.service@!'", id="a01-@"),
            pytest.param("", "1.0.0", "service name", "required", id="a02-empty"),
            pytest.param("/", "1.0.0", "service name", "'/'", id="a02-slash"),
            pytest.param(" ", "1.0.0", "service name", "' '", id="a02-space"),
            pytest.param(">", "1.0.0", "service name", "'>'", id="a02-wildcard"),
            pytest.param("svc", "abc", "version", "'abc'", id="a03-abc"),
            pytest.param("svc", "a.b.c", "version", "'a.b.c'", id="a03-a.b.c"),
            pytest.param("svc", "", "version", "''", id="a03-empty"),
            pytest.param("svc", "v1.2.3-hello", "version", "'v1.2.3-hello'", id="a05-js-style"),
        ],
    )
    async def test_a01_to_a05_bad_service_names_and_versions_are_rejected(
        self, service_env: ServiceEnv, name: str, version: str, rule: str, named: str
    ) -> None:
        transport = await service_env.connect()
        with pytest.raises(ValidationError, match=rule) as caught:
            add_service(transport, name, version)
        assert named in str(caught.value)
        await assert_no_responders(await service_env.client(), "$SRV.PING")

    @pytest.mark.parametrize("version", ["0.1.0", "1.0.0-alpha.1+build.5"])
    async def test_a04_semver_versions_are_accepted_and_reported_verbatim(
        self, service_env: ServiceEnv, version: str
    ) -> None:
        service = await service_env.service(version=version)
        for document in await instance_documents(await service_env.client(), service):
            assert document["version"] == version

    async def test_a06_endpoint_subject_with_a_space_is_rejected(
        self, service_env: ServiceEnv
    ) -> None:
        service = await service_env.service()
        with pytest.raises(ValidationError, match="endpoint subject"):
            await service.add_endpoint("x", echo, subject="endpoint subject")
        assert service.info().endpoints == []
        client = await service_env.client()
        assert await endpoint_entries(client, "INFO", service) == []
        await assert_no_responders(client, "x")

    @pytest.mark.parametrize("name", ["", "*", ">", " ", "hello.world"])
    async def test_a07_bad_endpoint_names_are_rejected(
        self, service_env: ServiceEnv, name: str
    ) -> None:
        service = await service_env.service()
        with pytest.raises(ValidationError, match="endpoint name"):
            await service.add_endpoint(name, echo)
        assert service.info().endpoints == []
        client = await service_env.client()
        assert await endpoint_entries(client, "INFO", service) == []

    @pytest.mark.parametrize("group", ["a.>", ">"])
    async def test_a08_group_with_full_wildcard_is_rejected(
        self, service_env: ServiceEnv, group: str
    ) -> None:
        service = await service_env.service()
        with pytest.raises(ValidationError, match="group"):
            await service.add_group(group).add_endpoint("hello", echo)
        with pytest.raises(ValidationError, match="group"):
            await service.add_group("ok").add_group(group).add_endpoint("hello", echo)
        assert service.info().endpoints == []
        client = await service_env.client()
        await assert_no_responders(client, "a.hello", "hello", "ok.hello")

    @pytest.mark.parametrize("queue", [">.abc", "one two", "   ", "\t"])
    async def test_a09_bad_queue_groups_are_rejected(
        self, service_env: ServiceEnv, queue: str
    ) -> None:
        transport = await service_env.connect()
        with pytest.raises(ValidationError, match="queue group"):
            add_service(transport, "svc", "1.0.0", queue_group=queue)
        await assert_no_responders(await service_env.client(), "$SRV.PING")
        service = await service_env.service(transport=transport)
        with pytest.raises(ValidationError, match="queue group"):
            await service.add_endpoint("foo", echo, queue_group=queue)
        with pytest.raises(ValidationError, match="queue group"):
            service.add_group("g", queue_group=queue)
        assert service.info().endpoints == []
        await assert_no_responders(await service_env.client(), "foo")


class DiscoveryCases(ServiceSuiteBase):
    """C. PING/INFO/STATS documents, as every consumer sees them."""

    async def test_c13_ping_answers_on_all_three_subject_forms(
        self, service_env: ServiceEnv
    ) -> None:
        service = await service_env.service()
        for document in await _one_answer_per_form(await service_env.client(), "PING", service):
            assert set(document) == PING_KEYS
            assert document["type"] == "io.nats.micro.v1.ping_response"
            assert document["name"] == "svc"

    async def test_c14_service_metadata_is_the_same_in_ping_info_and_stats(
        self, service_env: ServiceEnv
    ) -> None:
        with_md = await service_env.service(metadata={"basic": "metadata"})
        without = await service_env.service("other")
        client = await service_env.client()
        for document in await instance_documents(client, with_md):
            assert document["metadata"] == {"basic": "metadata"}
        for document in await instance_documents(client, without):
            assert document["metadata"] == {}

    async def test_c15_endpoint_metadata_does_not_leak_into_service_metadata(
        self, service_env: ServiceEnv
    ) -> None:
        service = await service_env.service()
        await service.add_endpoint("ep", echo, metadata={"basic": "schema"})
        ping, info, stats = await instance_documents(await service_env.client(), service)
        assert [ping["metadata"], info["metadata"], stats["metadata"]] == [{}, {}, {}]
        assert info["endpoints"][0]["metadata"] == {"basic": "schema"}
        assert "metadata" not in stats["endpoints"][0]

    async def test_c16_info_answers_on_all_three_subject_forms(
        self, service_env: ServiceEnv
    ) -> None:
        service = await service_env.service(description="a service")
        await service.add_endpoint("ep", echo)
        for document in await _one_answer_per_form(await service_env.client(), "INFO", service):
            assert document["type"] == "io.nats.micro.v1.info_response"
            assert document["description"] == "a service"
            assert [set(entry) for entry in document["endpoints"]] == [
                {"name", "subject", "queue_group", "metadata"}
            ]

    async def test_c17_info_endpoint_entry_is_exact(self, service_env: ServiceEnv) -> None:
        service = await service_env.service()
        await service.add_endpoint(
            "default", echo, subject="test.func", metadata={"basic": "schema"}
        )
        info = await control(await service_env.client(), f"$SRV.INFO.svc.{service.id}")
        assert info["endpoints"] == [
            {
                "name": "default",
                "subject": "test.func",
                "queue_group": "q",
                "metadata": {"basic": "schema"},
            }
        ]

    async def test_c18_stats_answers_on_all_three_subject_forms(
        self, service_env: ServiceEnv
    ) -> None:
        service = await service_env.service()
        await service.add_endpoint("ep", echo)
        for document in await _one_answer_per_form(await service_env.client(), "STATS", service):
            assert document["type"] == "io.nats.micro.v1.stats_response"
            assert document["started"].endswith("Z")
            assert [entry["name"] for entry in document["endpoints"]] == ["ep"]

    async def test_c19_service_without_endpoints_reports_empty_lists(
        self, service_env: ServiceEnv
    ) -> None:
        service = await service_env.service()
        client = await service_env.client()
        assert await endpoint_entries(client, "INFO", service) == []
        assert await endpoint_entries(client, "STATS", service) == []

    async def test_c20_unset_description_is_an_empty_string(self, service_env: ServiceEnv) -> None:
        service = await service_env.service()
        info = await control(await service_env.client(), f"$SRV.INFO.svc.{service.id}")
        assert info["description"] == ""

    async def test_c21_service_name_case_is_preserved(self, service_env: ServiceEnv) -> None:
        service = await service_env.service("tEsT")
        client = await service_env.client()
        ping = await control(client, "$SRV.PING.tEsT")
        assert ping["name"] == "tEsT"
        assert ping["id"] == service.id
        await assert_no_responders(client, "$SRV.PING.test")

    async def test_c22_every_instance_answers_a_ping_by_name(self, service_env: ServiceEnv) -> None:
        services = [await service_env.service() for _ in range(5)]
        replies = await gather_json(await service_env.client(), "$SRV.PING.svc")
        assert len(replies) == 5
        assert sorted(reply["id"] for reply in replies) == sorted(s.id for s in services)

    async def test_c23_all_name_and_id_queries_select_instances(
        self, service_env: ServiceEnv
    ) -> None:
        first = await service_env.service()
        second = await service_env.service()
        ids = {first.id, second.id}
        client = await service_env.client()
        everyone = await gather_json(client, "$SRV.PING")
        assert {reply["id"] for reply in everyone} >= ids
        by_name = await gather_json(client, "$SRV.PING.svc")
        assert sorted(reply["id"] for reply in by_name) == sorted(ids)
        by_id = await gather_json(client, f"$SRV.PING.svc.{second.id}")
        assert [reply["id"] for reply in by_id] == [second.id]

    async def test_c24_unknown_instance_gives_no_responders(self, service_env: ServiceEnv) -> None:
        await service_env.service()
        client = await service_env.client()
        await assert_no_responders(client, "$SRV.PING.svc.unknown")
        with anyio.fail_after(WAIT / 2):  # the 503 ends the gathering early
            assert await gather(client, "$SRV.PING.svc.unknown") == []

    async def test_c25_instance_id_is_stable_unique_and_a_subject_token(
        self, service_env: ServiceEnv
    ) -> None:
        first = await service_env.service()
        second = await service_env.service()
        assert first.id
        assert first.id != second.id
        assert re.fullmatch(r"[A-Za-z0-9_-]+", first.id), first.id
        for document in await instance_documents(await service_env.client(), first):
            assert document["id"] == first.id

    async def test_c26_endpoints_added_after_start_are_listed_in_order(
        self, service_env: ServiceEnv
    ) -> None:
        service = await service_env.service()
        await service.add_endpoint("first", echo)
        for name in ("second", "third", "fourth"):
            await service.add_endpoint(name, echo)
        client = await service_env.client()
        info = await control(client, f"$SRV.INFO.svc.{service.id}")
        assert [entry["name"] for entry in info["endpoints"]] == [
            "first",
            "second",
            "third",
            "fourth",
        ]
        assert (await client.request("fourth", b"x", timeout=WAIT)).data == b"x"

    async def test_c27_endpoints_added_concurrently_are_all_listed(
        self, service_env: ServiceEnv
    ) -> None:
        service = await service_env.service()
        names = [f"ep{index}" for index in range(10)]

        async def add(name: str) -> None:
            await service.add_endpoint(name, echo)

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as group:
                for name in names:
                    group.start_soon(add, name)
        client = await service_env.client()
        info = await control(client, f"$SRV.INFO.svc.{service.id}")
        assert sorted(entry["name"] for entry in info["endpoints"]) == sorted(names)
        for name in names:
            assert (await client.request(name, name.encode(), timeout=WAIT)).data == name.encode()
