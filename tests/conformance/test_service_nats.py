"""The service conformance suite on ``transports.nats`` and a real nats-server (asyncio)."""

from __future__ import annotations

import pytest

from testing.conformance.backend import ConformanceBackend
from testing.conformance.service import ServiceConformance


class TestServiceOnNats(ServiceConformance):
    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    def conformance_backend(self, nats_backend: ConformanceBackend) -> ConformanceBackend:
        return nats_backend
