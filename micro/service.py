"""Services: ``add_service`` and :class:`Service` (ADR-32) over any Transport.

A service is created (validated, unstarted) by :func:`add_service`, started with
``await service.start()`` (or ``async with``) and stopped with ``await service.stop()``.
Everything it runs -- one receive loop per subscription -- lives in one task group held by
a :class:`~transports.runtime_tasks.TaskHost` of its :class:`~micro._lifecycle.Lifecycle`, so
``start()`` returns while the service serves, and ``stop()`` leaves nothing behind
(asyncio and trio alike).

The service stops by itself, firing ``done_handler`` once, when its connection closes, when
an asynchronous subscription error concerns one of its subjects (``error_handler`` is told
first) and when one of its subscriptions ends without being asked to
(``required subscription <subject> stopped``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from types import MappingProxyType, TracebackType
from typing import Any

from micro._lifecycle import Lifecycle, State
from micro._monitoring import Monitoring
from micro._support import as_transport, offers
from micro.control import DEFAULT_API_PREFIX, validate_api_prefix
from micro.endpoint import Endpoint
from micro.errors import ValidationError
from micro.group import DEFAULT_QUEUE_GROUP, Defaults, Level
from micro.ids import new_id
from micro.middleware import Middleware
from micro.models import ServiceInfo, ServiceStats
from micro.validation import (
    validate_metadata,
    validate_name,
    validate_service_name,
    validate_version,
)
from transports.base import Subscription, Transport

__all__ = ["DoneHandler", "ErrorHandler", "Service", "StatsHandler", "add_service"]

_log = logging.getLogger("micro.service")

StatsHandler = Callable[[Endpoint], object]
"""``stats_handler(endpoint) -> JSON value``: becomes that endpoint's STATS ``data``."""
ErrorHandler = Callable[["Service", BaseException], object]
"""``error_handler(service, error)``, sync or async: an asynchronous error concerned it."""
DoneHandler = Callable[["Service"], object]
"""``done_handler(service)``, sync or async: the service has stopped (called once)."""

_ROOT = Defaults(
    prefix="",
    queue_group=DEFAULT_QUEUE_GROUP,
    pending_msgs_limit=None,
    pending_bytes_limit=None,
    middlewares=(),
)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _adopt(candidate: object) -> Transport:
    """``as_transport(candidate)``, with the ``Transport`` protocol check remembered per
    class (``offers``): the check walks every member of the protocol, a good part of
    ``add_service`` on the memory transport."""
    if offers(candidate, Transport):
        return candidate
    return as_transport(candidate)


def add_service(
    nc: Transport | Any,
    name: str,
    version: str,
    description: str | None = None,
    metadata: Mapping[str, str] | None = None,
    queue_group: str | None = None,
    pending_bytes_limit_by_endpoint: int | None = None,
    pending_msgs_limit_by_endpoint: int | None = None,
    now: Callable[[], datetime] | None = None,
    id_generator: Callable[[], str] | None = None,
    api_prefix: str | None = None,
    *,
    disable_queue_group: bool = False,
    stats_handler: StatsHandler | None = None,
    error_handler: ErrorHandler | None = None,
    done_handler: DoneHandler | None = None,
    middlewares: Sequence[Middleware] = (),
    expose_exception_text: bool = False,
    clock: Callable[[], int] | None = None,
    discoverable: bool = True,
) -> Service:
    """Create (but do not start) a service; every value is validated at once.

    ``nc`` (named as in the ``nats_contrib.micro`` API) is the connection: a
    :class:`~transports.base.Transport`, or a nats-py ``Client`` (wrapped automatically).
    ``queue_group`` is the default queue group of its endpoints (``None`` or ``""``: ``q``);
    ``disable_queue_group`` makes them plain subscriptions.  Pending limits are defaults
    per endpoint (``None``: the transport's).  ``now`` gives the aware UTC time for
    ``started``; ``clock`` the monotonic nanoseconds for processing times
    (default ``time.perf_counter_ns``); ``id_generator`` the instance id (default a NUID).
    ``middlewares`` wrap every endpoint (outermost).  ``expose_exception_text`` sends
    ``str(exc)`` instead of ``Internal Server Error`` when a handler raises.
    ``discoverable=False`` makes a service that does not register on ``$SRV``: it answers
    no PING/INFO/STATS (nothing discovers it), while its endpoints serve, count and answer
    errors as usual -- for endpoints that are a program's internal plumbing (``micro.App``
    listeners of an app without a service name are such endpoints).

    Raises :class:`~micro.errors.ValidationError` naming the bad value and the rule;
    ``TypeError`` for a transport or callback of the wrong kind.  Nothing is subscribed.
    """
    validate_service_name(name)
    validate_version(version)
    if description is not None and not isinstance(description, str):
        raise ValidationError(
            f"service description must be a str or None, got {type(description).__name__}"
        )
    metadata_copy = validate_metadata(metadata, "service metadata")
    defaults = _ROOT.child(
        name="",
        queue_group=queue_group,
        disable_queue_group=disable_queue_group,
        pending_msgs_limit=pending_msgs_limit_by_endpoint,
        pending_bytes_limit=pending_bytes_limit_by_endpoint,
        middlewares=middlewares,
        what="service",
    )
    prefix = validate_api_prefix(DEFAULT_API_PREFIX if api_prefix is None else api_prefix)
    for label, callback in (
        ("now", now),
        ("id_generator", id_generator),
        ("stats_handler", stats_handler),
        ("error_handler", error_handler),
        ("done_handler", done_handler),
        ("clock", clock),
    ):
        if callback is not None and not callable(callback):
            raise TypeError(f"{label} must be callable, got {type(callback).__name__}")
    instance_id = validate_name((id_generator or new_id)(), "service id (from id_generator)")
    return Service(
        _adopt(nc),
        name=name,
        version=version,
        description=description or "",
        metadata=metadata_copy,
        instance_id=instance_id,
        api_prefix=prefix,
        defaults=defaults,
        now=now or _utc_now,
        clock=clock or time.perf_counter_ns,
        stats_handler=stats_handler,
        error_handler=error_handler,
        done_handler=done_handler,
        expose_exception_text=bool(expose_exception_text),
        discoverable=bool(discoverable),
    )


class Service(Level):
    """A running (or startable) service instance; create it with :func:`add_service`.

    Life cycle: created -> ``await start()`` -> serving -> ``await stop()`` -> stopped.
    ``async with service:`` starts and stops it.  A stopped service cannot be restarted.

    It is the root :class:`~micro.group.Level` of its subjects: ``add_group`` and
    ``add_endpoint`` are the ones a :class:`~micro.group.Group` has, with the service's
    defaults.  Its life cycle (state, tasks, subscriptions, endpoints) is a
    :class:`~micro._lifecycle.Lifecycle`, its ``$SRV`` side a
    :class:`~micro._monitoring.Monitoring`.
    """

    _life: Lifecycle

    def __init__(
        self,
        transport: Transport,
        *,
        name: str,
        version: str,
        description: str,
        metadata: dict[str, str],
        instance_id: str,
        api_prefix: str,
        defaults: Defaults,
        now: Callable[[], datetime],
        clock: Callable[[], int],
        stats_handler: StatsHandler | None,
        error_handler: ErrorHandler | None,
        done_handler: DoneHandler | None,
        expose_exception_text: bool,
        discoverable: bool = True,
    ) -> None:
        self._name = name
        self._version = version
        self._description = description
        self._metadata = MappingProxyType(metadata)
        self._id = instance_id
        self._api_prefix = api_prefix
        self._defaults = defaults
        self._now = now
        self._discoverable = discoverable
        self._started = now()
        self._life = Lifecycle(
            self,
            transport,
            name=name,
            label=f"micro service {name} {instance_id}",
            clock=clock,
            expose_exception_text=expose_exception_text,
            error_handler=error_handler,
            done_handler=done_handler,
            identity=(name, version, instance_id),
        )
        self._monitoring = Monitoring(
            self, transport, stats_handler=stats_handler, report_error=self._life.report_error
        )

    def __repr__(self) -> str:
        return f"<Service {self._name} {self._version} id={self._id} {self._life.state.value}>"

    # ------------------------------------------------------------------ identity

    @property
    def id(self) -> str:
        """The instance id (constant, a valid subject token)."""
        return self._id

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        return self._version

    @property
    def description(self) -> str:
        """The description (``""`` when none was given)."""
        return self._description

    @property
    def metadata(self) -> Mapping[str, str]:
        """The service metadata: a read-only mapping (ADR-32, Design: immutable once set)."""
        return self._metadata

    @property
    def api_prefix(self) -> str:
        return self._api_prefix

    @property
    def queue_group(self) -> str | None:
        """The default queue group of its endpoints (``None``: queue groups disabled)."""
        return self._defaults.queue_group

    @property
    def transport(self) -> Transport:
        return self._life.transport

    @property
    def discoverable(self) -> bool:
        """False for a service that does not register on ``$SRV`` (see ``add_service``)."""
        return self._discoverable

    @property
    def started(self) -> datetime:
        """When the service started (or was last reset)."""
        return self._started

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """The endpoints, in registration order (empty after stop)."""
        return tuple(self._life.endpoints)

    def stopped(self) -> bool:
        """True once the service has stopped (after ``stop()`` or a fatal event).

        A method, as in the ``nats_contrib.micro`` API (``if service.stopped(): ...``)."""
        return self._life.state is State.STOPPED

    @property
    def stop_error(self) -> BaseException | None:
        """The error the service stopped with (``stop(error)`` or a fatal event), if any."""
        return self._life.error

    @property
    def _control(self) -> tuple[Subscription, ...]:
        """The live control subscriptions (empty before start and after stop).

        Not public API: the conformance suite (``testing.conformance``) ends one to check
        that the service then stops (``LifecycleCases``); there is no other handle on them."""
        return self._life.control

    # ------------------------------------------------------------------ documents

    def info(self) -> ServiceInfo:
        """The INFO document (ADR-32, INFO), built fresh."""
        return self._monitoring.info()

    def stats(self) -> ServiceStats:
        """The STATS document (ADR-32, STATS), built fresh.

        With a ``stats_handler``, its JSON value becomes each endpoint's ``data``; if it
        raises (or returns something JSON cannot encode), ``data`` is left out and the
        endpoint counts one error with the message as ``last_error``.
        """
        return self._monitoring.stats()

    def reset(self) -> None:
        """Zero every endpoint's counters and set ``started`` to now (ADR-32, ``reset()``)."""
        for endpoint in self._life.endpoints:
            endpoint.reset()
        self._started = self._now()

    # ------------------------------------------------------------------ endpoints

    async def remove_endpoint(self, endpoint: Endpoint | str) -> None:
        """Remove an endpoint (or the endpoint with that name) and drain it.

        It leaves INFO/STATS at once; requests it already received are still handled.
        Returns once its loop has ended -- except when called from inside one of this
        service's handlers, where the drain completes in the background.
        Raises ``ValueError`` for an unknown endpoint.
        """
        await self._life.remove(endpoint)

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        """Subscribe the nine control subjects and every endpoint, then serve.

        Returns once all subscriptions are live (each is served from the moment it is);
        ``started`` is then set.  Raises ``RuntimeError`` if already started,
        :class:`ServiceStoppedError` if stopped, and a transport error if a subscribe fails
        (the service is then stopped with it).
        """
        await self._life.start(self._monitoring.control_loops())
        self._started = self._now()

    async def stop(
        self, error: BaseException | None = None, *, grace_period: float | None = None
    ) -> None:
        """Stop serving (idempotent): drain every subscription, let in-flight requests finish.

        Every subscription drains (concurrently over NATS); then the service is marked
        stopped, its endpoints leave INFO/STATS and ``done_handler`` fires (once).  ``error``
        is kept as :attr:`stop_error` and returned by :meth:`wait_stopped`.  With
        ``grace_period``, handlers still running after that many seconds are cancelled; if
        the calling task is cancelled meanwhile, the service stops hard the same way before
        the cancellation propagates.  Called from inside one of this service's handlers or
        callbacks, it starts the stop and returns at once.
        """
        await self._life.stop(error, grace_period)

    async def wait_stopped(self) -> BaseException | None:
        """Wait until the service has stopped; returns :attr:`stop_error`."""
        return await self._life.wait_stopped()

    async def __aenter__(self) -> Service:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
