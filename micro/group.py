"""Groups: a subject prefix plus defaults (queue group, pending limits, middlewares).

Groups exist only on the service side; on the wire there are only endpoints (ADR-32, Groups).
Subjects compose as ADR-32, Groups says: non-empty group names joined with ``.``, then the
endpoint subject (``""`` groups are skipped).  Queue groups resolve as ADR-32, Endpoints says (see
:func:`resolve_queue_group`).

A service is the root level of that tree and a group one below it: both are a
:class:`Level`, which adds groups and endpoints against its :class:`Defaults` once for
both.  A level reaches its service only through :class:`EndpointSite` (implemented by the
service's life cycle), so this module knows nothing of ``micro.service``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio

from micro.endpoint import Endpoint
from micro.errors import ValidationError
from micro.middleware import (
    EndpointScope,
    Middleware,
    bind_middlewares,
    check_middlewares,
    compose,
)
from micro.request import Handler, as_async_handler
from micro.validation import (
    validate_endpoint_name,
    validate_endpoint_subject,
    validate_group_prefix,
    validate_metadata,
    validate_pending_limits,
    validate_queue_group,
)
from transports.base import Transport

__all__ = [
    "DEFAULT_QUEUE_GROUP",
    "Defaults",
    "EndpointSite",
    "Group",
    "Level",
    "build_endpoint",
    "join_subject",
    "resolve_queue_group",
]

DEFAULT_QUEUE_GROUP = "q"
"""The queue group used when no level names one (all reference implementations)."""


def resolve_queue_group(
    queue_group: str | None, disabled: bool, parent: str | None, what: str
) -> str | None:
    """Resolve one level's queue group from its own setting and its parent's resolved one.

    ``parent`` is the parent's effective queue group (``None`` = disabled).  Rules
    (ADR-32, Groups and Endpoints): own ``disabled`` -> ``None``; own non-empty name -> that name;
    otherwise (``None`` or ``""`` = inherit) -> ``parent``.  A name together with
    ``disabled=True`` is contradictory and raises :class:`ValidationError`, as does an
    invalid name (whitespace, ``*``, ``>``).  ``what`` names the level in messages.
    """
    if not isinstance(disabled, bool):
        raise ValidationError(
            f"{what} disable_queue_group must be a bool, got {type(disabled).__name__}"
        )
    if queue_group is not None and not isinstance(queue_group, str):
        raise ValidationError(
            f"{what} queue group must be a str or None, got {type(queue_group).__name__}"
        )
    if queue_group:
        validate_queue_group(queue_group)
        if disabled:
            raise ValidationError(
                f"{what}: queue group {queue_group!r} and disable_queue_group=True "
                "contradict each other; pass only one"
            )
        return queue_group
    if disabled:
        return None
    return parent


def join_subject(prefix: str, subject: str) -> str:
    """``prefix.subject``, or ``subject`` alone when the prefix is empty."""
    return f"{prefix}.{subject}" if prefix else subject


@dataclass(frozen=True, slots=True)
class Defaults:
    """What a service or group hands down to the groups and endpoints created through it."""

    prefix: str
    queue_group: str | None
    pending_msgs_limit: int | None
    pending_bytes_limit: int | None
    middlewares: tuple[Middleware, ...]

    def child(
        self,
        *,
        name: str,
        queue_group: str | None,
        disable_queue_group: bool,
        pending_msgs_limit: int | None,
        pending_bytes_limit: int | None,
        middlewares: Sequence[Middleware] | None,
        what: str,
    ) -> Defaults:
        """The defaults of a child level (group ``name``; ``""`` adds no prefix), validated.

        Raises :class:`ValidationError` for a bad queue group or limit, ``TypeError`` for a
        middleware that is not callable.
        """
        msgs, nbytes = validate_pending_limits(pending_msgs_limit, pending_bytes_limit)
        return Defaults(
            prefix=join_subject(self.prefix, name) if name else self.prefix,
            queue_group=resolve_queue_group(
                queue_group, disable_queue_group, self.queue_group, what
            ),
            pending_msgs_limit=msgs if msgs is not None else self.pending_msgs_limit,
            pending_bytes_limit=nbytes if nbytes is not None else self.pending_bytes_limit,
            middlewares=self.middlewares + check_middlewares(middlewares, what),
        )


class EndpointSite(Protocol):
    """What a level needs of its service to add an endpoint (implemented by
    :class:`micro._lifecycle.Lifecycle`): the settings every endpoint of the service shares,
    and the two steps around building one."""

    @property
    def transport(self) -> Transport:
        """The connection the endpoints subscribe and reply on."""
        ...

    @property
    def service_name(self) -> str:
        """The service's name (endpoints name it in their log records)."""

    @property
    def identity(self) -> tuple[str, str, str]:
        """The service's name, version and instance id (for :class:`EndpointScope`)."""
        ...

    @property
    def clock(self) -> Callable[[], int]:
        """Monotonic nanoseconds, for the endpoints' processing times."""
        ...

    @property
    def expose_exception_text(self) -> bool:
        """Whether an escaped exception's text is sent instead of ``Internal Server Error``."""
        ...

    def check_open(self) -> None:
        """Raise :class:`~micro.errors.ServiceStoppedError` once the service is stopping
        or stopped."""
        ...

    async def attach(self, endpoint: Endpoint) -> None:
        """Make ``endpoint`` one of the service's endpoints: served from ``start()`` on
        when the service has not started, else subscribed (live) before this returns.

        Raises :class:`~micro.errors.ValidationError` when the service already has an
        endpoint of that name, :class:`~micro.errors.ServiceStoppedError` once the service
        is stopping or stopped, and transport errors from subscribing."""
        ...


def build_endpoint(
    site: EndpointSite,
    parent: Defaults,
    name: str,
    handler: Handler,
    *,
    subject: str | None,
    queue_group: str | None,
    metadata: Mapping[str, str] | None,
    pending_bytes_limit: int | None,
    pending_msgs_limit: int | None,
    middlewares: Sequence[Middleware] | None,
    disable_queue_group: bool,
    max_concurrency: int,
    concurrency_pool: anyio.Semaphore | None = None,
) -> Endpoint:
    """Validate an endpoint's configuration against its parent's defaults and build it.

    Subject: ``<parent prefix>.<subject or name>``; queue group, pending limits and
    middlewares as :meth:`Defaults.child`.  A handler that is not a coroutine function
    runs in a worker thread (:func:`~micro.request.as_async_handler`, the App's rule for
    plain ``def`` listeners).  Raises :class:`ValidationError` naming the bad value and the
    rule, ``TypeError`` for a handler or middleware that is not callable.
    """
    validate_endpoint_name(name)
    what = f"endpoint {name!r}"
    if not callable(handler):
        raise TypeError(f"{what} handler must be callable, got {handler!r}")
    if subject is not None and not isinstance(subject, str):
        raise ValidationError(f"{what} subject must be a str or None, got {type(subject).__name__}")
    full_subject = validate_endpoint_subject(join_subject(parent.prefix, subject or name))
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
        raise ValidationError(
            f"{what} max_concurrency must be an int >= 1, got {max_concurrency!r}"
        )
    if max_concurrency < 1:
        raise ValidationError(f"invalid {what} max_concurrency {max_concurrency!r}: must be >= 1")
    if concurrency_pool is not None and not isinstance(concurrency_pool, anyio.Semaphore):
        raise TypeError(
            f"{what} concurrency_pool must be an anyio.Semaphore shared by the endpoints it "
            f"bounds, got {concurrency_pool!r}"
        )
    copied = None if metadata is None else validate_metadata(metadata, f"{what} metadata")
    own = parent.child(
        name="",
        queue_group=queue_group,
        disable_queue_group=disable_queue_group,
        pending_msgs_limit=pending_msgs_limit,
        pending_bytes_limit=pending_bytes_limit,
        middlewares=middlewares,
        what=what,
    )
    service, version, service_id = site.identity
    scope = EndpointScope(service, version, service_id, name, full_subject, own.queue_group)
    return Endpoint(
        site.transport,
        name=name,
        subject=full_subject,
        queue_group=own.queue_group,
        metadata=copied,
        handler=handler,
        chain=compose(as_async_handler(handler), bind_middlewares(own.middlewares, scope)),
        pending_msgs_limit=own.pending_msgs_limit,
        pending_bytes_limit=own.pending_bytes_limit,
        max_concurrency=max_concurrency,
        clock=site.clock,
        expose_exception_text=site.expose_exception_text,
        service=site.service_name,
        concurrency_pool=concurrency_pool,
    )


class Level:
    """A level of a service's subject tree -- the service itself or a :class:`Group` --
    adding groups and endpoints below it with its defaults (written once for both).

    A subclass sets ``_life`` (its service's life cycle, seen as an :class:`EndpointSite`)
    and ``_defaults``.
    """

    __slots__ = ()

    _life: EndpointSite
    _defaults: Defaults

    def add_group(
        self,
        name: str,
        queue_group: str | None = None,
        pending_bytes_limit_by_endpoint: int | None = None,
        pending_msgs_limit_by_endpoint: int | None = None,
        *,
        disable_queue_group: bool = False,
        middlewares: Sequence[Middleware] = (),
    ) -> Group:
        """A group below this level: prefix ``<this prefix>.<name>`` (``""``: no prefix of
        its own), with endpoint defaults inherited from this level.

        Queue group: own name, else inherited (``disable_queue_group`` turns it off).
        Raises :class:`ValidationError` for a bad name (``>`` anywhere, empty tokens,
        whitespace), queue group or limits; nothing is subscribed.
        """
        validate_group_prefix(name)
        defaults = self._defaults.child(
            name=name,
            queue_group=queue_group,
            disable_queue_group=disable_queue_group,
            pending_msgs_limit=pending_msgs_limit_by_endpoint,
            pending_bytes_limit=pending_bytes_limit_by_endpoint,
            middlewares=middlewares,
            what=f"group {name!r}",
        )
        return Group(self._life, name, defaults)

    async def add_endpoint(
        self,
        name: str,
        handler: Handler,
        subject: str | None = None,
        queue_group: str | None = None,
        metadata: Mapping[str, str] | None = None,
        pending_bytes_limit: int | None = None,
        pending_msgs_limit: int | None = None,
        middlewares: Sequence[Middleware] | None = None,
        *,
        disable_queue_group: bool = False,
        max_concurrency: int = 1,
        concurrency_pool: anyio.Semaphore | None = None,
    ) -> Endpoint:
        """Add an endpoint serving ``<prefix>.<subject or name>`` with ``handler``.

        Before start, it is subscribed by ``start()``; after start, it is subscribed (live)
        before this returns and appears in INFO/STATS.  ``queue_group`` ``None``/``""``
        inherits; ``disable_queue_group`` makes a plain subscription.  ``max_concurrency``
        bounds concurrent requests (default 1: one at a time).  ``handler`` is best an
        ``async def``; a plain ``def`` runs in a worker thread (see
        :data:`~micro.request.Handler`).  Endpoint names are unique within a service.
        ``concurrency_pool``, a semaphore shared by several endpoints, bounds them together
        as well (a request waits for one of its slots before it is handled).

        The handler answers each request exactly once: a second response raises
        :class:`~micro.request.AlreadyRespondedError`, and returning without responding to
        a request that has a reply subject is logged as a warning and counted as an
        endpoint error (:class:`~micro.request.UnansweredRequestError`).

        Raises :class:`ValidationError` (bad name, subject, queue group, metadata, limits,
        a name already used by an endpoint of the service),
        :class:`~micro.errors.ServiceStoppedError` once the service is stopping or stopped,
        and transport errors from subscribing.
        """
        site = self._life
        site.check_open()
        endpoint = build_endpoint(
            site,
            self._defaults,
            name,
            handler,
            subject=subject,
            queue_group=queue_group,
            metadata=metadata,
            pending_bytes_limit=pending_bytes_limit,
            pending_msgs_limit=pending_msgs_limit,
            middlewares=middlewares,
            disable_queue_group=disable_queue_group,
            max_concurrency=max_concurrency,
            concurrency_pool=concurrency_pool,
        )
        await site.attach(endpoint)
        return endpoint


class Group(Level):
    """A subject prefix with defaults for the endpoints and groups created through it.

    Created by :meth:`Service.add_group <micro.service.Service.add_group>` or
    :meth:`Group.add_group`; never appears on the wire.
    """

    __slots__ = ("_defaults", "_life", "_name")

    def __init__(self, life: EndpointSite, name: str, defaults: Defaults) -> None:
        self._life = life
        self._name = name
        self._defaults = defaults

    @property
    def name(self) -> str:
        """The group's own name (``""`` = no prefix of its own)."""
        return self._name

    @property
    def prefix(self) -> str:
        """The full subject prefix (parent groups included; ``""`` when none)."""
        return self._defaults.prefix

    @property
    def queue_group(self) -> str | None:
        """The effective default queue group of its endpoints (``None`` = disabled)."""
        return self._defaults.queue_group
