"""The transport conformance suite bound to ``transports.nats`` and a real nats-server."""

from __future__ import annotations

import pytest

from testing.conformance.backend import ConformanceBackend
from testing.conformance.transport import TransportConformance


class TestNatsTransport(TransportConformance):
    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    def conformance_backend(self, nats_backend: ConformanceBackend) -> ConformanceBackend:
        return nats_backend
