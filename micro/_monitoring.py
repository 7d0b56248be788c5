"""The control (monitoring) handlers: PING, INFO and STATS on the nine control subjects.

One :class:`Monitoring` object per service holds them: how a starting service subscribes
to the control subjects and serves them (``control_loops``), and the builders of the INFO
and STATS documents (``Service.info()``/``Service.stats()``).  It sees the service through
the :class:`Described` protocol, so this module does not import ``micro.service``.

Each control subscription (one per subject, or one for all nine where the transport
offers ``subscribe_many``) is served by one loop that answers every request with one JSON
document (ADR-32: Discovery and Status, PING, INFO, STATS) published to the request's reply
subject, without headers.
Request payloads and headers are ignored.  Control requests never touch endpoint
statistics.  A control request without a reply subject cannot be answered: like nats.go,
the service's error handler is told (with a :class:`~micro.request.NoReplySubjectError`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any, Protocol

from micro._support import offers
from micro.control import ServiceVerb, build_control_subjects
from micro.endpoint import Endpoint
from micro.errors import last_error_text
from micro.models import PingInfo, ServiceInfo, ServiceStats
from micro.request import NoReplySubjectError
from transports.base import Msg, Subscription, Transport
from transports.extensions import MultiSubjectSubscriber

__all__ = ["ControlLoop", "Described", "Monitoring"]

_log = logging.getLogger("micro.service")

ControlLoop = tuple[
    Callable[[], Awaitable[Subscription]],
    Callable[[Subscription], Awaitable[BaseException | None]],
]
"""How to subscribe one control subscription, and the loop that serves it (returning the
error it failed with, if any)."""


class Described(Protocol):
    """The service as its documents show it (implemented by :class:`micro.service.Service`)."""

    @property
    def name(self) -> str: ...

    @property
    def id(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def metadata(self) -> Mapping[str, str]: ...

    @property
    def api_prefix(self) -> str: ...

    @property
    def discoverable(self) -> bool: ...

    @property
    def started(self) -> datetime: ...

    @property
    def endpoints(self) -> Sequence[Endpoint]: ...


class Monitoring:
    """A service's ``$SRV`` side: its INFO and STATS documents and the loops answering
    PING, INFO and STATS.

    ``stats_handler(endpoint)`` gives each endpoint's STATS ``data``; ``report_error``
    tells the service's error handler (in the background) about a control request it
    could not answer.
    """

    __slots__ = ("_ping_json", "_report_error", "_service", "_stats_handler", "_transport")

    def __init__(
        self,
        service: Described,
        transport: Transport,
        *,
        stats_handler: Callable[[Endpoint], object] | None,
        report_error: Callable[[BaseException], None],
    ) -> None:
        self._service = service
        self._transport = transport
        self._stats_handler = stats_handler
        self._report_error = report_error
        self._ping_json: bytes | None = None

    def info(self) -> ServiceInfo:
        """The INFO document (endpoints in registration order)."""
        service = self._service
        return ServiceInfo(
            name=service.name,
            id=service.id,
            version=service.version,
            description=service.description,
            metadata=dict(service.metadata),
            endpoints=[endpoint.info for endpoint in service.endpoints],
        )

    def stats(self) -> ServiceStats:
        """The STATS document, calling the stats handler once per endpoint.

        A handler that raises, or returns a value JSON cannot encode, leaves ``data`` out and
        counts one error on that endpoint (``last_error`` = the message).
        """
        service = self._service
        handler = self._stats_handler
        endpoints = []
        for endpoint in service.endpoints:
            data: Any = None
            if handler is not None:
                try:
                    data = handler(endpoint)
                    json.dumps(data, allow_nan=False)
                except Exception as exc:
                    data = None
                    endpoint.record_error(last_error_text(exc))
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

    def _ping_payload(self) -> bytes:
        """The PING response (ADR-32, PING): built on the first PING, then reused."""
        if self._ping_json is None:
            service = self._service
            self._ping_json = PingInfo(
                name=service.name,
                id=service.id,
                version=service.version,
                metadata=dict(service.metadata),
            ).to_json()
        return self._ping_json

    def _response(self, verb: ServiceVerb) -> bytes:
        if verb is ServiceVerb.PING:
            return self._ping_payload()
        if verb is ServiceVerb.INFO:
            return self.info().to_json()
        return self.stats().to_json()

    async def _answer(self, verbs: Mapping[str, ServiceVerb], msg: Msg) -> None:
        reply = msg.reply
        if not reply:
            self._report_error(NoReplySubjectError(msg.subject))
            return
        verb = verbs[msg.subject]
        try:
            payload = self._response(verb)
            await self._transport.publish(reply, payload)
        except Exception as exc:
            _log.warning(
                "service %r could not answer %s request on %r: %s",
                self._service.name,
                verb.value,
                msg.subject,
                exc,
            )

    def control_loops(self) -> list[ControlLoop]:
        """How to subscribe to the nine control subjects, and the loops serving them: one
        ``subscribe_many`` (one subscription, one receive loop) when the transport offers it
        (``transports.extensions``), otherwise one ``subscribe`` per subject; none for a
        service that is not discoverable."""
        service = self._service
        if not service.discoverable:
            return []
        transport = self._transport
        pairs = build_control_subjects(service.name, service.id, service.api_prefix)
        if offers(transport, MultiSubjectSubscriber):
            verbs = {subject: verb for verb, subject in pairs}
            return [(partial(transport.subscribe_many, list(verbs)), partial(self._serve, verbs))]
        return [
            (partial(transport.subscribe, subject), partial(self._serve, {subject: verb}))
            for verb, subject in pairs
        ]

    async def _serve(
        self, verbs: Mapping[str, ServiceVerb], subscription: Subscription
    ) -> BaseException | None:
        """Answer every request on ``subscription`` until it ends; never raises.

        ``verbs`` maps each control subject the subscription receives (one, or all nine of a
        ``subscribe_many`` subscription) to the verb answered on it.  Returns the error the
        loop failed with (``None`` when the subscription simply ended).
        """
        try:
            async for msg in subscription:
                await self._answer(verbs, msg)
        except Exception as exc:
            _log.exception(
                "service %r stopped answering on %r", self._service.name, subscription.subject
            )
            return exc
        return None
