"""The environment and helpers of the service and client conformance suites.

* :class:`ServiceSuiteBase` gives every test the fixture ``service_env``, a
  :class:`ServiceEnv`: the test's connections and services, every service stopped at the end.
* :func:`gather` -- scatter/gather (ADR-32, Discovery and Status; ``micro.discovery.request_many``):
  publish once with a fresh inbox, collect replies until ``max_count``, an inactivity window
  after the last reply, the overall deadline, or a no-responders status.
* :func:`control` and :func:`gather_json` -- control requests, each reply decoded and
  validated against the JSON schemas shipped next to this module (``schemas/``, copied from
  nats-io/jsm.go).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from importlib import resources
from typing import Any

import anyio
import jsonschema
import pytest

from micro.control import INFO_RESPONSE_TYPE, PING_RESPONSE_TYPE, STATS_RESPONSE_TYPE
from micro.discovery import request_many
from micro.request import Request
from micro.service import Service, add_service
from micro.timestamps import parse_timestamp
from transports.base import Msg, Transport

from ._suite_base import WAIT, SuiteBase
from .backend import ConformanceBackend

__all__ = [
    "STALL",
    "ServiceEnv",
    "ServiceSuiteBase",
    "VERBS",
    "control",
    "echo",
    "endpoint_entries",
    "gather",
    "gather_json",
    "instance_documents",
    "subject_forms",
    "validate_document",
]

STALL = 0.25
"""Inactivity window (seconds) that ends a discovery after the last reply (as nats.js)."""

_TYPES = {"PING": PING_RESPONSE_TYPE, "INFO": INFO_RESPONSE_TYPE, "STATS": STATS_RESPONSE_TYPE}
VERBS = tuple(_TYPES)
"""The three discovery verbs: ``PING``, ``INFO``, ``STATS``."""
_SCHEMAS: dict[str, Any] = {}


async def echo(request: Request) -> None:
    """A handler answering with the request payload."""
    await request.respond(request.data())


class ServiceEnv:
    """Connections and services of one test; every service is stopped at the end."""

    def __init__(self, backend: ConformanceBackend) -> None:
        self.backend = backend
        self._client: Transport | None = None
        self._services: list[Service] = []

    async def connect(self) -> Transport:
        """A new connection to the test's broker."""
        return await self.backend.connect()

    async def client(self) -> Transport:
        """The test's requester connection (one per test)."""
        if self._client is None:
            self._client = await self.backend.connect()
        return self._client

    def track(self, service: Service) -> Service:
        """Stop ``service`` at the end of the test; returns it."""
        self._services.append(service)
        return service

    async def service(
        self,
        name: str = "svc",
        version: str = "1.0.0",
        *,
        transport: Transport | None = None,
        start: bool = True,
        **options: Any,
    ) -> Service:
        """``add_service`` on a new connection (or ``transport``), started unless told not."""
        connection = transport if transport is not None else await self.connect()
        service = self.track(add_service(connection, name, version, **options))
        if start:
            await service.start()
        return service

    async def aclose(self) -> None:
        """Stop every tracked service, the last one first."""
        with anyio.fail_after(WAIT):
            for service in reversed(self._services):
                await service.stop(grace_period=WAIT / 2)


class ServiceSuiteBase(SuiteBase):
    """The base of every group of service and client conformance cases."""

    @pytest.fixture
    async def service_env(
        self, conformance_backend: ConformanceBackend
    ) -> AsyncIterator[ServiceEnv]:
        env = ServiceEnv(conformance_backend)
        try:
            yield env
        finally:
            await env.aclose()


def _schema(verb: str) -> Any:
    if verb not in _SCHEMAS:
        text = (
            resources.files(__package__ or "testing.conformance")
            .joinpath("schemas")
            .joinpath(f"{verb.lower()}_response.json")
            .read_text(encoding="utf-8")
        )
        _SCHEMAS[verb] = json.loads(text)
    return _SCHEMAS[verb]


def validate_document(verb: str, document: Mapping[str, Any]) -> None:
    """Assert ``document`` is a valid ``verb`` response (jsm.go schema + our writer rules)."""
    jsonschema.validate(
        dict(document),
        _schema(verb),
        format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER,
    )
    assert document["type"] == _TYPES[verb]
    assert isinstance(document["metadata"], dict), "service metadata is written as an object"
    if verb == "STATS":
        started = document["started"]
        assert started.endswith("Z"), f"started {started!r} must be UTC with 'Z'"
        parse_timestamp(started)
        for endpoint in document["endpoints"]:
            assert endpoint["average_processing_time"] == (
                endpoint["processing_time"] // endpoint["num_requests"]
                if endpoint["num_requests"]
                else 0
            )


def _validated(subject: str, msg: Msg) -> dict[str, Any]:
    """The JSON document of a reply to the control subject ``subject``, validated."""
    verb = next(verb for verb in _TYPES if f".{verb}" in f".{subject}")
    document: dict[str, Any] = json.loads(msg.data)
    validate_document(verb, document)
    return document


async def control(client: Transport, subject: str) -> dict[str, Any]:
    """Send one control request to ``subject``; return the validated JSON document."""
    return _validated(subject, await client.request(subject, timeout=WAIT))


def subject_forms(verb: str, service: Service) -> list[str]:
    """The three subjects ``service`` answers ``verb`` on: all services, by name, by id."""
    name = service.name
    return [f"$SRV.{verb}", f"$SRV.{verb}.{name}", f"$SRV.{verb}.{name}.{service.id}"]


async def endpoint_entries(client: Transport, verb: str, service: Service) -> list[dict[str, Any]]:
    """The ``endpoints`` of ``service``'s INFO or STATS document, asked by name and id."""
    document = await control(client, subject_forms(verb, service)[2])
    entries: list[dict[str, Any]] = document["endpoints"]
    return entries


async def instance_documents(client: Transport, service: Service) -> list[dict[str, Any]]:
    """The PING, INFO and STATS documents of ``service``, asked by name and id."""
    return [await control(client, subject_forms(verb, service)[2]) for verb in VERBS]


async def gather(
    client: Transport,
    subject: str,
    *,
    max_count: int | None = None,
    stall: float = STALL,
    timeout: float = WAIT,  # noqa: ASYNC109 (the overall deadline of the gathering)
    data: bytes = b"",
) -> list[Msg]:
    """Every reply to one request, in arrival order: ``micro.discovery.request_many`` with
    the suite's bounds (no-responders -> [])."""
    return await request_many(
        client, subject, data, max_wait=timeout, max_count=max_count, max_interval=stall
    )


async def gather_json(client: Transport, subject: str, **options: Any) -> list[dict[str, Any]]:
    """:func:`gather`, each reply decoded and schema-validated."""
    return [_validated(subject, msg) for msg in await gather(client, subject, **options)]
