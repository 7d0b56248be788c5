"""The per-test environment of the service conformance suite (fixture ``service_env``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from micro.request import Request
from micro.service import Service, add_service
from testing.conformance._service_support import WAIT
from testing.conformance.backend import CAP_TRIO, ConformanceBackend
from transports.base import Transport

__all__ = ["ServiceEnv", "ServiceSuiteBase", "echo"]


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
        with anyio.fail_after(WAIT):
            for service in reversed(self._services):
                await service.stop(grace_period=WAIT / 2)


def _backend_name(anyio_backend: object) -> str:
    if isinstance(anyio_backend, tuple):
        return str(anyio_backend[0])
    return str(anyio_backend)


class ServiceSuiteBase:
    """Fixtures shared by every group of service conformance cases."""

    pytestmark = pytest.mark.anyio

    @pytest.fixture(autouse=True)
    def _declared_capabilities(
        self, conformance_backend: ConformanceBackend, anyio_backend: object
    ) -> None:
        if _backend_name(anyio_backend) == "trio" and CAP_TRIO not in (
            conformance_backend.capabilities
        ):
            pytest.skip("the backend does not declare the 'trio' capability")

    @pytest.fixture
    async def service_env(
        self, conformance_backend: ConformanceBackend
    ) -> AsyncIterator[ServiceEnv]:
        env = ServiceEnv(conformance_backend)
        try:
            yield env
        finally:
            await env.aclose()
