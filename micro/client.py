"""The discovery client: PING / INFO / STATS over scatter/gather, and service requests.

:class:`Client` (``nats_contrib.micro``'s name and methods) works over any
:class:`~transports.base.Transport`; a nats-py client passed instead is wrapped.

* ``ping``/``info``/``stats`` send **one** control request (ADR-32, Discovery and Status) and
  return the decoded replies in arrival order (lists of :class:`~micro.models.PingInfo`,
  :class:`~micro.models.ServiceInfo`, :class:`~micro.models.ServiceStats`); the ``*_iter``
  forms yield them as they arrive (use them with ``async with``).  Collection ends as
  :mod:`micro.discovery` describes (defaults 2.0 s overall, 0.3 s of silence, at once
  when ``max_count`` replies arrived or when nobody is subscribed -> ``[]``).
* Tolerant reading: a reply that is not JSON, is not an object, has another ``type`` or
  cannot be read by the model's ``from_response`` is skipped and logged (logger
  ``micro.discovery``), never fatal.
* :meth:`Client.service` and :meth:`Client.instance` give scoped clients.  An instance
  query implies ``max_count=1``.  Design choice (see docs/wire.md): the multi-reply calls
  return ``[]`` when nobody answers, while the single-instance calls of
  :class:`InstanceClient` (``ping``, ``info``, ``stats``) return one document and raise
  :class:`~transports.base.NoRespondersError` when no such instance is subscribed, or
  :class:`~transports.base.RequestTimeoutError` when it did not answer in time.
* :meth:`Client.request` calls an endpoint and raises :class:`~micro.errors.ServiceError`
  on an error reply (ADR-32, Error Handling); :meth:`Client.request_endpoint` first resolves
  the endpoint's subject by name from INFO.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from micro._support import as_transport
from micro.control import DEFAULT_API_PREFIX, ServiceVerb, control_subject, validate_api_prefix
from micro.discovery import Gathering, GatherLimits
from micro.errors import ServiceError
from micro.models import EndpointInfo, PingInfo, ServiceInfo, ServiceStats
from transports.base import Msg, NoRespondersError, RequestTimeoutError, Transport

__all__ = [
    "Client",
    "EndpointNotFoundError",
    "InstanceClient",
    "ServiceClient",
    "ServiceNotFoundError",
]

_MODELS: dict[ServiceVerb, type[Any]] = {
    ServiceVerb.PING: PingInfo,
    ServiceVerb.INFO: ServiceInfo,
    ServiceVerb.STATS: ServiceStats,
}


class ServiceNotFoundError(LookupError):
    """No instance of the service answered an INFO request (client side)."""

    def __init__(self, service: str) -> None:
        super().__init__(f"no instance of service {service!r} answered")
        self.service = service


class EndpointNotFoundError(LookupError):
    """The service has no endpoint of that name; the message lists the available names."""

    def __init__(self, service: str, endpoint: str, available: list[str]) -> None:
        names = ", ".join(available) if available else "none"
        super().__init__(
            f"service {service!r} has no endpoint named {endpoint!r}; available endpoints: {names}"
        )
        self.service = service
        self.endpoint = endpoint
        self.available = available


def _parser(verb: ServiceVerb) -> Callable[[Msg], Any]:
    model = _MODELS[verb]
    expected = verb.response_type

    def parse(msg: Msg) -> Any:
        try:
            document = json.loads(msg.data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"{verb.value} reply is not JSON ({exc}): {msg.data[:80]!r}") from None
        if not isinstance(document, dict):
            raise ValueError(f"{verb.value} reply is not a JSON object: {msg.data[:80]!r}")
        kind = document.get("type")
        if kind is not None and kind != expected:
            raise ValueError(f"{verb.value} reply has type {kind!r}, expected {expected!r}")
        try:
            return model.from_response(document)
        except (TypeError, KeyError, AttributeError) as exc:  # defensive: never fatal
            raise ValueError(f"{verb.value} reply cannot be read: {exc!r}") from None

    return parse


_PARSERS = {verb: _parser(verb) for verb in ServiceVerb}


class Client:
    """Discovery and requests over one connection.

    ``nc`` (named as in the ``nats_contrib.micro`` API) is a
    :class:`~transports.base.Transport` or a nats-py client (wrapped in
    ``transports.nats.NatsTransport``, imported only then).  ``default_max_wait`` replaces
    the 2.0 s overall wait of discovery calls that pass no ``max_wait``; ``api_prefix``
    the control prefix ``$SRV``.  The client owns nothing: closing the transport is the
    caller's business.  Raises ``TypeError`` for something that is not a transport,
    ``ValueError``/:class:`~micro.errors.ValidationError` for a bad wait or prefix.
    """

    def __init__(
        self,
        nc: Transport | Any,
        default_max_wait: float | None = None,
        api_prefix: str | None = None,
    ) -> None:
        self._transport = as_transport(nc)
        if default_max_wait is not None:
            GatherLimits.of(max_wait=default_max_wait)  # validates
        self._default_max_wait = default_max_wait
        self._api_prefix = validate_api_prefix(
            DEFAULT_API_PREFIX if api_prefix is None else api_prefix
        )

    def __repr__(self) -> str:
        return f"<Client api_prefix={self._api_prefix!r} transport={self._transport!r}>"

    @property
    def transport(self) -> Transport:
        return self._transport

    @property
    def api_prefix(self) -> str:
        return self._api_prefix

    # ------------------------------------------------------------------ scatter/gather core

    def _gathering(
        self,
        verb: ServiceVerb,
        service: str | None,
        instance_id: str | None,
        max_wait: float | None,
        max_count: int | None,
        max_interval: float | None,
    ) -> Gathering[Any]:
        subject = control_subject(verb, service, instance_id, api_prefix=self._api_prefix)
        if instance_id and max_count is None:
            max_count = 1
        limits = GatherLimits.of(
            self._default_max_wait if max_wait is None else max_wait, max_count, max_interval
        )
        return Gathering(self._transport, subject, limits=limits, parse=_PARSERS[verb])

    # ------------------------------------------------------------------ lists

    async def ping(
        self,
        service: str | None = None,
        max_wait: float | None = None,
        max_count: int | None = None,
        max_interval: float | None = None,
    ) -> list[PingInfo]:
        """PING every instance (of ``service`` if given); replies in arrival order.

        Raises :class:`~micro.errors.ValidationError` for a bad service name, ``ValueError``
        for bad limits; returns ``[]`` when nobody answers.
        """
        return await self.ping_iter(service, max_wait, max_count, max_interval).collect()

    async def info(
        self,
        service: str | None = None,
        max_wait: float | None = None,
        max_count: int | None = None,
        max_interval: float | None = None,
    ) -> list[ServiceInfo]:
        """INFO of every instance (of ``service`` if given); as :meth:`ping`."""
        return await self.info_iter(service, max_wait, max_count, max_interval).collect()

    async def stats(
        self,
        service: str | None = None,
        max_wait: float | None = None,
        max_count: int | None = None,
        max_interval: float | None = None,
    ) -> list[ServiceStats]:
        """STATS of every instance (of ``service`` if given); as :meth:`ping`."""
        return await self.stats_iter(service, max_wait, max_count, max_interval).collect()

    # ------------------------------------------------------------------ iterators

    def ping_iter(
        self,
        service: str | None = None,
        max_wait: float | None = None,
        max_count: int | None = None,
        max_interval: float | None = None,
    ) -> Gathering[PingInfo]:
        """PING replies as they arrive: ``async with client.ping_iter() as replies``.

        Bad arguments raise at once; the request is sent on entering the block.
        """
        return self._gathering(ServiceVerb.PING, service, None, max_wait, max_count, max_interval)

    def info_iter(
        self,
        service: str | None = None,
        max_wait: float | None = None,
        max_count: int | None = None,
        max_interval: float | None = None,
    ) -> Gathering[ServiceInfo]:
        """INFO replies as they arrive; as :meth:`ping_iter`."""
        return self._gathering(ServiceVerb.INFO, service, None, max_wait, max_count, max_interval)

    def stats_iter(
        self,
        service: str | None = None,
        max_wait: float | None = None,
        max_count: int | None = None,
        max_interval: float | None = None,
    ) -> Gathering[ServiceStats]:
        """STATS replies as they arrive; as :meth:`ping_iter`."""
        return self._gathering(ServiceVerb.STATS, service, None, max_wait, max_count, max_interval)

    # ------------------------------------------------------------------ scopes

    def service(self, service: str) -> ServiceClient:
        """A client for the instances of one service (name checked at once)."""
        return ServiceClient(self, service)

    def instance(self, service: str, id: str) -> InstanceClient:
        """A client for one instance of one service (name and id checked at once)."""
        return InstanceClient(self, service, id)

    # ------------------------------------------------------------------ requests

    async def request(
        self,
        subject: str,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 1,
    ) -> Msg:
        """Send one request and return the reply.

        Raises :class:`~micro.errors.ServiceError` (code, description, subject, data,
        headers) when the reply carries a ``Nats-Service-Error-Code`` header, and the
        transport's :class:`~transports.base.NoRespondersError`,
        :class:`~transports.base.RequestTimeoutError` and friends as they are.
        """
        reply = await self._transport.request(
            subject, data or b"", headers=headers, timeout=timeout
        )
        error = ServiceError.from_headers(reply.headers, subject=subject, data=reply.data)
        if error is not None:
            raise error
        return reply

    async def find_endpoint(
        self, service: str, endpoint: str, id: str | None = None, max_wait: float | None = None
    ) -> EndpointInfo:
        """The endpoint named ``endpoint`` in the INFO of the first instance that answers.

        Raises :class:`ServiceNotFoundError` when no instance answers and
        :class:`EndpointNotFoundError` (listing the available names) when it has no such
        endpoint (endpoint names are unique within a service).
        """
        gathering = self._gathering(ServiceVerb.INFO, service, id, max_wait, 1, None)
        found = await gathering.collect()
        if not found:
            raise ServiceNotFoundError(service)
        info: ServiceInfo = found[0]
        for candidate in info.endpoints:
            if candidate.name == endpoint:
                return candidate
        available = list(dict.fromkeys(candidate.name for candidate in info.endpoints))
        raise EndpointNotFoundError(service, endpoint, available)

    async def request_endpoint(
        self,
        service: str,
        endpoint: str,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 1,
    ) -> Msg:
        """Resolve ``endpoint`` of ``service`` by name (:meth:`find_endpoint`), then request it.

        Raises what :meth:`find_endpoint` and :meth:`request` raise, and ``ValueError`` when
        the endpoint's subject has wildcards (request a concrete subject with :meth:`request`).
        """
        info = await self.find_endpoint(service, endpoint)
        if any(token in ("*", ">") for token in info.subject.split(".")):
            raise ValueError(
                f"endpoint {endpoint!r} of service {service!r} listens on the wildcard subject "
                f"{info.subject!r}: use request() with a concrete subject"
            )
        return await self.request(info.subject, data, headers, timeout)


class ServiceClient:
    """The discovery calls of :class:`Client`, narrowed to one service name."""

    def __init__(self, client: Client, service: str) -> None:
        control_subject(ServiceVerb.PING, service, api_prefix=client.api_prefix)  # validates
        self.client = client
        self.service = service

    def __repr__(self) -> str:
        return f"<ServiceClient {self.service!r}>"

    async def ping(
        self,
        max_wait: float | None = None,
        max_count: int | None = None,
        max_interval: float | None = None,
    ) -> list[PingInfo]:
        """PING every instance of the service (``[]`` if none)."""
        return await self.client.ping(self.service, max_wait, max_count, max_interval)

    async def info(
        self,
        max_wait: float | None = None,
        max_count: int | None = None,
        max_interval: float | None = None,
    ) -> list[ServiceInfo]:
        """INFO of every instance of the service (``[]`` if none)."""
        return await self.client.info(self.service, max_wait, max_count, max_interval)

    async def stats(
        self,
        max_wait: float | None = None,
        max_count: int | None = None,
        max_interval: float | None = None,
    ) -> list[ServiceStats]:
        """STATS of every instance of the service (``[]`` if none)."""
        return await self.client.stats(self.service, max_wait, max_count, max_interval)

    def ping_iter(
        self,
        max_wait: float | None = None,
        max_count: int | None = None,
        max_interval: float | None = None,
    ) -> Gathering[PingInfo]:
        return self.client.ping_iter(self.service, max_wait, max_count, max_interval)

    def info_iter(
        self,
        max_wait: float | None = None,
        max_count: int | None = None,
        max_interval: float | None = None,
    ) -> Gathering[ServiceInfo]:
        return self.client.info_iter(self.service, max_wait, max_count, max_interval)

    def stats_iter(
        self,
        max_wait: float | None = None,
        max_count: int | None = None,
        max_interval: float | None = None,
    ) -> Gathering[ServiceStats]:
        return self.client.stats_iter(self.service, max_wait, max_count, max_interval)

    def instance(self, id: str) -> InstanceClient:
        """A client for one instance of this service."""
        return InstanceClient(self.client, self.service, id)

    async def request_endpoint(
        self,
        endpoint: str,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 1,
    ) -> Msg:
        """:meth:`Client.request_endpoint` for this service."""
        return await self.client.request_endpoint(self.service, endpoint, data, headers, timeout)


class InstanceClient:
    """One instance of one service: single-document calls (``nats_contrib.micro``'s ``Instance``).

    ``ping``/``info``/``stats`` wait up to ``timeout`` seconds (default 2.0 s, or the
    client's ``default_max_wait``) and return as soon as the instance answered.  They raise
    :class:`~transports.base.NoRespondersError` when no such instance is subscribed and
    :class:`~transports.base.RequestTimeoutError` when no readable reply came in time.
    The ``*_iter`` forms yield at most one document and end empty instead of raising.
    """

    def __init__(self, client: Client, service: str, id: str) -> None:
        control_subject(ServiceVerb.PING, service, id, api_prefix=client.api_prefix)
        self.client = client
        self.service = service
        self.id = id

    def __repr__(self) -> str:
        return f"<InstanceClient {self.service!r} id={self.id!r}>"

    async def _one(self, verb: ServiceVerb, timeout: float | None) -> Any:
        gathering = self.client._gathering(verb, self.service, self.id, timeout, 1, None)
        found = await gathering.collect()
        if found:
            return found[0]
        if gathering.no_responders:
            raise NoRespondersError(gathering.subject)
        raise RequestTimeoutError(gathering.subject, gathering.limits.max_wait)

    async def ping(self, timeout: float | None = None) -> PingInfo:
        """PING the instance; raises ``NoRespondersError`` / ``RequestTimeoutError``."""
        result: PingInfo = await self._one(ServiceVerb.PING, timeout)
        return result

    async def info(self, timeout: float | None = None) -> ServiceInfo:
        """INFO of the instance; raises like :meth:`ping`."""
        result: ServiceInfo = await self._one(ServiceVerb.INFO, timeout)
        return result

    async def stats(self, timeout: float | None = None) -> ServiceStats:
        """STATS of the instance; raises like :meth:`ping`."""
        result: ServiceStats = await self._one(ServiceVerb.STATS, timeout)
        return result

    def ping_iter(self, max_wait: float | None = None) -> Gathering[PingInfo]:
        return self.client._gathering(ServiceVerb.PING, self.service, self.id, max_wait, 1, None)

    def info_iter(self, max_wait: float | None = None) -> Gathering[ServiceInfo]:
        return self.client._gathering(ServiceVerb.INFO, self.service, self.id, max_wait, 1, None)

    def stats_iter(self, max_wait: float | None = None) -> Gathering[ServiceStats]:
        return self.client._gathering(ServiceVerb.STATS, self.service, self.id, max_wait, 1, None)
