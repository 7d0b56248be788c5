"""How :meth:`micro.context.Context.connect` reads its ``*options``.

An option is one of:

* a URL (``"nats://host:4222"``, ``"memory://"``; several URLs are joined with ``,``);
* a mapping of transport options (for ``nats://``: nats-py's ``connect`` keywords);
* a callable that sets attributes on an options record -- ``nats_contrib.micro``'s
  ``ConnectOption`` objects (``nats_contrib.connect_opts.option.WithServer(url)``, ...) are
  such callables.  They write to a :class:`ConnectSettings` bag here, so nats-py is not
  imported; only what they set is passed on.

Of what the options set, ``servers`` chooses the URL (when no URL string was given) and
the four connection callbacks (``error_cb``, ``disconnected_cb``, ``closed_cb``,
``reconnected_cb``) are taken out to be driven by the transport's events; everything else
goes to the transport as keywords.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from transports.base import TransportEventKind
from transports.urls import redact_url

__all__ = [
    "CALLBACK_OPTIONS",
    "DEFAULT_SERVER_URL",
    "ConnectOption",
    "ConnectSettings",
    "ResolvedOptions",
    "is_raw_nats_client",
    "resolve_options",
]

DEFAULT_SERVER_URL = "nats://localhost:4222"
"""URL used when no option names a server and ``$NATS_URL`` is not set (as
``nats_contrib.micro`` and nats-py)."""

ConnectOption: TypeAlias = str | Mapping[str, Any] | Callable[[Any], object]
"""A URL, a mapping of transport options, or a callable setting attributes on an options
record (``nats_contrib.micro``'s ``ConnectOption`` objects are such callables)."""

CALLBACK_OPTIONS = {
    "error_cb": TransportEventKind.ERROR,
    "disconnected_cb": TransportEventKind.DISCONNECTED,
    "closed_cb": TransportEventKind.CLOSED,
    "reconnected_cb": TransportEventKind.RECONNECTED,
}
"""Option names of the connection callbacks, and the transport event each one follows."""


class ConnectSettings:
    """The options record connect-option callables write to: a bag of set attributes.

    Only attributes an option actually set are passed on (so the transport's own defaults
    apply to the rest).  Reading an attribute nobody set raises ``AttributeError`` naming it.
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_values", {})

    def __setattr__(self, name: str, value: Any) -> None:
        self._values[name] = value

    def __getattr__(self, name: str) -> Any:
        values: dict[str, Any] = object.__getattribute__(self, "_values")
        try:
            return values[name]
        except KeyError:
            raise AttributeError(f"connect option {name!r} has not been set") from None

    def to_dict(self) -> dict[str, Any]:
        """A copy of every attribute set so far."""
        return dict(self._values)


@dataclass
class ResolvedOptions:
    """What a tuple of options amounts to."""

    urls: list[str] = field(default_factory=list)
    """URL strings, in order."""
    servers: Any = None
    """The ``servers`` value an option set (a URL or a list of URLs), if any."""
    transport_options: dict[str, Any] = field(default_factory=dict)
    """Keywords for the transport (callbacks and ``servers`` removed)."""
    callbacks: dict[TransportEventKind, list[Callable[..., object]]] = field(default_factory=dict)
    """The connection callbacks the options set, by the event they follow."""

    @property
    def names_a_server(self) -> bool:
        return bool(self.urls) or self.servers is not None

    def url(self) -> str:
        """The URL to connect to: the URL options, else ``servers``, else ``$NATS_URL``,
        else :data:`DEFAULT_SERVER_URL`.  Raises ``ValueError`` for a bad ``servers``."""
        if self.urls:
            return ",".join(self.urls)
        if self.servers is not None:
            return _servers_url(self.servers)
        return os.environ.get("NATS_URL") or DEFAULT_SERVER_URL


def _servers_url(servers: object) -> str:
    if isinstance(servers, str) and servers:
        return servers
    if (
        isinstance(servers, (list, tuple))
        and servers
        and all(isinstance(s, str) and s for s in servers)
    ):
        return ",".join(servers)
    shown: object = servers
    if isinstance(servers, (list, tuple)):
        shown = [redact_url(s) if isinstance(s, str) else s for s in servers]
    raise ValueError(f"invalid servers option {shown!r}: must be a URL or a list of URLs")


def resolve_options(options: Sequence[ConnectOption]) -> ResolvedOptions:
    """Apply ``options`` in order (later ones win); see the module docstring.

    Raises ``TypeError`` naming an option that is neither a str, a mapping nor a callable,
    and whatever a callable option raises.
    """
    resolved = ResolvedOptions()
    settings = ConnectSettings()
    extra: dict[str, Any] = {}
    for option in options:
        if isinstance(option, str):
            resolved.urls.append(option)
        elif isinstance(option, Mapping):
            extra.update(option)
        elif callable(option):
            option(settings)
        else:
            raise TypeError(
                f"invalid connect option {option!r}: expected a URL str, a mapping of "
                "transport options or a callable connect option"
            )
    kwargs = {**settings.to_dict(), **extra}
    for key, kind in CALLBACK_OPTIONS.items():
        callback = kwargs.pop(key, None)
        if callback is not None:
            resolved.callbacks.setdefault(kind, []).append(callback)
    resolved.servers = kwargs.pop("servers", None)
    resolved.transport_options = kwargs
    return resolved


def is_raw_nats_client(candidate: object) -> bool:
    """Is ``candidate`` a nats-py client (checked by module name; nats-py is not imported)?"""
    return type(candidate).__module__.startswith("nats.") and hasattr(candidate, "connect")
