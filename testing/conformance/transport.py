"""The transport conformance suite: every promise of ``transports.base``, as tests.

Bind it by subclassing, as ``testing.conformance`` shows.  Every test uses only the fixture
``conformance_backend``.  "Nothing else arrives" is shown with a sentinel published after
the other messages by the same publisher.  Two delivery-order facts are used as barriers:
messages from one publisher reach one subscription in publish order (promised by
``Subscription``), and they reach one *connection* in publish order across its
subscriptions (pinned by
``test_one_connection_receives_one_publisher_in_order_across_subscriptions``).

The cases live in topic modules (``_transport_basics``, ``_transport_subjects``,
``_transport_requests``, ``_transport_messages``, ``_transport_subscriptions``,
``_transport_lifecycle``, ``_transport_fidelity`` (differences from nats-server found by
``testing.lockstep``), ``_transport_threads`` (connections on other threads and event
loops; capability ``threads``), and ``_transport_multi`` for the optional ``subscribe_many``,
skipped by a transport that does not offer it); a binding may also subclass just one of
those mixins.
"""

from __future__ import annotations

from ._transport_basics import ConnectionCases
from ._transport_fidelity import FidelityCases
from ._transport_lifecycle import LifecycleCases
from ._transport_messages import MessageCases
from ._transport_multi import MultiSubjectCases
from ._transport_requests import RequestCases
from ._transport_subjects import SubjectCases
from ._transport_subscriptions import SubscriptionCases
from ._transport_threads import ThreadCases

__all__ = [
    "ConnectionCases",
    "FidelityCases",
    "LifecycleCases",
    "MessageCases",
    "MultiSubjectCases",
    "RequestCases",
    "SubjectCases",
    "SubscriptionCases",
    "ThreadCases",
    "TransportConformance",
]


class TransportConformance(
    ConnectionCases,
    SubjectCases,
    RequestCases,
    MessageCases,
    SubscriptionCases,
    LifecycleCases,
    MultiSubjectCases,
    FidelityCases,
    ThreadCases,
):
    """Conformance tests for one ``Transport`` implementation (bind by subclassing)."""
