"""Service conformance, groups A (configuration validation) and C (discovery responses)."""

from __future__ import annotations

import re

import anyio
import pytest

from micro.errors import ValidationError
from micro.service import add_service
from testing.conformance._service_support import (
    ServiceEnv,
    ServiceSuiteBase,
    control,
    echo,
    gather,
    gather_json,
)
from testing.conformance._suite_base import WAIT
from transports.base import NoRespondersError, Transport

__all__ = ["ConfigurationCases", "DiscoveryCases"]

PING_KEYS = {"type", "name", "id", "version", "metadata"}


async def _nothing_subscribed(client: Transport, *subjects: str) -> None:
    for subject in ("$SRV.PING", *subjects):
        with pytest.raises(NoRespondersError):
            await client.request(subject, timeout=WAIT)


def _forms(verb: str, name: str, instance_id: str) -> list[str]:
    return [f"$SRV.{verb}", f"$SRV.{verb}.{name}", f"$SRV.{verb}.{name}.{instance_id}"]


class ConfigurationCases(ServiceSuiteBase):
    """A. Configuration validation: a clear error at once, nothing subscribed."""

    @pytest.mark.parametrize("name", ["test_service!", "test.service@!"])
    async def test_a01_service_name_with_bad_characters_is_rejected(
        self, service_env: ServiceEnv, name: str
    ) -> None:
        transport = await service_env.connect()
        with pytest.raises(ValidationError, match="service name") as caught:
            add_service(transport, name, "1.0.0")
        assert repr(name) in str(caught.value)
        await _nothing_subscribed(await service_env.client())

    @pytest.mark.parametrize("name", ["", "/", " ", ">"])
    async def test_a02_empty_or_special_service_names_are_rejected(
        self, service_env: ServiceEnv, name: str
    ) -> None:
        transport = await service_env.connect()
        with pytest.raises(ValidationError, match="service name") as caught:
            add_service(transport, name, "1.0.0")
        if not name:
            assert "required" in str(caught.value)
        else:
            assert repr(name) in str(caught.value)
        await _nothing_subscribed(await service_env.client())

    @pytest.mark.parametrize("version", ["abc", "a.b.c", ""])
    async def test_a03_non_semver_versions_are_rejected(
        self, service_env: ServiceEnv, version: str
    ) -> None:
        transport = await service_env.connect()
        with pytest.raises(ValidationError, match="version") as caught:
            add_service(transport, "svc", version)
        assert repr(version) in str(caught.value)
        await _nothing_subscribed(await service_env.client())

    @pytest.mark.parametrize("version", ["0.1.0", "1.0.0-alpha.1+build.5"])
    async def test_a04_semver_versions_are_accepted_and_reported_verbatim(
        self, service_env: ServiceEnv, version: str
    ) -> None:
        service = await service_env.service(version=version)
        client = await service_env.client()
        for verb in ("PING", "INFO", "STATS"):
            document = await control(client, f"$SRV.{verb}.svc.{service.id}")
            assert document["version"] == version

    async def test_a05_loose_js_style_version_is_rejected(self, service_env: ServiceEnv) -> None:
        transport = await service_env.connect()
        with pytest.raises(ValidationError, match=r"v1\.2\.3-hello"):
            add_service(transport, "svc", "v1.2.3-hello")
        await _nothing_subscribed(await service_env.client())

    async def test_a06_endpoint_subject_with_a_space_is_rejected(
        self, service_env: ServiceEnv
    ) -> None:
        service = await service_env.service()
        with pytest.raises(ValidationError, match="endpoint subject"):
            await service.add_endpoint("x", echo, subject="endpoint subject")
        assert service.info().endpoints == []
        client = await service_env.client()
        assert (await control(client, f"$SRV.INFO.svc.{service.id}"))["endpoints"] == []
        with pytest.raises(NoRespondersError):
            await client.request("x", timeout=WAIT)

    @pytest.mark.parametrize("name", ["", "*", ">", " ", "hello.world"])
    async def test_a07_bad_endpoint_names_are_rejected(
        self, service_env: ServiceEnv, name: str
    ) -> None:
        service = await service_env.service()
        with pytest.raises(ValidationError, match="endpoint name"):
            await service.add_endpoint(name, echo)
        assert service.info().endpoints == []
        client = await service_env.client()
        assert (await control(client, f"$SRV.INFO.svc.{service.id}"))["endpoints"] == []

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
        for subject in ("a.hello", "hello", "ok.hello"):
            with pytest.raises(NoRespondersError):
                await client.request(subject, timeout=WAIT)

    @pytest.mark.parametrize("queue", [">.abc", "one two", "   ", "\t"])
    async def test_a09_bad_queue_groups_are_rejected(
        self, service_env: ServiceEnv, queue: str
    ) -> None:
        transport = await service_env.connect()
        with pytest.raises(ValidationError, match="queue group"):
            add_service(transport, "svc", "1.0.0", queue_group=queue)
        await _nothing_subscribed(await service_env.client())
        service = await service_env.service(transport=transport)
        with pytest.raises(ValidationError, match="queue group"):
            await service.add_endpoint("foo", echo, queue_group=queue)
        with pytest.raises(ValidationError, match="queue group"):
            service.add_group("g", queue_group=queue)
        assert service.info().endpoints == []
        with pytest.raises(NoRespondersError):
            await (await service_env.client()).request("foo", timeout=WAIT)


class DiscoveryCases(ServiceSuiteBase):
    """C. PING/INFO/STATS documents, as every consumer sees them."""

    async def test_c13_ping_answers_on_all_three_subject_forms(
        self, service_env: ServiceEnv
    ) -> None:
        service = await service_env.service()
        client = await service_env.client()
        for subject in _forms("PING", "svc", service.id):
            replies = [
                document
                for document in await gather_json(client, subject, max_count=1)
                if document["id"] == service.id
            ]
            assert len(replies) == 1, subject
            assert set(replies[0]) == PING_KEYS
            assert replies[0]["type"] == "io.nats.micro.v1.ping_response"
            assert replies[0]["name"] == "svc"

    async def test_c14_service_metadata_is_the_same_in_ping_info_and_stats(
        self, service_env: ServiceEnv
    ) -> None:
        with_md = await service_env.service(metadata={"basic": "metadata"})
        without = await service_env.service("other")
        client = await service_env.client()
        for verb in ("PING", "INFO", "STATS"):
            document = await control(client, f"$SRV.{verb}.svc.{with_md.id}")
            assert document["metadata"] == {"basic": "metadata"}
            document = await control(client, f"$SRV.{verb}.other.{without.id}")
            assert document["metadata"] == {}

    async def test_c15_endpoint_metadata_does_not_leak_into_service_metadata(
        self, service_env: ServiceEnv
    ) -> None:
        service = await service_env.service()
        await service.add_endpoint("ep", echo, metadata={"basic": "schema"})
        client = await service_env.client()
        for verb in ("PING", "INFO", "STATS"):
            document = await control(client, f"$SRV.{verb}.svc.{service.id}")
            assert document["metadata"] == {}
        info = await control(client, f"$SRV.INFO.svc.{service.id}")
        assert info["endpoints"][0]["metadata"] == {"basic": "schema"}
        stats = await control(client, f"$SRV.STATS.svc.{service.id}")
        assert "metadata" not in stats["endpoints"][0]

    async def test_c16_info_answers_on_all_three_subject_forms(
        self, service_env: ServiceEnv
    ) -> None:
        service = await service_env.service(description="a service")
        await service.add_endpoint("ep", echo)
        client = await service_env.client()
        for subject in _forms("INFO", "svc", service.id):
            replies = [
                document
                for document in await gather_json(client, subject, max_count=1)
                if document["id"] == service.id
            ]
            assert len(replies) == 1, subject
            document = replies[0]
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
        client = await service_env.client()
        for subject in _forms("STATS", "svc", service.id):
            replies = [
                document
                for document in await gather_json(client, subject, max_count=1)
                if document["id"] == service.id
            ]
            assert len(replies) == 1, subject
            document = replies[0]
            assert document["type"] == "io.nats.micro.v1.stats_response"
            assert document["started"].endswith("Z")
            assert [entry["name"] for entry in document["endpoints"]] == ["ep"]

    async def test_c19_service_without_endpoints_reports_empty_lists(
        self, service_env: ServiceEnv
    ) -> None:
        service = await service_env.service()
        client = await service_env.client()
        assert (await control(client, f"$SRV.INFO.svc.{service.id}"))["endpoints"] == []
        assert (await control(client, f"$SRV.STATS.svc.{service.id}"))["endpoints"] == []

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
        with pytest.raises(NoRespondersError):
            await client.request("$SRV.PING.test", timeout=WAIT)

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
        with pytest.raises(NoRespondersError):
            await client.request("$SRV.PING.svc.unknown", timeout=WAIT)
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
        client = await service_env.client()
        for verb in ("PING", "INFO", "STATS"):
            document = await control(client, f"$SRV.{verb}.svc.{first.id}")
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
