"""The service conformance suite: ADR-32 (validation, discovery, groups,
queue groups, requests, errors, stats, life cycle) against any Transport.

Bind it by subclassing, as ``testing.conformance`` shows.  Every test is named after its
case (``test_c13_...``; a table of several cases names each in its ids).  PING/INFO/STATS
replies are validated against the JSON schemas of nats-io/jsm.go shipped in
``testing/conformance/schemas/``; what must *not* happen is checked with a bounded quiet
window (100 ms).
"""

from __future__ import annotations

from ._service_discovery import ConfigurationCases, DiscoveryCases
from ._service_lifecycle import LifecycleCases
from ._service_mistakes import HandlerMistakeCases
from ._service_requests import ExceptionCases, RequestReplyCases, StatisticsCases
from ._service_routing import GroupCases, QueueGroupCases

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
    HandlerMistakeCases,
):
    """Every service conformance case (groups A, C-I, and handler mistakes); bind by
    subclassing."""
