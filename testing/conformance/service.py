"""The service conformance suite: CONFORMANCE.md groups A and C-I against any Transport.

Bind it in a few lines (see ``tests/conformance/test_service_memory.py``)::

    class TestServiceOnMyTransport(ServiceConformance):
        @pytest.fixture
        def anyio_backend(self) -> str:
            return "asyncio"

        @pytest.fixture
        async def conformance_backend(self) -> AsyncIterator[ConformanceBackend]:
            backend = FactoryBackend(my_connect)
            yield backend
            await backend.aclose()

Every test uses only the fixture ``conformance_backend`` (``await backend.connect()`` is a
new connection to the same broker) and is named after its case (``test_c13_...``).
PING/INFO/STATS replies are validated against the JSON schemas of nats-io/jsm.go shipped in
``testing/conformance/schemas/``.  Waits for what must happen are bounded (``anyio.fail_after``);
what must *not* happen is checked with a bounded quiet window (100 ms), never with a sleep.
Tests skip only by declared capability (``trio``).
"""

from __future__ import annotations

from testing.conformance._service_discovery import ConfigurationCases, DiscoveryCases
from testing.conformance._service_lifecycle import LifecycleCases
from testing.conformance._service_requests import (
    ExceptionCases,
    RequestReplyCases,
    StatisticsCases,
)
from testing.conformance._service_routing import GroupCases, QueueGroupCases

__all__ = ["ServiceConformance"]


class ServiceConformance(
    ConfigurationCases,
    DiscoveryCases,
    GroupCases,
    QueueGroupCases,
    RequestReplyCases,
    ExceptionCases,
    StatisticsCases,
    LifecycleCases,
):
    """Every service conformance case (groups A, C-I); bind by subclassing."""
