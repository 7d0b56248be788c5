"""The parts of ``transports.nats`` that need no ``nats`` import.

* building our :class:`~transports.base.Msg` from what nats-py parsed (also directly from
  its reader, see :func:`msg_factory`), repairing its parse of status messages;
* the server list of ``NatsTransport.connect`` (the message rules are
  ``transports.subjects``');
* :func:`guard_incoming`: what nats-py cannot read is dropped and reported, not fatal.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from transports._nats_errors import map_nats_error, permission_violation_parts
from transports.base import (
    STATUS_HEADER,
    ConnectFailedError,
    Msg,
    PermissionViolationError,
    SlowConsumerError,
    TransportError,
)

if TYPE_CHECKING:
    from transports._nats_subscription import NatsSubscription

__all__ = [
    "FAST_MSG",
    "ConnectAttempt",
    "denied_subscriptions",
    "guard_incoming",
    "make_msg",
    "msg_factory",
    "pop_callbacks",
    "server_list",
    "subscription_error",
    "to_msg",
]


class RawMsg(Protocol):
    """The parts of a nats-py ``Msg`` converted into ours."""

    subject: str
    reply: str
    data: bytes
    headers: dict[str, str] | None


def _status_headers(headers: Mapping[Any, str]) -> dict[str, str]:
    """Repair nats-py's parse of a status message such as ``NATS/1.0 503`` + header lines:
    it stores the following header lines again as a ``Description`` value starting with a
    newline, keyed by an enum.  Keep plain ``str`` names and the real fields only."""
    clean: dict[str, str] = {}
    for key, value in headers.items():
        name = str(key.value) if isinstance(key, enum.Enum) else key
        if not (name == "Description" and value.startswith("\n")):
            clean[name] = value
    return clean


# Building a frozen dataclass through its __init__ costs ~0.7 us; setting its four slots
# directly costs half that.  Used only while Msg is exactly the four-field slotted class.
_new = object.__new__
_FIELDS = ("subject", "data", "headers", "reply")
_setters: list[Any] = [getattr(vars(Msg).get(name), "__set__", None) for name in _FIELDS]
_set_subject, _set_data, _set_headers, _set_reply = _setters
FAST_MSG = (
    tuple(field.name for field in dataclasses.fields(Msg)) == _FIELDS
    and not hasattr(Msg, "__post_init__")
    and "__dict__" not in dir(Msg)
    and None not in _setters
)


def make_msg(subject: str, data: bytes, headers: Mapping[str, str] | None, reply: str) -> Msg:
    """Our :class:`Msg` from nats-py's fields: no empty headers or reply, clean status."""
    if not headers:
        headers = None
    elif STATUS_HEADER in headers:
        headers = _status_headers(headers)
    if not FAST_MSG:
        return Msg(subject, data, headers, reply or None)
    msg: Msg = _new(Msg)
    _set_subject(msg, subject)
    _set_data(msg, data)
    _set_headers(msg, headers)
    _set_reply(msg, reply or None)
    return msg


def to_msg(raw: RawMsg) -> Msg:
    """Our :class:`Msg` for a nats-py message."""
    return make_msg(raw.subject, raw.data, raw.headers, raw.reply)


def msg_factory(owned: Mapping[int, object], fallback: Callable[..., Any]) -> Callable[..., Any]:
    """A stand-in for nats-py's ``Client.msg_class``, which its reader calls (with keyword
    arguments) to build every incoming message.  For subscriptions in ``owned`` it builds
    our :class:`Msg` directly, so no nats-py message is built and converted per message;
    everything else (request replies, the user's own nats-py subscriptions) is built by
    ``fallback``, the previous ``msg_class``."""

    def build(
        *,
        subject: str,
        reply: str,
        data: bytes,
        headers: dict[str, str] | None = None,
        _client: object = None,
        _sid: int | None = None,
        **more: Any,
    ) -> Any:
        if _sid not in owned:
            return fallback(
                subject=subject, reply=reply, data=data, headers=headers, _client=_client,
                _sid=_sid, **more,
            )  # fmt: skip
        if headers or not FAST_MSG:
            return make_msg(subject, data, headers, reply)
        msg: Msg = _new(Msg)  # the common case of make_msg, inlined: no headers
        _set_subject(msg, subject)
        _set_data(msg, data)
        _set_headers(msg, None)
        _set_reply(msg, reply or None)
        return msg

    return build


def server_list(servers: str | Sequence[str]) -> list[str]:
    items = servers.split(",") if isinstance(servers, str) else list(servers)
    result = [item.strip() for item in items if isinstance(item, str) and item.strip()]
    if not result or len(result) != len(items):
        raise ValueError(f"servers must be URLs (a list or comma-separated), got {servers!r}")
    return result


def guard_incoming(
    nc: Any, report: Callable[[TransportError], None], protocol_error: type[Exception]
) -> None:
    """Make nats-py's client ``nc`` survive incoming messages it cannot read.

    nats-server relays messages from any publisher, and some of them defeat nats-py:

    * a subject or reply containing a byte nats-py's parser takes for whitespace (``\\r``,
      ``\\v``, ``\\f``; the server allows them): the parser raises ``protocol_error``
      and nats-py drops the connection and reconnects -- losing what was in flight, for
      every subscriber the message reached;
    * a header block that is not ``NATS/1.0`` headers (e.g. shorter than that, or a status
      line that is not UTF-8), or a subject or reply that is not UTF-8: nats-py's reader
      task ends *silently*, the connection still claims to be connected, nothing more is
      read.

    This wraps three steps on the instance: an unparsable message line is rewritten to
    address no subscription (nats-py then skips its payload), a message whose subject or
    reply is not UTF-8 is dropped, unreadable headers are dropped (the message is still
    delivered, without headers).  Each time ``report`` gets a :class:`TransportError`
    saying what was dropped.  On the usual path the wrappers cost one call each.
    """
    parser = nc._ps
    parse = parser.parse
    process_headers = nc._process_headers

    async def safe_parse(data: bytes = b"") -> None:
        while True:
            try:
                await parse(data)
                return
            except protocol_error:
                line = _neutralise_message_line(parser.buf)
                if line is None:
                    raise
                report(
                    TransportError(f"dropped an incoming message nats-py cannot parse: {line!r}")
                )
                data = b""  # go on with what is buffered

    async def safe_process_headers(headers: bytes | None) -> dict[str, str] | None:
        if not headers:
            return None
        try:
            parsed: dict[str, str] | None = await process_headers(headers)
        except Exception as exc:
            report(
                TransportError(
                    f"dropped the unreadable header block {bytes(headers[:64])!r} of an "
                    f"incoming message ({type(exc).__name__}: {exc}); delivered without headers"
                )
            )
            return None
        return parsed

    def safe_build_message(
        sid: int, subject: bytes, reply: bytes, data: bytes, headers: dict[str, str] | None
    ) -> Any:
        try:
            subject_text = subject.decode()
            reply_text = reply.decode()
        except UnicodeDecodeError:
            report(
                TransportError(
                    f"dropped an incoming message whose subject {bytes(subject[:64])!r} or "
                    f"reply {bytes(reply[:64])!r} is not UTF-8"
                )
            )
            return None  # nats-py skips a message its builder returns None for
        return nc.msg_class(
            subject=subject_text, reply=reply_text, data=data, headers=headers,
            _client=nc, _sid=sid,
        )  # fmt: skip

    parser.parse = safe_parse
    nc._process_headers = safe_process_headers
    nc._build_message = safe_build_message


def _neutralise_message_line(buf: bytearray) -> bytes | None:
    """If ``buf`` starts with a complete ``MSG``/``HMSG`` line, replace it by one for sid 0
    (which no subscription has) with the same sizes, and return the original line;
    otherwise return ``None`` and leave ``buf`` alone."""
    end = buf.find(b"\r\n")
    if end < 0 or not buf.startswith((b"MSG ", b"HMSG ")):
        return None
    line = bytes(buf[: end + 2])
    parts = line[:-2].split(b" ")
    sizes = parts[-2:] if parts[0] == b"HMSG" else parts[-1:]
    if len(parts) < 3 + len(sizes) or not all(size.isdigit() for size in sizes):
        return None
    buf[: end + 2] = b" ".join([parts[0], b"_", b"0", *sizes]) + b"\r\n"
    return line


def pop_callbacks(
    options: dict[str, Any], known: frozenset[str], names: Sequence[str]
) -> dict[str, Callable[..., Any] | None]:
    """Check connect ``options`` against the ``known`` names; remove and return the
    callbacks among them (``None`` when absent).  Raises ``TypeError`` for an unknown
    option or a callback that is not an ``async def``."""
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown nats-py connect option(s) {unknown}; known: {sorted(known)}")
    callbacks: dict[str, Callable[..., Any] | None] = {}
    for name in names:
        callback = options.pop(name, None)
        if callback is not None and not inspect.iscoroutinefunction(callback):
            raise TypeError(f"{name} must be an async function, got {callback!r}")
        callbacks[name] = callback
    return callbacks


class ConnectAttempt:
    """The bookkeeping of one ``NatsTransport.connect()``: when to stop nats-py retrying.

    ``servers`` is how many servers the attempt may try; ``budget`` how many failed
    connections are allowed in all (``None``: nats-py's reconnect options decide).  The
    attempt is given up once every server failed for good (rejected credentials, a failed
    TLS handshake: retrying cannot help) or the budget is spent.
    """

    __slots__ = ("abort_reason", "budget", "errors", "permanent_failures", "servers")

    def __init__(self, servers: int, budget: int | None) -> None:
        self.servers = servers
        self.budget = budget
        self.errors: list[TransportError] = []
        self.permanent_failures = 0
        self.abort_reason: TransportError | None = None

    def record(self, error: TransportError, *, permanent: bool) -> TransportError | None:
        """Note one failed connection; returns the reason to give up with, or ``None`` to
        let nats-py go on.  After giving up, later errors (from the cleanup) are ignored."""
        if self.abort_reason is not None:
            return None
        self.errors.append(error)
        if permanent:
            self.permanent_failures += 1
        if self.permanent_failures >= self.servers or (
            self.budget is not None and len(self.errors) >= self.budget
        ):
            self.abort_reason = error
            return error
        return None

    def failure(self, fallback: TransportError, urls: Sequence[str]) -> ConnectFailedError:
        """The error to raise: why the attempt failed (the reason it was given up for, else
        the last error, else ``fallback``), as a :class:`ConnectFailedError` naming ``urls``."""
        reason = self.abort_reason or (self.errors[-1] if self.errors else fallback)
        error_class = type(reason) if isinstance(reason, ConnectFailedError) else ConnectFailedError
        return error_class(f"cannot connect to {', '.join(urls)}: {reason}")


def subscription_error(
    exc: Exception,
    subscriptions: Mapping[int, NatsSubscription],
    denied: dict[str, int],
    count: int,
) -> tuple[TransportError, list[NatsSubscription]]:
    """What nats-py's ``error_cb`` report ``exc`` (the ``count``-th) means: the error to
    report, and the subscriptions it ends.

    A slow consumer is counted on its subscription and named by the subject it came on
    (among a multi subscription's subjects).  A subscription refused by the server is
    recorded in ``denied`` (lower-cased subject -> ``count``) for the subscribe waiting for
    it, and ends the live subscriptions it names (:func:`denied_subscriptions`).
    """
    error = map_nats_error(exc)
    if isinstance(error, SlowConsumerError):
        sid: Any = getattr(exc, "sid", None)
        sub = subscriptions.get(sid)
        if sub is None:
            return error, []
        sub._note_dropped()
        return SlowConsumerError(sub._subject_of(sid)), []
    if isinstance(error, PermissionViolationError) and error.operation == "subscription":
        denied[error.subject.lower()] = count
        return denied_subscriptions(error, str(exc), subscriptions.values())
    return error, []


def denied_subscriptions(
    error: PermissionViolationError, text: str, subscriptions: Iterable[NatsSubscription]
) -> tuple[PermissionViolationError, list[NatsSubscription]]:
    """The server refused (or, after a configuration reload, removed) a subscription.

    nats-py lower-cases the server's line (``text``): give the error the subject as
    subscribed, and return the live ``subscriptions`` it names (subject and queue,
    case-insensitively; any of a multi subscription's subjects), which the server no
    longer serves and which must therefore end (a multi subscription as a whole: it is
    one subscription).  Each is returned once, however many sids it is listed under.
    """
    parts = permission_violation_parts(text)
    queue = (parts[2] if parts is not None else None) or ""
    named: list[NatsSubscription] = []
    subject = error.subject
    for sub in dict.fromkeys(subscriptions):
        if (sub.queue or "").lower() != queue:
            continue
        subjects: tuple[str, ...] = getattr(sub, "subjects", (sub.subject,))
        match = next((s for s in subjects if s.lower() == error.subject), None)
        if match is not None:
            if not named:
                subject = match
            named.append(sub)
    if not named:
        return error, []
    detail = f"queue group {named[0].queue!r}" if named[0].queue else ""
    return PermissionViolationError("subscription", subject, detail), named
