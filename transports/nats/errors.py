"""Mapping of nats-py's exceptions into the ``transports.base`` error tree (one helper).

Every exception nats-py (or the socket, TLS or asyncio layer below it) raises or reports
through ``error_cb`` goes through :func:`map_nats_error`, so nothing above the seam ever
sees a nats-py type.
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl

from nats import errors as nats_errors

from transports.base import (
    AuthorizationError,
    BadHeaderError,
    BadSubjectError,
    ConnectFailedError,
    ConnectionClosedError,
    FlushTimeoutError,
    MaxPayloadError,
    NoRespondersError,
    PermissionViolationError,
    RequestTimeoutError,
    SlowConsumerError,
    TransportError,
)

__all__ = ["map_nats_error", "parse_permission_violation", "permission_violation_parts"]


# nats-py lower-cases the server's -ERR line, e.g.
#   'Permissions Violation for Publish to "a.b"'
#   'Permissions Violation for Publish with Reply of "_INBOX.x"'
#   'Permissions Violation for Subscription to "a.b" using queue "q"'
_PERMISSION = re.compile(
    r'permissions violation for (publish|subscription) (?:to|with reply of) "([^"]*)"'
    r'(?: using queue "([^"]*)")?',
    re.IGNORECASE,
)


def permission_violation_parts(text: str) -> tuple[str, str, str | None] | None:
    """``(operation, subject, queue)`` of a server permissions-violation line, or ``None``.

    ``operation`` is ``"publish"`` or ``"subscription"``; ``queue`` is ``None`` unless the
    line names one.  nats-py lower-cases the whole error line before reporting it, so
    ``subject`` and ``queue`` are lower-case too.
    """
    match = _PERMISSION.search(text)
    if match is None:
        return None
    return match.group(1).lower(), match.group(2), match.group(3)


def parse_permission_violation(text: str) -> PermissionViolationError | None:
    """The ``PermissionViolationError`` described by a server error line, or ``None``
    (see :func:`permission_violation_parts`)."""
    parts = permission_violation_parts(text)
    if parts is None:
        return None
    operation, subject, queue = parts
    return PermissionViolationError(operation, subject, f"queue group {queue!r}" if queue else "")


def map_nats_error(
    exc: BaseException,
    *,
    subject: str | None = None,
    timeout: float | None = None,
    size: int = 0,
    max_payload: int = 0,
) -> TransportError:
    """Return the ``TransportError`` that stands for ``exc``; the caller chains ``exc``.

    ``subject``, ``timeout``, ``size`` and ``max_payload`` describe the failed operation
    and fill in the mapped error's fields.  Our own errors are returned unchanged;
    anything unknown becomes a plain :class:`TransportError` naming the original.
    """
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, nats_errors.NoRespondersError):
        return NoRespondersError(subject or "")
    if isinstance(exc, nats_errors.FlushTimeoutError):
        return FlushTimeoutError(f"flush: no answer from the server within {timeout or 0:g} s")
    if isinstance(exc, nats_errors.DrainTimeoutError):
        return TransportError("drain timed out: the connection was closed with messages pending")
    if isinstance(exc, (nats_errors.TimeoutError, asyncio.TimeoutError)):
        if subject is not None and timeout is not None:
            return RequestTimeoutError(subject, timeout)
        return TransportError(f"timed out: {exc}")
    if isinstance(exc, nats_errors.ConnectionClosedError):
        return ConnectionClosedError()
    if isinstance(exc, nats_errors.ConnectionDrainingError):
        return ConnectionClosedError("the connection is draining (closing)")
    if isinstance(exc, nats_errors.MaxPayloadError):
        return MaxPayloadError(size, max_payload)
    if isinstance(exc, nats_errors.BadSubjectError):
        return BadSubjectError(subject, "rejected by the NATS client")
    if isinstance(exc, nats_errors.BadHeaderError):
        return BadHeaderError(exc.key, "rejected by the NATS client")
    if isinstance(exc, nats_errors.SlowConsumerError):
        return SlowConsumerError(exc.subject)
    if isinstance(exc, nats_errors.AuthorizationError):
        return AuthorizationError("authorization violation: the server rejected the credentials")
    if isinstance(exc, nats_errors.NoServersError):
        return ConnectFailedError("no server available: every connection attempt failed")
    if isinstance(exc, nats_errors.OutboundBufferLimitError):
        return TransportError("reconnecting and the outbound buffer (pending_size) is full")
    if isinstance(exc, nats_errors.StaleConnectionError):
        return TransportError(f"connection lost: {exc}")
    text = str(exc)
    violation = parse_permission_violation(text)
    if violation is not None:
        return violation
    if "authorization violation" in text.lower():
        return AuthorizationError(f"authorization violation: {text.removeprefix('nats: ')}")
    if isinstance(exc, ssl.SSLError):  # before OSError: its errno is not an OS error code
        return ConnectFailedError(f"TLS error: {exc}")
    if isinstance(exc, OSError):
        reason = os.strerror(exc.errno) if exc.errno else type(exc).__name__
        return ConnectFailedError(f"connection error: {reason} ({exc})")
    return TransportError(f"NATS client error ({type(exc).__name__}): {text}")
