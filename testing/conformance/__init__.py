"""Reusable conformance suites for transports, services and the discovery client.

Bind them to a transport by subclassing and providing the fixture ``conformance_backend``
(a :class:`ConformanceBackend`; :class:`FactoryBackend` wraps any ``async connect()``),
see ``docs/writing-a-transport.md``::

    from testing.conformance import FactoryBackend, TransportConformance

    class TestMyTransport(TransportConformance):
        @pytest.fixture
        async def conformance_backend(self):
            backend = FactoryBackend(MyBroker().connect)
            yield backend
            await backend.aclose()

Importing this package is cheap: the suites import pytest, anyio and ``micro``, never
nats-py (``NatsBackend`` imports the nats transport only when it connects).
"""

from testing.conformance.backend import (
    CAP_TRIO,
    ConformanceBackend,
    FactoryBackend,
    MemoryBackend,
    NatsBackend,
)
from testing.conformance.client import ClientConformance
from testing.conformance.service import ServiceConformance
from testing.conformance.transport import TransportConformance

__all__ = [
    "CAP_TRIO",
    "ClientConformance",
    "ConformanceBackend",
    "FactoryBackend",
    "MemoryBackend",
    "NatsBackend",
    "ServiceConformance",
    "TransportConformance",
]
