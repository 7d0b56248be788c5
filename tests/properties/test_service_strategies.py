"""The service-level strategies of ``testing.strategies`` generate what they promise.

Valid names, versions and metadata are accepted by ``micro.validation`` (and by
``add_service``); invalid ones are rejected with a ``ValidationError`` naming the value.
Generated routing programs contain every kind of step.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings

from micro import add_service
from micro.errors import ValidationError
from micro.validation import (
    SEMVER_PATTERN,
    validate_endpoint_name,
    validate_metadata,
    validate_service_name,
    validate_version,
)
from testing import strategies as mst
from testing.differential import Drain, Publish, Request, RoutingProgram, Subscribe, Unsubscribe
from transports.memory import MemoryBroker


@given(mst.service_names(), mst.endpoint_names())
def test_generated_names_are_valid(service: str, endpoint: str) -> None:
    assert validate_service_name(service) == service
    assert validate_endpoint_name(endpoint) == endpoint


@given(mst.invalid_names())
def test_generated_invalid_names_are_rejected(name: str) -> None:
    with pytest.raises(ValidationError, match="service name"):
        validate_service_name(name)


@given(mst.versions())
def test_generated_versions_are_semver(version: str) -> None:
    assert validate_version(version) == version
    assert re.fullmatch(SEMVER_PATTERN, version, re.ASCII)


@given(mst.invalid_versions())
def test_generated_invalid_versions_are_rejected(version: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_version(version)
    assert repr(version) in str(caught.value)


@given(mst.metadata())
def test_generated_metadata_is_accepted(metadata: dict[str, str]) -> None:
    assert validate_metadata(metadata) == metadata


@given(mst.invalid_metadata())
def test_generated_invalid_metadata_is_rejected(metadata: Any) -> None:
    with pytest.raises(ValidationError):
        validate_metadata(metadata)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@settings(max_examples=25)
@given(mst.service_names(), mst.versions(), mst.metadata())
async def test_add_service_takes_generated_configurations(
    name: str, version: str, metadata: dict[str, str]
) -> None:
    connection = await MemoryBroker().connect()
    service = add_service(connection, name, version, metadata=metadata)
    assert (service.name, service.version, dict(service.metadata)) == (name, version, metadata)
    await connection.close()


def test_routing_programs_use_every_kind_of_step() -> None:
    kinds: Counter[type] = Counter()

    @settings(max_examples=100, database=None)
    @given(mst.routing_programs())
    def count(program: RoutingProgram) -> None:
        kinds.update(type(step) for step in program.steps)

    count()
    assert set(kinds) == {Subscribe, Publish, Request, Unsubscribe, Drain}

    @settings(max_examples=30, database=None)
    @given(mst.routing_programs(requests=False, drains=False))
    def plain(program: RoutingProgram) -> None:
        assert not any(isinstance(step, (Request, Drain)) for step in program.steps)

    plain()


def test_versions_cover_prereleases_and_builds() -> None:
    seen: list[str] = []

    @settings(max_examples=100, database=None)
    @given(mst.versions())
    def collect(version: str) -> None:
        seen.append(version)

    collect()
    assert any("-" in version.split("+")[0] for version in seen)
    assert any("+" in version for version in seen)
