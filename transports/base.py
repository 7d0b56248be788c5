"""The seam: the one message-level protocol every part of this library is written against.

``Transport`` is *message-level*: it publishes, subscribes and requests whole
messages (:class:`Msg`).  It is unrelated to nats-py's own ``nats.aio.transport.Transport``,
which is a byte-level socket abstraction below the NATS protocol parser.

Two implementations ship with the library and pass the same conformance suite
(``testing.conformance``): ``transports.nats.NatsTransport`` (nats-py, production) and
``transports.memory.MemoryTransport`` (an in-process broker with nats-server semantics).

Every sentence of the docstrings below is a promise that has a conformance test.
Nothing above this module ever sees a nats-py type or exception: implementations
convert at their edge and raise only the errors defined here.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "DEFAULT_PENDING_BYTES_LIMIT",
    "DEFAULT_PENDING_MSGS_LIMIT",
    "NO_RESPONDERS_STATUS",
    "STATUS_HEADER",
    "BadHeaderError",
    "BadQueueError",
    "AuthorizationError",
    "BadSubjectError",
    "ConnectFailedError",
    "ConnectionClosedError",
    "EventListener",
    "FlushTimeoutError",
    "Headers",
    "MaxPayloadError",
    "Msg",
    "NoRespondersError",
    "PermissionViolationError",
    "RequestTimeoutError",
    "SlowConsumerError",
    "Subscription",
    "SubjectTooLongError",
    "SubscriptionClosedError",
    "Transport",
    "TransportError",
    "TransportEvent",
    "TransportEventKind",
]

Headers = Mapping[str, str]
"""Message headers: one string value per case-sensitive name (the nats-py model).

A message without headers has ``Msg.headers is None``; an empty mapping is never
delivered (both transports normalise "no header fields" to ``None``).
"""

STATUS_HEADER = "Status"
"""Header name under which a server status line (e.g. ``503``) is exposed."""

NO_RESPONDERS_STATUS = "503"
"""Status of the message a broker sends to a reply subject when nobody was subscribed."""

DEFAULT_PENDING_MSGS_LIMIT = 512 * 1024
"""Default per-subscription limit of buffered messages (same as nats-py)."""

DEFAULT_PENDING_BYTES_LIMIT = 128 * 1024 * 1024
"""Default per-subscription limit of buffered payload bytes (same as nats-py)."""


# --------------------------------------------------------------------------- errors


class TransportError(Exception):
    """Root of every error a transport raises.  Nothing else escapes the seam."""


class NoRespondersError(TransportError):
    """A request matched no subscription at all; raised promptly, not after the timeout."""

    def __init__(self, subject: str) -> None:
        super().__init__(f"no responders are subscribed to {subject!r}")
        self.subject = subject


class RequestTimeoutError(TransportError, TimeoutError):
    """No reply arrived within the request's timeout.  Also a builtin :class:`TimeoutError`."""

    def __init__(self, subject: str, timeout: float) -> None:
        super().__init__(f"no reply from {subject!r} within {timeout:g} s")
        self.subject = subject
        self.timeout = timeout


class ConnectionClosedError(TransportError):
    """The connection is closed (or was closed while the operation was pending)."""

    def __init__(self, message: str = "the connection is closed") -> None:
        super().__init__(message)


class BadSubjectError(TransportError, ValueError):
    """A subject or subscription pattern breaks the subject rules (see ``transports.subjects``)."""

    def __init__(self, subject: object, rule: str) -> None:
        super().__init__(f"invalid subject {subject!r}: {rule}")
        self.subject = subject
        self.rule = rule


class SubjectTooLongError(BadSubjectError):
    """A subject, with what travels beside it on one protocol line (reply subject, queue
    group, sizes), is longer than nats-server accepts.

    nats-server closes the connection of a client that sends a line of more than
    ``limit`` (4,096) bytes after the verb; both transports refuse such a call before
    anything is sent, so the connection stays usable.  ``length`` is the line's length in
    bytes; ``subject`` the offending subject (or pattern).
    """

    def __init__(self, subject: str, length: int, limit: int, carried: str) -> None:
        shown = subject if len(subject) <= 48 else f"{subject[:40]}...({len(subject)} chars)"
        rule = (
            f"the protocol line ({carried}) would be {length} bytes, over nats-server's "
            f"limit of {limit} bytes"
        )
        TransportError.__init__(self, f"invalid subject {shown!r}: {rule}")
        self.subject = subject
        self.rule = rule
        self.length = length
        self.limit = limit


class BadQueueError(TransportError, ValueError):
    """A queue group name is empty or contains whitespace."""

    def __init__(self, queue: object, rule: str) -> None:
        super().__init__(f"invalid queue group {queue!r}: {rule}")
        self.queue = queue
        self.rule = rule


class BadHeaderError(TransportError, ValueError):
    """A header name is not a valid token, or a header value is not a str, contains
    CR/LF, or has leading or trailing whitespace."""

    def __init__(self, name: object, rule: str) -> None:
        super().__init__(f"invalid header {name!r}: {rule}")
        self.name = name
        self.rule = rule


class MaxPayloadError(TransportError, ValueError):
    """A payload is larger than the connection's ``max_payload``."""

    def __init__(self, size: int, max_payload: int) -> None:
        super().__init__(f"payload of {size} bytes exceeds max_payload of {max_payload} bytes")
        self.size = size
        self.max_payload = max_payload


class ConnectFailedError(TransportError):
    """The connection could not be established (no server reachable, TLS failure, ...)."""


class AuthorizationError(ConnectFailedError):
    """The server rejected the connection's credentials."""


class FlushTimeoutError(TransportError, TimeoutError):
    """``flush()`` did not complete within its timeout.  Also a builtin :class:`TimeoutError`."""


class SlowConsumerError(TransportError):
    """A subscription exceeded its pending limit and messages for it were dropped.

    Reported through the connection's event listeners (``TransportEventKind.ERROR``),
    never raised into the publisher; the subscription's ``dropped`` counter grows.
    """

    def __init__(self, subject: str, dropped: int = 1) -> None:
        super().__init__(
            f"slow consumer on {subject!r}: pending limit reached, {dropped} message(s) dropped"
        )
        self.subject = subject
        self.dropped = dropped


class PermissionViolationError(TransportError):
    """The server refused to let this connection publish or subscribe to a subject."""

    def __init__(self, operation: str, subject: str, detail: str = "") -> None:
        message = f"permissions violation for {operation} to {subject!r}"
        super().__init__(f"{message}: {detail}" if detail else message)
        self.operation = operation
        self.subject = subject


class SubscriptionClosedError(TransportError):
    """``next_msg`` was called on a subscription that has ended."""

    def __init__(self, subject: str) -> None:
        super().__init__(f"the subscription to {subject!r} has ended")
        self.subject = subject


# --------------------------------------------------------------------------- messages and events


@dataclass(frozen=True, slots=True)
class Msg:
    """One message as delivered to a subscriber or returned by ``request``.

    ``subject`` is the concrete subject it was published to (never a wildcard),
    ``data`` the payload, ``headers`` ``None`` or a non-empty mapping, ``reply``
    ``None`` or the subject a responder should publish the answer to.
    """

    subject: str
    data: bytes = b""
    headers: Headers | None = None
    reply: str | None = None

    @property
    def is_no_responders(self) -> bool:
        """True for the empty 503 status message a broker sends when nobody was subscribed."""
        return (
            not self.data
            and self.headers is not None
            and self.headers.get(STATUS_HEADER) == NO_RESPONDERS_STATUS
        )

    def json(self) -> Any:
        """``data`` decoded as JSON (UTF-8), like ``Request.json()`` on the service side.

        Raises ``ValueError`` (``json.JSONDecodeError``, or ``UnicodeDecodeError`` for bytes
        that are not UTF-8) when the payload is not JSON; an empty payload is not JSON either.
        """
        return json.loads(self.data)


class TransportEventKind(enum.Enum):
    """What happened to a connection."""

    DISCONNECTED = "disconnected"
    RECONNECTED = "reconnected"
    CLOSED = "closed"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class TransportEvent:
    """A connection event; ``error`` is set for ``ERROR`` events (e.g. a ``SlowConsumerError``)."""

    kind: TransportEventKind
    error: TransportError | None = None


EventListener = Callable[[TransportEvent], object]
"""A synchronous callable invoked for each connection event; its return value is ignored.

Listeners must not block; an exception raised by a listener is logged and does not
affect the connection or other listeners.
"""


# --------------------------------------------------------------------------- protocols


@runtime_checkable
class Subscription(Protocol):
    """Interest in a subject pattern; an asynchronous iterator of :class:`Msg`.

    Messages are buffered per subscription up to its pending limits and handed out
    in arrival order; from one publisher they arrive in publish order.  Iteration
    ends (``StopAsyncIteration``) when the subscription ends for any reason:
    ``unsubscribe()``, a completed ``drain()``, the ``unsubscribe(limit=N)`` count
    being reached, or the connection closing.
    """

    @property
    def subject(self) -> str:
        """The subscribed pattern, wildcards included."""
        ...

    @property
    def queue(self) -> str | None:
        """The queue group, or ``None`` for a plain subscription."""
        ...

    @property
    def pending_msgs(self) -> int:
        """Messages buffered and not yet taken by the consumer."""
        ...

    @property
    def pending_bytes(self) -> int:
        """Payload bytes buffered and not yet taken by the consumer."""
        ...

    @property
    def delivered(self) -> int:
        """Messages handed to the consumer so far."""
        ...

    @property
    def dropped(self) -> int:
        """Messages dropped because a pending limit was reached (slow consumer)."""
        ...

    @property
    def is_active(self) -> bool:
        """True until the subscription has ended."""
        ...

    def __aiter__(self) -> Subscription: ...

    async def __anext__(self) -> Msg:
        """Wait for the next message; ``StopAsyncIteration`` once the subscription ended
        and its buffer is exhausted."""
        ...

    async def next_msg(self, timeout: float | None = None) -> Msg:
        """Wait up to ``timeout`` seconds (``None``: forever) for the next message.

        Raises builtin :class:`TimeoutError` when none arrives in time and
        :class:`SubscriptionClosedError` once the subscription has ended and its
        buffer is exhausted.
        """
        ...

    async def unsubscribe(self, limit: int = 0) -> None:
        """Remove interest.

        With ``limit == 0`` (default): when this returns no further message is
        delivered and buffered messages are discarded.  With ``limit > 0``: the
        subscription ends by itself once ``limit`` messages in total (counting those
        already received) have been delivered.  Calling it on an ended subscription
        does nothing.
        """
        ...

    async def drain(self) -> None:
        """Stop interest at once, keep what is already buffered, and end when it has
        been consumed.

        Returns once every buffered message has been taken by the consumer; the
        iterator then ends.  Calling it on an ended subscription does nothing.
        """
        ...


@runtime_checkable
class Transport(Protocol):
    """A connection to a broker.  Use it as an async context manager to close it on exit.

    Rules that hold for every method:

    * Subjects, patterns, queue groups and header names are validated with
      ``transports.subjects`` before anything is sent; a bad one raises
      :class:`BadSubjectError`, :class:`BadQueueError` or :class:`BadHeaderError`
      naming the value and the rule.
    * After ``close()`` every operation except ``close``/``drain`` raises
      :class:`ConnectionClosedError`.
    * Delivery is asynchronous: ``publish`` never runs a subscriber's code inline.
    * Messages from one publishing connection reach one receiving connection in
      publish order, across all of that connection's subscriptions (so a "sentinel"
      message published last is a barrier for everything published before it).
    * Header values must be str without CR/LF and without leading or trailing
      whitespace (NATS cannot carry them unchanged): anything else raises
      :class:`BadHeaderError` instead of being silently altered.
    """

    @property
    def max_payload(self) -> int:
        """Largest message ``publish`` and ``request`` accept: payload plus encoded headers,
        in bytes, as the server counts them."""
        ...

    @property
    def is_connected(self) -> bool:
        """True while connected to the broker (False while reconnecting and after close)."""
        ...

    @property
    def is_closed(self) -> bool:
        """True once ``close()`` or ``drain()`` has finished, or the broker closed us for good."""
        ...

    def new_inbox(self) -> str:
        """A fresh, unique subject suitable as a reply subject (``_INBOX.<unique>``).

        Pure and local: it works even after ``close()``."""
        ...

    async def publish(
        self,
        subject: str,
        data: bytes = b"",
        *,
        reply: str | None = None,
        headers: Headers | None = None,
    ) -> None:
        """Publish one message.

        Every plain subscription whose pattern matches ``subject`` gets a copy, and
        for each queue group with a matching member exactly one member gets it.
        If ``reply`` is set and nothing matches, the broker delivers an empty
        message with header ``Status: 503`` to ``reply`` (the no-responders signal);
        like nats-server, it does so only when the reply subject is subscribed on the
        publishing connection itself.
        Raises :class:`MaxPayloadError` when the payload plus its encoded headers
        exceed ``max_payload``.
        """
        ...

    async def subscribe(
        self,
        subject: str,
        *,
        queue: str | None = None,
        pending_msgs_limit: int | None = None,
        pending_bytes_limit: int | None = None,
    ) -> Subscription:
        """Subscribe to a subject pattern, optionally as a member of a queue group.

        Returns only once the subscription is live at the broker: a message
        published by *any* connection after this returns is delivered to it.
        Pending limits default to :data:`DEFAULT_PENDING_MSGS_LIMIT` and
        :data:`DEFAULT_PENDING_BYTES_LIMIT`; a limit must be positive (``ValueError``
        otherwise).  Beyond a limit, new messages are dropped, the subscription's
        ``dropped`` counter grows and an ``ERROR`` event carrying a
        :class:`SlowConsumerError` is emitted; the publisher is never blocked.
        """
        ...

    async def request(
        self,
        subject: str,
        data: bytes = b"",
        *,
        headers: Headers | None = None,
        timeout: float = 1.0,
    ) -> Msg:
        """Publish with a private reply subject and return the first reply.

        Raises :class:`NoRespondersError` promptly when no subscription matches,
        :class:`RequestTimeoutError` when no reply arrives within ``timeout``
        seconds, and :class:`ConnectionClosedError` if the connection closes while
        waiting.  ``timeout`` must be positive (``ValueError`` otherwise).
        """
        ...

    async def flush(self, timeout: float = 10.0) -> None:
        """Return once everything published so far has reached the broker."""
        ...

    async def drain(self) -> None:
        """Drain every subscription (see ``Subscription.drain``), then close."""
        ...

    async def close(self) -> None:
        """Close at once: subscriptions end (what they buffered is discarded), pending
        requests fail with :class:`ConnectionClosedError`, a ``CLOSED`` event is emitted.
        When it returns, the broker routes nothing more to this connection.  Idempotent."""
        ...

    def add_event_listener(self, listener: EventListener) -> Callable[[], None]:
        """Call ``listener`` for every later connection event; returns a function that
        removes it.  A ``CLOSED`` event is emitted exactly once."""
        ...

    async def __aenter__(self) -> Transport: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
