"""Groups: a subject prefix plus defaults (queue group, pending limits, middlewares).

Groups exist only on the service side; on the wire there are only endpoints (PROTOCOL §1).
Subjects compose as PROTOCOL §5.1: non-empty group names joined with ``.``, then the
endpoint subject (``""`` groups are skipped).  Queue groups resolve as PROTOCOL §5.2 (see
:func:`resolve_queue_group`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from micro.errors import ValidationError
from micro.middleware import Middleware, check_middlewares
from micro.request import Handler
from micro.validation import validate_group_prefix, validate_pending_limits, validate_queue_group

if TYPE_CHECKING:
    from micro.endpoint import Endpoint
    from micro.service import Service

__all__ = ["DEFAULT_QUEUE_GROUP", "Defaults", "Group", "join_subject", "resolve_queue_group"]

DEFAULT_QUEUE_GROUP = "q"
"""The queue group used when no level names one (all reference implementations)."""


def resolve_queue_group(
    queue_group: str | None, disabled: bool, parent: str | None, what: str
) -> str | None:
    """Resolve one level's queue group from its own setting and its parent's resolved one.

    ``parent`` is the parent's effective queue group (``None`` = disabled).  Rules
    (PROTOCOL §5.2): own ``disabled`` -> ``None``; own non-empty name -> that name;
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


class Group:
    """A subject prefix with defaults for the endpoints and groups created through it.

    Created by :meth:`Service.add_group <micro.service.Service.add_group>` or
    :meth:`Group.add_group`; never appears on the wire.
    """

    __slots__ = ("_defaults", "_name", "_service")

    def __init__(self, service: Service, name: str, defaults: Defaults) -> None:
        self._service = service
        self._name = name
        self._defaults = defaults

    @classmethod
    def _child_of(
        cls,
        service: Service,
        parent: Defaults,
        name: str,
        queue_group: str | None,
        pending_bytes_limit_by_endpoint: int | None,
        pending_msgs_limit_by_endpoint: int | None,
        disable_queue_group: bool,
        middlewares: Sequence[Middleware] | None,
    ) -> Group:
        """Validate everything, then build the group (nothing is subscribed)."""
        validate_group_prefix(name)
        defaults = parent.child(
            name=name,
            queue_group=queue_group,
            disable_queue_group=disable_queue_group,
            pending_msgs_limit=pending_msgs_limit_by_endpoint,
            pending_bytes_limit=pending_bytes_limit_by_endpoint,
            middlewares=middlewares,
            what=f"group {name!r}",
        )
        return cls(service, name, defaults)

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
        """A nested group: prefix ``<this prefix>.<name>``; defaults inherited from this group.

        Raises :class:`ValidationError` for a bad name (``>`` anywhere, empty tokens,
        whitespace), queue group or limits.
        """
        return Group._child_of(
            self._service,
            self._defaults,
            name,
            queue_group,
            pending_bytes_limit_by_endpoint,
            pending_msgs_limit_by_endpoint,
            disable_queue_group,
            middlewares,
        )

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
    ) -> Endpoint:
        """Add an endpoint on ``<prefix>.<subject or name>``; see ``Service.add_endpoint``."""
        return await self._service._add_endpoint(
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
        )
