"""The control (monitoring) handlers: PING, INFO and STATS on the nine control subjects.

Also how a starting service subscribes to them (``control_subscribes``), and the builders
of the INFO and STATS documents (``Service.info()``/``Service.stats()``).

Each control subscription (one per subject, or one for all nine where the transport
offers ``subscribe_many``) is served by one loop that answers every request with one JSON
document (PROTOCOL §3.4, §4) published to the request's reply subject, without headers.
Request payloads and headers are ignored.  Control requests never touch endpoint
statistics.  A control request without a reply subject cannot be answered: like nats.go,
the service's error handler is told (with a :class:`~micro.request.NoReplySubjectError`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from micro._support import offers
from micro.control import ServiceVerb, build_control_subjects
from micro.models import PingInfo, ServiceInfo, ServiceStats
from micro.request import NoReplySubjectError
from transports.base import Msg, Subscription, Transport
from transports.extensions import MultiSubjectSubscriber

if TYPE_CHECKING:
    from micro.service import Service

__all__ = ["build_info", "build_stats", "control_subscribes", "serve_control"]

_log = logging.getLogger("micro.service")


def build_info(service: Service) -> ServiceInfo:
    """The INFO document of ``service`` (endpoints in registration order)."""
    return ServiceInfo(
        name=service.name,
        id=service.id,
        version=service.version,
        description=service.description,
        metadata=dict(service.metadata),
        endpoints=[endpoint.info for endpoint in service._endpoints],
    )


def build_stats(service: Service) -> ServiceStats:
    """The STATS document of ``service``, calling its stats handler once per endpoint.

    A handler that raises, or returns a value JSON cannot encode, leaves ``data`` out and
    counts one error on that endpoint (``last_error`` = the message).
    """
    handler = service._stats_handler
    endpoints = []
    for endpoint in service._endpoints:
        data: Any = None
        if handler is not None:
            try:
                data = handler(endpoint)
                json.dumps(data, allow_nan=False)
            except Exception as exc:
                data = None
                endpoint.record_error(str(exc) or type(exc).__name__)
        stats = endpoint.stats
        stats.data = data
        endpoints.append(stats)
    return ServiceStats(
        name=service.name,
        id=service.id,
        version=service.version,
        started=service.started,
        endpoints=endpoints,
        metadata=dict(service.metadata),
    )


def _ping_payload(service: Service) -> bytes:
    """The PING response (PROTOCOL §4.2): built on the first PING, then reused."""
    if service._ping_json is None:
        service._ping_json = PingInfo(
            name=service.name,
            id=service.id,
            version=service.version,
            metadata=dict(service.metadata),
        ).to_json()
    return service._ping_json


def _response(service: Service, verb: ServiceVerb) -> bytes:
    if verb is ServiceVerb.PING:
        return _ping_payload(service)
    if verb is ServiceVerb.INFO:
        return service.info().to_json()
    return service.stats().to_json()


async def _answer(
    service: Service, transport: Transport, verbs: Mapping[str, ServiceVerb], msg: Msg
) -> None:
    reply = msg.reply
    if not reply:
        service._report_error(NoReplySubjectError(msg.subject))
        return
    verb = verbs[msg.subject]
    try:
        payload = _response(service, verb)
        await transport.publish(reply, payload)
    except Exception as exc:
        _log.warning(
            "service %r could not answer %s request on %r: %s",
            service.name,
            verb.value,
            msg.subject,
            exc,
        )


def control_subscribes(
    service: Service,
) -> list[tuple[dict[str, ServiceVerb], Callable[[], Awaitable[Subscription]]]]:
    """How to subscribe to the nine control subjects, with the verb of each subject: one
    ``subscribe_many`` (one subscription, one receive loop) when the transport offers it
    (``transports.extensions``), otherwise one ``subscribe`` per subject; none for a service
    that is not discoverable."""
    if not service.discoverable:
        return []
    transport = service._transport
    pairs = build_control_subjects(service.name, service.id, service.api_prefix)
    if offers(transport, MultiSubjectSubscriber):
        verbs = {subject: verb for verb, subject in pairs}
        return [(verbs, partial(transport.subscribe_many, list(verbs)))]
    return [({subject: verb}, partial(transport.subscribe, subject)) for verb, subject in pairs]


async def serve_control(
    service: Service,
    transport: Transport,
    verbs: Mapping[str, ServiceVerb],
    subscription: Subscription,
) -> None:
    """Answer every request on ``subscription`` until it ends; never raises.

    ``verbs`` maps each control subject the subscription receives (one, or all nine of a
    ``subscribe_many`` subscription) to the verb answered on it.

    When it ends the service is told, so that an end it did not ask for stops it.
    """
    error: BaseException | None = None
    try:
        async for msg in subscription:
            await _answer(service, transport, verbs, msg)
    except Exception as exc:
        error = exc
        _log.exception("service %r stopped answering on %r", service.name, subscription.subject)
    service._subscription_ended(subscription, error)
