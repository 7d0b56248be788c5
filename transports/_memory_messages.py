"""Checking and building the messages of the in-memory broker (``transports.memory``).

Validation follows ``transports.subjects`` (with a fast path for ordinary subjects);
message sizes are counted as nats-server counts them (payload plus encoded headers);
inbox ids are NUID-shaped.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from transports.base import BadHeaderError, Headers, Msg
from transports.subjects import validate_header_name, validate_header_value, validate_subject

__all__ = [
    "Nuid",
    "as_bytes",
    "check_positive",
    "check_subject",
    "checked_headers",
    "is_plain_subject",
    "make_msg",
    "pending_limit",
    "remember_subject",
]

_HEADER_FRAME = len(b"NATS/1.0\r\n\r\n")
_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SEQ_MAX = 62**10
_KNOWN_SUBJECTS_LIMIT = 4096


class Nuid:
    """22-character NUID-style ids (12 random base-62 chars + a 10-char sequence)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._prefix = ""
        self._seq = 0
        self._step = 0
        self._reset()

    def _reset(self) -> None:
        rng = self._rng
        self._prefix = "".join(rng.choice(_DIGITS) for _ in range(12))
        self._seq = rng.randrange(_SEQ_MAX)
        self._step = rng.randrange(33, 333)

    def next(self) -> str:
        """The next id; unique per instance (the prefix is re-drawn when the sequence wraps)."""
        self._seq += self._step
        if self._seq >= _SEQ_MAX:
            self._reset()
        value, digits = self._seq, []
        for _ in range(10):
            value, digit = divmod(value, 62)
            digits.append(_DIGITS[digit])
        return self._prefix + "".join(reversed(digits))


_new_object = object.__new__
_SET_FIELDS = tuple(
    Msg.__dict__[field].__set__ for field in ("subject", "data", "headers", "reply")
)


def make_msg(subject: str, data: bytes, headers: dict[str, str] | None, reply: str | None) -> Msg:
    """``Msg(subject, data, headers, reply)`` at a third of the cost of the frozen
    dataclass ``__init__`` (sets the slots directly; ``Msg`` has no ``__post_init__``,
    a test pins that)."""
    msg = _new_object(Msg)
    set_subject, set_data, set_headers, set_reply = _SET_FIELDS
    set_subject(msg, subject)
    set_data(msg, data)
    set_headers(msg, headers)
    set_reply(msg, reply)
    return msg


def is_plain_subject(subject: str) -> bool:
    """A fast sufficient test for ``transports.subjects.is_valid_subject``: printable
    ASCII, no space or wildcard, no empty token.  False means "ask the full validator"."""
    return (
        subject.isascii()
        and subject.isprintable()
        and " " not in subject
        and "*" not in subject
        and ">" not in subject
        and ".." not in subject
        and subject[:1] not in (".", "")
        and subject[-1] != "."
    )


def check_subject(subject: str, known: dict[str, None]) -> None:
    """Raise BadSubjectError unless ``subject`` may be published to.

    ``known`` caches subjects already found valid (bounded; one-off ``_INBOX.``
    subjects are not remembered).
    """
    if type(subject) is str and subject in known:
        return
    if type(subject) is not str or not is_plain_subject(subject):
        validate_subject(subject)
    remember_subject(subject, known)


def remember_subject(subject: str, known: dict[str, None]) -> None:
    """Add a subject found valid to the ``known`` cache (bounded; emptied when full).
    One-off ``_INBOX.`` subjects are not remembered."""
    if not subject.startswith("_INBOX."):
        if len(known) >= _KNOWN_SUBJECTS_LIMIT:
            known.clear()
        known[subject] = None


def check_positive(what: str, value: float) -> None:
    """Raise ``ValueError`` naming ``what`` and ``value`` unless it is a number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"invalid {what} {value!r}: must be a positive number")


def pending_limit(what: str, value: int | None, default: int) -> int:
    """``default`` for ``None``; else ``value`` if it is an int > 0 (``ValueError`` if not)."""
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"invalid {what} {value!r}: must be a positive int")
    return value


def checked_headers(headers: Headers) -> tuple[dict[str, str] | None, int]:
    """Validate ``headers`` (names and values, see ``transports.subjects``) and return
    ``(a private copy or None when empty, size of the encoded header block)``.

    The size is what nats-py sends and nats-server counts against ``max_payload``:
    ``NATS/1.0\r\n`` + ``name: value\r\n`` per header + ``\r\n`` (0 when empty,
    since an empty mapping is sent as no headers).
    """
    if not isinstance(headers, Mapping):
        raise BadHeaderError(headers, "headers must be a mapping of str names to str values")
    if not headers:
        return None, 0
    copy: dict[str, str] = {}
    size = _HEADER_FRAME
    for name, value in headers.items():
        validate_header_name(name)
        validate_header_value(name, value)
        copy[name] = value
        size += len(name) + len(value.encode()) + 4
    return copy, size


def as_bytes(data: Any) -> bytes:
    """An immutable copy of bytes-like ``data``; ``TypeError`` naming the type otherwise."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"data must be bytes, got {type(data).__name__}")
