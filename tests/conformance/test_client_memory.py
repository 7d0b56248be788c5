"""The discovery-client conformance suite (group J) on ``transports.memory`` (asyncio and trio)."""

from __future__ import annotations

import pytest

from testing.conformance.backend import ConformanceBackend
from testing.conformance.client import ClientConformance


class TestClientOnMemory(ClientConformance):
    @pytest.fixture(params=["asyncio", "trio"])
    def anyio_backend(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture
    def conformance_backend(self, memory_backend: ConformanceBackend) -> ConformanceBackend:
        return memory_backend
