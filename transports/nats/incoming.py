"""Incoming messages of ``transports.nats``: built as our ``Msg`` by nats-py's reader,
and made harmless when nats-py cannot read them.

* :func:`msg_factory` replaces nats-py's ``Client.msg_class``: for our subscriptions the
  reader builds our :class:`~transports.base.Msg` directly (one object per message, built by
  ``transports.subjects.make_msg`` like the memory transport's), repairing nats-py's parse of
  status messages; :func:`to_msg` converts the messages nats-py built itself (request replies);
* :func:`guard_incoming`: what nats-py cannot read is dropped and reported, not fatal;
* :func:`keep_message_lines_on_one_line`: nats-py's patterns for ``MSG``/``HMSG`` lines, made
  to stop at the line's end (applied when this module is imported).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from typing import Any

from nats.aio.msg import Msg as NatsMsg
from nats.errors import ProtocolError
from nats.protocol import parser as nats_parser

from transports.base import STATUS_HEADER, Msg, TransportError
from transports.subjects import make_msg

__all__ = ["guard_incoming", "keep_message_lines_on_one_line", "msg_factory", "to_msg"]

MSG_LINE = re.compile(rb"\AMSG[ \t]+(\S+)[ \t]+(\S+)[ \t]+((\S+)[ \t]+)?(\d+)\r\n")
HMSG_LINE = re.compile(rb"\AHMSG[ \t]+(\S+)[ \t]+(\S+)[ \t]+((\S+)[ \t]+)?(\d+)[ \t]+(\d+)\r\n")


def keep_message_lines_on_one_line() -> None:
    """Replace nats-py's ``MSG_RE``/``HMSG_RE`` (module globals of ``nats.protocol.parser``,
    read by its parser at each message) with patterns whose separators are spaces or tabs.

    nats-py's own ones separate fields with ``\\s+``, which also matches ``\\r\\n``: for
    ``HMSG a 1 1 1\\r\\n2\\r\\n`` (a 1-byte header block, which any client may publish)
    the last number is read from the *next* line, the parser takes the wrong number of bytes
    and every later frame on the connection is misread (found by ``tests/reliability/
    test_fuzz.py``).  The groups are the same; a line the new patterns do not match is a
    protocol error that :func:`guard_incoming` drops and reports.  Process-wide (nats-py's
    parser reads the globals), and harmless for other nats-py clients: nats-server
    separates with single spaces.
    """
    nats_parser.MSG_RE = MSG_LINE
    nats_parser.HMSG_RE = HMSG_LINE


keep_message_lines_on_one_line()


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


def _from_fields(subject: str, data: bytes, headers: Mapping[str, str] | None, reply: str) -> Msg:
    """Our :class:`Msg` from nats-py's fields: no empty headers or reply, clean status."""
    if not headers:
        headers = None
    elif STATUS_HEADER in headers:
        headers = _status_headers(headers)
    return make_msg(subject, data, headers, reply or None)


def to_msg(raw: NatsMsg) -> Msg:
    """Our :class:`Msg` for a message nats-py built."""
    return _from_fields(raw.subject, raw.data, raw.headers, raw.reply)


def msg_factory(owned: Mapping[int, object], fallback: Callable[..., Any]) -> Callable[..., Any]:
    """A stand-in for nats-py's ``Client.msg_class``, which its reader calls (with keyword
    arguments) to build every incoming message.  For subscriptions in ``owned`` it builds
    our :class:`Msg` directly (as :func:`to_msg` would), so no nats-py message is built and
    converted per message; everything else (request replies, the user's own nats-py
    subscriptions) is built by ``fallback``, the previous ``msg_class``."""

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
        if headers:
            return _from_fields(subject, data, headers, reply)
        return make_msg(subject, data, None, reply or None)  # the common case, one call

    return build


def guard_incoming(nc: Any, report: Callable[[TransportError], None]) -> None:
    """Make nats-py's client ``nc`` survive incoming messages it cannot read.

    nats-server relays messages from any publisher, and some of them defeat nats-py:

    * a subject or reply containing a byte nats-py's parser takes for whitespace (``\\r``,
      ``\\v``, ``\\f``; the server allows them): the parser raises nats-py's ``ProtocolError``
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
            except ProtocolError:
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
