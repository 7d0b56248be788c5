"""NATS micro-services (the NATS Service API, ADR-32) over any ``transports.base.Transport``.

The public surface: :func:`add_service` and :class:`Service`, :class:`Group`,
:class:`Endpoint`, :class:`Request` (and ``Handler``, ``Middleware``), the wire models,
the discovery :class:`Client`, :class:`Context` / :func:`run`, the decorator :class:`App`,
and the errors.  Nothing here imports nats-py: a nats-py client passed where a transport
is expected is wrapped by ``transports.nats`` on demand.

:class:`App` is exported lazily: ``import micro`` does not import :mod:`micro.app` (the
decorator layer and its dependencies, most of this package's import time); the first
``micro.App`` (or ``from micro import App``) does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from micro.client import (
    Client,
    EndpointNotFoundError,
    InstanceClient,
    ServiceClient,
    ServiceNotFoundError,
)
from micro.context import Context, run
from micro.control import (
    DEFAULT_API_PREFIX,
    INFO_RESPONSE_TYPE,
    PING_RESPONSE_TYPE,
    STATS_RESPONSE_TYPE,
    ServiceVerb,
    control_subject,
)
from micro.discovery import request_many, request_many_iter
from micro.endpoint import Endpoint
from micro.errors import (
    ERROR_CODE_HEADER,
    ERROR_HEADER,
    ServiceError,
    ServiceStoppedError,
    ValidationError,
)
from micro.group import DEFAULT_QUEUE_GROUP, Group
from micro.ids import new_id
from micro.middleware import Middleware
from micro.models import EndpointInfo, EndpointStats, PingInfo, ServiceInfo, ServiceStats
from micro.request import Handler, NoReplySubjectError, Request
from micro.service import Service, add_service

if TYPE_CHECKING:
    from micro.app import App

__all__ = [
    "DEFAULT_API_PREFIX",
    "DEFAULT_QUEUE_GROUP",
    "ERROR_CODE_HEADER",
    "ERROR_HEADER",
    "INFO_RESPONSE_TYPE",
    "PING_RESPONSE_TYPE",
    "STATS_RESPONSE_TYPE",
    "App",
    "Client",
    "Context",
    "Endpoint",
    "EndpointInfo",
    "EndpointNotFoundError",
    "EndpointStats",
    "Group",
    "Handler",
    "InstanceClient",
    "Middleware",
    "NoReplySubjectError",
    "PingInfo",
    "Request",
    "Service",
    "ServiceClient",
    "ServiceError",
    "ServiceInfo",
    "ServiceNotFoundError",
    "ServiceStats",
    "ServiceStoppedError",
    "ServiceVerb",
    "ValidationError",
    "add_service",
    "control_subject",
    "new_id",
    "request_many",
    "request_many_iter",
    "run",
]


def __getattr__(name: str) -> Any:
    """Import :mod:`micro.app` on first use of ``micro.App`` (PEP 562)."""
    if name == "App":
        from micro.app import App

        globals()["App"] = App
        return App
    raise AttributeError(f"module 'micro' has no attribute {name!r}")
