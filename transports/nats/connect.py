"""Connecting ``NatsTransport``: its options, its server list, and when a first connect fails.

nats-py alone retries a first connect as it reconnects (``max_reconnect_attempts`` per
server, ``reconnect_time_wait`` apart: two minutes with its defaults) and treats rejected
credentials or a failed TLS handshake like any dropped connection.  Here a first connect
tries each server once and fails, unless ``retry_on_failed_connect=True`` (our option, named
after nats.go's and nats.c's: the first connect then retries with the reconnect options).
:class:`ConnectAttempt` decides when to stop nats-py (our ``error_cb`` raises
:class:`ConnectAborted`), and :func:`connect_client` turns the failure into one
:class:`ConnectFailedError` naming the servers (credentials redacted) and the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import ssl
from collections.abc import Callable, Sequence
from typing import Any

from nats.aio.client import Client

from transports.base import AuthorizationError, ConnectFailedError, TransportError
from transports.nats.errors import map_nats_error
from transports.urls import redact_url, redact_urls

__all__ = [
    "CALLBACKS",
    "CONNECT_OPTIONS",
    "RETRY_OPTION",
    "ConnectAborted",
    "ConnectAttempt",
    "connect_client",
    "connect_error",
    "is_permanent_connect_error",
    "pop_callbacks",
    "server_list",
]

CALLBACKS = ("error_cb", "disconnected_cb", "reconnected_cb", "closed_cb")
"""nats-py's callback options: ``NatsTransport`` puts its own first and calls the user's after."""
CONNECT_OPTIONS = frozenset(inspect.signature(Client.connect).parameters) - {"self", "servers"}
RETRY_OPTION = "retry_on_failed_connect"
"""Our connect option (not nats-py's): ``True`` makes a first connect that fails retry as a
reconnect would; ``False`` (the default) tries each server once."""
_CLEANUP_LIMIT = 0.5
"""Seconds a failed connect may spend freeing its socket (nats-py's close can hang after a
failed TLS handshake: the stream's close waiter is never told)."""


class ConnectAborted(Exception):
    """Raised from our ``error_cb`` to stop nats-py retrying a connect that must fail."""


def server_list(servers: str | Sequence[str]) -> list[str]:
    """``servers`` (one URL, a comma-separated string or a list) as a list of URLs.

    Raises ``ValueError`` when it is empty or holds anything but non-blank strings."""
    items = servers.split(",") if isinstance(servers, str) else list(servers)
    result = [item.strip() for item in items if isinstance(item, str) and item.strip()]
    if not result or len(result) != len(items):
        shown = (
            redact_url(servers)
            if isinstance(servers, str)
            else [redact_url(s) if isinstance(s, str) else s for s in servers]
        )
        raise ValueError(f"servers must be URLs (a list or comma-separated), got {shown!r}")
    return result


def pop_callbacks(options: dict[str, Any]) -> dict[str, Callable[..., Any] | None]:
    """Check connect ``options`` against nats-py's (:data:`CONNECT_OPTIONS`); remove and
    return the :data:`CALLBACKS` among them (``None`` when absent).  Raises ``TypeError``
    for an unknown option or a callback that is not an ``async def``."""
    unknown = sorted(set(options) - CONNECT_OPTIONS)
    if unknown:
        raise TypeError(
            f"unknown nats-py connect option(s) {unknown}; "
            f"known: {sorted(CONNECT_OPTIONS | {RETRY_OPTION})}"
        )
    callbacks: dict[str, Callable[..., Any] | None] = {}
    for name in CALLBACKS:
        callback = options.pop(name, None)
        if callback is not None and not inspect.iscoroutinefunction(callback):
            raise TypeError(f"{name} must be an async function, got {callback!r}")
        callbacks[name] = callback
    return callbacks


def is_permanent_connect_error(exc: BaseException) -> bool:
    """True for a connect failure that retrying cannot cure: the server rejected the
    credentials, or the TLS handshake failed (certificate not trusted, no client
    certificate, protocol mismatch).  A dropped connection or a refused port is not."""
    if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return False
    if isinstance(exc, ssl.SSLError):
        return True
    return isinstance(map_nats_error(exc), AuthorizationError)


def connect_error(
    exc: BaseException, error: TransportError, *, tls: bool
) -> tuple[TransportError, bool]:
    """What one failed attempt of a first connect means: ``(error, permanent)``.

    ``error`` is ``exc`` mapped (``map_nats_error``).  With ``tls`` (every server is
    reached over TLS), a reset or a broken pipe is the TLS handshake failing: with TLS 1.3 the
    client finishes its side of the handshake before the server checks the client
    certificate, and the server's alert refusing it races its close of the socket."""
    if tls and isinstance(exc, (ConnectionResetError, BrokenPipeError)):
        hint = "no client certificate, or one it does not trust?"
        tls_error = ConnectFailedError(f"TLS error: the server ended the handshake ({hint}): {exc}")
        return tls_error, True
    return error, is_permanent_connect_error(exc)


class ConnectAttempt:
    """The bookkeeping of one ``NatsTransport.connect()``: when to stop nats-py retrying.

    ``servers`` is how many servers the attempt may try; ``budget`` how many failed
    connections are allowed in all (``None``: nats-py's reconnect options decide).  The
    attempt is given up once every server failed for good (rejected credentials, a failed
    TLS handshake: retrying cannot help) or the budget is spent.
    """

    __slots__ = ("abort_reason", "budget", "errors", "permanent_failures", "servers", "tls")

    def __init__(self, servers: int, budget: int | None, *, tls: bool = False) -> None:
        self.servers = servers
        self.budget = budget
        self.tls = tls  # every server is reached over TLS
        self.errors: list[TransportError] = []
        self.permanent_failures = 0
        self.abort_reason: TransportError | None = None

    @classmethod
    def for_options(
        cls, urls: Sequence[str], options: dict[str, Any], *, retry: bool = False
    ) -> ConnectAttempt:
        """The attempt ``options`` (nats-py's) and ``retry`` (``retry_on_failed_connect``)
        ask for: each of ``urls`` is tried once, unless ``retry`` is true and nats-py's
        options allow reconnecting (``allow_reconnect``, ``max_reconnect_attempts`` not 0):
        then nats-py's ``max_reconnect_attempts`` and ``reconnect_time_wait`` decide."""
        fail_fast = (
            not retry
            or not options.get("allow_reconnect", True)
            or options.get("max_reconnect_attempts") == 0
        )
        tls = options.get("tls") is not None or all(u.startswith("tls://") for u in urls)
        return cls(len(urls), len(urls) if fail_fast else None, tls=tls)

    def record(self, error: TransportError, exc: BaseException) -> None:
        """Note one failed connection (``exc`` nats-py's report, mapped to ``error``); raises
        :class:`ConnectAborted` to give up, else lets nats-py go on.  After giving up, later
        errors (from the cleanup) are ignored."""
        if self.abort_reason is not None:
            return
        error, permanent = connect_error(exc, error, tls=self.tls)
        self.errors.append(error)
        if permanent:
            self.permanent_failures += 1
        if self.permanent_failures >= self.servers or (
            self.budget is not None and len(self.errors) >= self.budget
        ):
            self.abort_reason = error
            raise ConnectAborted(str(error))

    def failure(self, fallback: TransportError, urls: Sequence[str]) -> ConnectFailedError:
        """The error to raise: why the attempt failed (the reason it was given up for, else
        the last error, else ``fallback``), as a :class:`ConnectFailedError` naming ``urls``
        (redacted: no password or token is shown)."""
        reason = self.abort_reason or (self.errors[-1] if self.errors else fallback)
        error_class = type(reason) if isinstance(reason, ConnectFailedError) else ConnectFailedError
        return error_class(f"cannot connect to {', '.join(redact_urls(urls))}: {reason}")


async def connect_client(
    nc: Client, urls: list[str], options: dict[str, Any], attempt: ConnectAttempt
) -> None:
    """Connect ``nc`` to ``urls`` with nats-py's ``options`` (their callbacks report to
    ``attempt``).  On failure the socket is freed without calling any callback, and the
    :class:`ConnectFailedError` of ``attempt`` is raised."""
    try:
        await nc.connect(urls, **options)
    except Exception as exc:
        with contextlib.suppress(Exception):  # free the socket, no user callbacks
            await asyncio.wait_for(nc._close(Client.CLOSED, do_cbs=False), _CLEANUP_LIMIT)
        raise attempt.failure(map_nats_error(exc), urls) from exc
