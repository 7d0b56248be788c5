"""Reusable conformance suites for transports, services and the discovery client.

Bind each suite (:class:`TransportConformance`, :class:`ServiceConformance`,
:class:`ClientConformance`) to a transport by subclassing it and providing the fixtures
``anyio_backend`` and ``conformance_backend`` (a :class:`ConformanceBackend`;
:class:`FactoryBackend` wraps any ``async connect()``), see ``docs/writing-a-transport.md``;
our own bindings are ``tests/conformance/test_*_memory.py`` and ``test_*_nats.py``::

    from testing.conformance import FactoryBackend, TransportConformance

    class TestMyTransport(TransportConformance):
        @pytest.fixture
        def anyio_backend(self) -> str:
            return "asyncio"

        @pytest.fixture
        async def conformance_backend(self) -> AsyncIterator[ConformanceBackend]:
            backend = FactoryBackend(MyBroker().connect)
            yield backend
            await backend.aclose()

Every test of a suite gets its connections from ``conformance_backend`` (each ``await
backend.connect()`` is a new connection to the same broker) and skips only by declared
capability (``backend.capabilities``).  Waits for what must happen are bounded
(``anyio.fail_after``); what must *not* happen is shown with a sentinel or a bounded quiet
window, never with a sleep.

Importing this package is cheap: the suites import pytest, anyio and ``micro``, never
nats-py (``NatsBackend`` imports the nats transport only when it connects).
"""

from .backend import (
    CAP_THREADS,
    CAP_TRIO,
    ConformanceBackend,
    FactoryBackend,
    MemoryBackend,
    NatsBackend,
)
from .client import ClientConformance
from .service import ServiceConformance
from .transport import TransportConformance

__all__ = [
    "CAP_THREADS",
    "CAP_TRIO",
    "ClientConformance",
    "ConformanceBackend",
    "FactoryBackend",
    "MemoryBackend",
    "NatsBackend",
    "ServiceConformance",
    "TransportConformance",
]
