"""Small helpers of the service layer: transport adoption, quiet (un)subscribe, callbacks."""

from __future__ import annotations

import inspect
import logging
import weakref
from collections.abc import Callable
from typing import Any, TypeGuard, TypeVar, cast

from transports._protocols import implements
from transports.base import Subscription, Transport
from transports.subjects import matches

__all__ = [
    "as_transport",
    "call_callback",
    "drain_quietly",
    "error_subject_matches",
    "offers",
    "unsubscribe_quietly",
]

_log = logging.getLogger("micro.service")

# One NatsTransport per adopted nats-py client, so that services sharing a client share it.
_adopted: weakref.WeakKeyDictionary[Any, Transport] = weakref.WeakKeyDictionary()


def _is_nats_client(candidate: object) -> bool:
    cls = type(candidate)
    return cls.__module__.startswith("nats.") and hasattr(candidate, "subscribe")


def as_transport(candidate: object) -> Transport:
    """Return ``candidate`` as a :class:`Transport`.

    A nats-py ``nats.aio.client.Client`` is wrapped in ``transports.nats.NatsTransport``
    (imported only then; one wrapper per client).  Anything else must implement the
    ``Transport`` protocol, otherwise ``TypeError`` names what was passed.
    """
    if _is_nats_client(candidate):
        adopted = _adopted.get(candidate)
        if adopted is None:
            from transports.nats import NatsTransport

            adopted = NatsTransport(candidate)  # type: ignore[arg-type]
            _adopted[candidate] = adopted
        return adopted
    if not implements(candidate, Transport):
        raise TypeError(
            "transport must be a transports.base.Transport (e.g. from transports.connect(url)) "
            f"or a nats-py Client, got {type(candidate).__module__}.{type(candidate).__name__}"
        )
    return candidate


_Extension = TypeVar("_Extension")

# (class, protocol) -> does the class satisfy the protocol; see ``offers``
_OFFERS: dict[tuple[type, type], bool] = {}


def offers(transport: object, extension: Callable[..., _Extension]) -> TypeGuard[_Extension]:
    """``implements(transport, extension)`` for a transport protocol (``Transport`` or an
    optional extension, ``transports.extensions``), remembered per class: the check
    walks every member of the protocol on each call, which costs more than a
    memory-transport subscribe.  (A class whose instances differ in those members would be
    misjudged; none of ours does.)  ``extension`` is typed as a callable only because
    mypy accepts no protocol class where ``type[T]`` is expected."""
    protocol = cast(type, extension)
    key = (type(transport), protocol)
    known = _OFFERS.get(key)
    if known is None:
        known = _OFFERS[key] = implements(transport, protocol)
    return known


def error_subject_matches(pattern: str, error_subject: str) -> bool:
    """Does an asynchronous error reported for ``error_subject`` concern ``pattern``?

    Token-wise, as nats.go's ``matchEndpointSubject``: ``*`` in ``pattern`` matches any
    one token and ``>`` one or more trailing tokens; everything else literally.  The error
    subject may itself be a pattern (``foo.*`` concerns the endpoint ``foo.*``).
    """
    return matches(pattern, error_subject)


async def unsubscribe_quietly(subscription: Subscription) -> None:
    """Unsubscribe, logging (not raising) a failure such as a closed connection."""
    try:
        await subscription.unsubscribe()
    except Exception as exc:
        _log.debug("unsubscribe from %r failed: %s", subscription.subject, exc)


async def drain_quietly(subscription: Subscription) -> None:
    """Drain, logging (not raising) a failure; the subscription ends either way."""
    try:
        await subscription.drain()
    except Exception as exc:
        _log.debug("drain of %r failed: %s; unsubscribing", subscription.subject, exc)
        await unsubscribe_quietly(subscription)


async def call_callback(what: str, callback: Callable[..., object] | None, *args: Any) -> None:
    """Call a user notification callback (sync or async); log, never raise, its errors."""
    if callback is None:
        return
    try:
        result = callback(*args)
        if inspect.isawaitable(result):
            await result
    except Exception:
        _log.exception("the %s raised; ignored", what)
