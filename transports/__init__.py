"""Transports: the message-level seam (``transports.base``) and its implementations.

``await transports.connect(url, **options)`` picks a transport by URL scheme:

* ``nats://``, ``tls://``, ``ws://``, ``wss://`` -> ``transports.nats.NatsTransport``
  (options are nats-py connect options; several servers may be given comma-separated);
* ``memory://`` -> the process-wide default ``MemoryBroker``; ``memory://name`` -> the
  broker registered under ``name`` (created on first use).

Third-party transports register a scheme through the entry-point group
``micro.transports``; the entry point names an async callable ``factory(url, **options)``
returning a connected :class:`~transports.base.Transport`.  :func:`register_scheme`
does the same at run time.  Swapping transports is a configuration change only.

This module imports neither nats-py nor the memory broker until a URL needs them.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import Any, cast
from urllib.parse import urlsplit

from transports.base import Transport
from transports.urls import redact_url

__all__ = ["ENTRY_POINT_GROUP", "TransportFactory", "connect", "known_schemes", "register_scheme"]

ENTRY_POINT_GROUP = "micro.transports"

TransportFactory = Callable[..., Awaitable[Transport]]
"""``async factory(url: str, **options) -> Transport``."""

_BUILTIN: dict[str, str] = {
    "nats": "transports.nats:connect_url",
    "tls": "transports.nats:connect_url",
    "ws": "transports.nats:connect_url",
    "wss": "transports.nats:connect_url",
    "memory": "transports.memory:connect_url",
}
_registered: dict[str, TransportFactory] = {}


def register_scheme(scheme: str, factory: TransportFactory) -> None:
    """Make ``connect()`` use ``factory`` for URLs with ``scheme`` (case-insensitive)."""
    if not scheme or not scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
        raise ValueError(f"invalid URL scheme {scheme!r}: use letters, digits, '+', '-' or '.'")
    _registered[scheme.lower()] = factory


def _entry_point_schemes() -> dict[str, Any]:
    from importlib.metadata import entry_points  # lazy: costs ~25 ms at import time

    return {ep.name.lower(): ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def known_schemes() -> list[str]:
    """Every scheme ``connect()`` understands: built-in, registered and entry points."""
    return sorted(set(_BUILTIN) | set(_registered) | set(_entry_point_schemes()))


def _load(target: str) -> TransportFactory:
    module_name, _, attribute = target.partition(":")
    return cast(TransportFactory, getattr(importlib.import_module(module_name), attribute))


def _factory_for(scheme: str) -> TransportFactory | None:
    if scheme in _registered:
        return _registered[scheme]
    if scheme in _BUILTIN:
        return _load(_BUILTIN[scheme])
    entry_point = _entry_point_schemes().get(scheme)
    if entry_point is not None:
        return cast(TransportFactory, entry_point.load())
    return None


async def connect(url: str, **options: Any) -> Transport:
    """Connect to ``url`` with the transport its scheme names.

    Raises ``ValueError`` naming the URL and listing the known schemes when the
    scheme is missing or unknown.  ``options`` go to the transport unchanged.
    """
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, got {type(url).__name__}")
    scheme = urlsplit(url.split(",")[0].strip()).scheme.lower()
    factory = _factory_for(scheme) if scheme else None
    if factory is None:
        raise ValueError(
            f"unknown transport URL {redact_url(url)!r}: the scheme must be one of "
            f"{', '.join(s + '://' for s in known_schemes())}"
        )
    return await factory(url, **options)
