"""Every rule a transport applies at its edge, and the pure subject-matching oracle.

These functions are the single source of truth for what both transports accept, checked
in one order before anything is sent (:func:`check_message`: subject, reply subject,
headers, payload type, size).  They follow nats-server's rules, tightened where the server
is lax in a way that only hides mistakes:

* A subject is one or more tokens separated by ``.``; no token is empty.
* No whitespace anywhere (space, tab, CR, LF, form feed, vertical tab).
* In a subscription pattern, ``*`` matches exactly one token and ``>`` matches one
  or more trailing tokens; a token that contains ``*`` or ``>`` must be exactly
  that character, and ``>`` may only be the last token.
* A subject that is published to (or used as a reply subject) contains no
  wildcard token.
* A queue group name is non-empty and contains no whitespace.
* A header name is a non-empty RFC 7230 token (the rule nats-py enforces); a header value
  is a str without CR/LF and without surrounding whitespace (NATS cannot carry it
  unchanged).
* A payload is bytes-like (any object with the buffer protocol but ``str``); a message's
  size is its payload plus its encoded header block, as nats-server counts it against
  ``max_payload``.
* Pending limits and timeouts are positive numbers.

Every validator raises a :class:`~transports.base.BadSubjectError` (or
:class:`~transports.base.BadHeaderError`) whose message names the bad value and
the rule it breaks.  :func:`matches` is the reference ("oracle") semantics that
the in-memory broker's trie and the property tests are checked against.
"""

from __future__ import annotations

import re
from collections.abc import Container, Mapping, Sequence
from typing import Any

from transports.base import (
    BadHeaderError,
    BadQueueError,
    BadSubjectError,
    Headers,
    MaxPayloadError,
    Msg,
    SubjectTooLongError,
)

__all__ = [
    "MAX_CONTROL_LINE",
    "REQUEST_REPLY_LENGTH",
    "REQUEST_TOKEN_LENGTH",
    "SID_DIGITS",
    "check_subscribe_line",
    "check_message",
    "check_subject",
    "checked_headers",
    "is_plain_subject",
    "is_valid_pattern",
    "is_valid_subject",
    "make_msg",
    "matches",
    "server_match_order",
    "subject_problem",
    "payload_bytes",
    "pending_limit",
    "positive_number",
    "validate_header_name",
    "validate_header_value",
    "validate_pattern",
    "validate_queue",
    "validate_subject",
    "validate_subject_list",
]

_WHITESPACE = re.compile(r"[\s]")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_FRAME = len(b"NATS/1.0\r\n\r\n")
_KNOWN_SUBJECTS_LIMIT = 4096

MAX_CONTROL_LINE = 4096
"""nats-server's limit on the arguments of one protocol line (``PUB``, ``HPUB``, ``SUB``),
in bytes: a longer line makes the server close the connection."""

SID_DIGITS = 10
"""Digits counted for a subscription id on a ``SUB`` line: the line is checked as if the id
were this long, so the rule does not depend on how many subscriptions came before."""

REQUEST_TOKEN_LENGTH = 22 + 4
"""Length of the last token of nats-py's request reply subjects: a 22-character NUID
followed by 4 hex digits (nats-py >= 2.9)."""

REQUEST_REPLY_LENGTH = len("_INBOX.") + 22 + 1 + REQUEST_TOKEN_LENGTH
"""Length of the reply subject a request carries with the default inbox prefix: nats-py's
``_INBOX.<nuid>.<token>``."""

_SHORT_LINE = MAX_CONTROL_LINE // 4 - 64  # characters that cannot encode to a long line


def subject_problem(subject: object, *, wildcards: bool, full_wildcard: bool = True) -> str | None:
    """Why ``subject`` breaks nats-server's subject syntax, or ``None`` when it keeps it.

    The syntax: a non-empty ``str`` of ``.``-separated tokens, none empty, no whitespace.
    Without ``wildcards`` (a subject to publish to) no token may hold ``*`` or ``>``; with
    them a token holding one is exactly ``*`` or ``>``, and ``>`` only ends the subject --
    or is refused altogether with ``full_wildcard=False`` (a group prefix, which more
    tokens follow).  The one definition of the rule: the transports and ``micro``'s
    endpoint subjects and group prefixes use it.
    """
    if not isinstance(subject, str):
        return f"must be a str, got {type(subject).__name__}"
    if not subject:
        return "must not be empty"
    if _WHITESPACE.search(subject):
        return "must not contain whitespace"
    tokens = subject.split(".")
    last = len(tokens) - 1
    for index, token in enumerate(tokens):
        if not token:
            return "must not contain empty tokens (leading, trailing or double '.')"
        if "*" in token or ">" in token:
            if not wildcards:
                return "must not contain wildcards ('*' or '>') when publishing"
            if token not in ("*", ">"):
                return f"wildcard token {token!r} must be exactly '*' or '>'"
            if token == ">":
                if not full_wildcard:
                    return "must not contain '>' (it may only end an endpoint subject)"
                if index != last:
                    return "'>' is only allowed as the last token"
    return None


def validate_subject(subject: str) -> str:
    """Check a subject that is published to (or used as a reply subject).

    Returns the subject unchanged; raises :class:`BadSubjectError` naming the
    subject and the rule when it is not a valid literal subject.
    """
    problem = subject_problem(subject, wildcards=False)
    if problem is not None:
        raise BadSubjectError(subject, problem)
    return subject


def validate_pattern(pattern: str) -> str:
    """Check a subscription subject (wildcards ``*`` and ``>`` allowed).

    Returns the pattern unchanged; raises :class:`BadSubjectError` naming the
    pattern and the rule when it is invalid.
    """
    problem = subject_problem(pattern, wildcards=True)
    if problem is not None:
        raise BadSubjectError(pattern, problem)
    return pattern


def validate_subject_list(subjects: Sequence[str], known: Container[str] = ()) -> tuple[str, ...]:
    """Check the subjects of a ``subscribe_many`` call (``transports.extensions``).

    Returns them as a tuple; raises :class:`BadSubjectError` naming a subject that is
    invalid or a pattern (each must be concrete), and ``ValueError`` when the sequence is
    empty, is a str, or repeats a subject.  Subjects in ``known`` (a caller's cache of
    subjects already found valid) are not checked again.
    """
    if isinstance(subjects, str) or not isinstance(subjects, Sequence):
        raise ValueError(f"invalid subjects {subjects!r}: must be a sequence of subjects")
    if not subjects:
        raise ValueError("invalid subjects []: at least one subject is needed")
    for subject in subjects:
        if type(subject) is not str or subject not in known:
            problem = subject_problem(subject, wildcards=True)
            if problem is None and ("*" in subject or ">" in subject):
                problem = "must be a concrete subject, without wildcards, in subscribe_many"
            if problem is not None:
                raise BadSubjectError(subject, problem)
        check_subscribe_line(subject, None)
    checked = tuple(subjects)
    if len(set(checked)) != len(checked):
        repeated = next(s for s in checked if checked.count(s) > 1)
        raise ValueError(f"invalid subjects: {repeated!r} is given more than once")
    return checked


def validate_queue(queue: str | None) -> str | None:
    """Check a queue group name; ``None`` means "no queue group".

    Raises :class:`BadQueueError` for an empty name or one containing whitespace.
    """
    if queue is None:
        return None
    if not isinstance(queue, str):
        raise BadQueueError(queue, f"must be a str or None, got {type(queue).__name__}")
    if not queue:
        raise BadQueueError(queue, "must not be empty (pass None for no queue group)")
    if _WHITESPACE.search(queue):
        raise BadQueueError(queue, "must not contain whitespace")
    return queue


def validate_header_name(name: str) -> str:
    """Check one header name; raises :class:`BadHeaderError` when it is not a token."""
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
        raise BadHeaderError(
            name, "header names must be non-empty and use only RFC 7230 token characters"
        )
    return name


def validate_header_value(name: str, value: str) -> str:
    """Check one header value: a str without CR/LF and without surrounding whitespace.

    NATS cannot carry such values unchanged (nats-py strips and rewrites them), so
    they raise :class:`BadHeaderError` rather than being silently altered.
    """
    if not isinstance(value, str):
        raise BadHeaderError(name, f"value must be a str, got {type(value).__name__}")
    if "\r" in value or "\n" in value:
        raise BadHeaderError(name, "value must not contain CR or LF (NATS would alter the value)")
    if value != value.strip():
        raise BadHeaderError(
            name,
            "value must not have leading or trailing whitespace (NATS would alter the value)",
        )
    return value


def is_valid_subject(subject: str) -> bool:
    """True when ``subject`` may be published to."""
    return subject_problem(subject, wildcards=False) is None


def is_valid_pattern(pattern: str) -> bool:
    """True when ``pattern`` may be subscribed to."""
    return subject_problem(pattern, wildcards=True) is None


def matches(pattern: str, subject: str) -> bool:
    """The reference matching rule: does subscription ``pattern`` match ``subject``?

    Both arguments are assumed valid (see :func:`validate_pattern` and
    :func:`validate_subject`).  ``*`` matches exactly one token, ``>`` one or
    more trailing tokens; everything else matches literally and case-sensitively.
    """
    pattern_tokens = pattern.split(".")
    subject_tokens = subject.split(".")
    for index, token in enumerate(pattern_tokens):
        if token == ">":
            return len(subject_tokens) > index
        if index >= len(subject_tokens):
            return False
        if token != "*" and token != subject_tokens[index]:
            return False
    return len(pattern_tokens) == len(subject_tokens)


# --------------------------------------------------------------------------- the publish path


def is_plain_subject(subject: str) -> bool:
    """A fast sufficient test for :func:`is_valid_subject`: printable ASCII without space
    or wildcard, and no empty token.  ``False`` means "ask the full validator"."""
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
    """Raise :class:`BadSubjectError` unless ``subject`` may be published to.

    ``known`` is the caller's cache of subjects already found valid (one per connection or
    broker): bounded (emptied when full), and one-off ``_INBOX.`` subjects are not kept.
    """
    if type(subject) is str and subject in known:
        return
    if type(subject) is not str or not is_plain_subject(subject):
        validate_subject(subject)
    if not subject.startswith("_INBOX."):
        if len(known) >= _KNOWN_SUBJECTS_LIMIT:
            known.clear()
        known[subject] = None


def checked_headers(headers: Headers) -> tuple[dict[str, str] | None, int]:
    """Validate ``headers`` (names and values) and return ``(a private copy, or None when
    empty; the size of the encoded header block)``.

    The size is what is sent and counted against ``max_payload``: ``NATS/1.0\r\n`` +
    ``name: value\r\n`` per header + ``\r\n`` (0 when empty: an empty mapping is sent as
    no headers).  Raises :class:`BadHeaderError` naming the header and the rule.
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


def payload_bytes(data: object) -> bytes:
    """``data`` as immutable ``bytes``: ``bytes`` itself, or a copy of any other bytes-like
    object (``bytearray``, ``memoryview``, anything with the buffer protocol).

    Raises ``TypeError`` naming the type for anything else (a ``str`` included: encode it).
    """
    if type(data) is bytes:
        return data
    if isinstance(data, str):
        raise TypeError("data must be bytes-like, got str (encode it, e.g. text.encode())")
    try:
        view = memoryview(data)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"data must be bytes-like (bytes, bytearray, memoryview), got {type(data).__name__}"
        ) from None
    with view:
        return view.tobytes()


def check_subscribe_line(subject: str, queue: str | None) -> None:
    """Raise :class:`SubjectTooLongError` when a ``SUB`` line for ``subject`` and ``queue``
    (both already valid) would exceed :data:`MAX_CONTROL_LINE`.

    The line's arguments are ``<subject> <queue> <id>``; the separator before the queue is
    sent even without one (nats-py does), and the id counts :data:`SID_DIGITS` digits.
    """
    if len(subject) + (len(queue) if queue else 0) < _SHORT_LINE:
        return
    length = len(subject.encode()) + 1 + (len(queue.encode()) if queue else 0) + 1 + SID_DIGITS
    if length > MAX_CONTROL_LINE:
        carried = "subject, queue group and id" if queue else "subject and id"
        raise SubjectTooLongError(subject, length, MAX_CONTROL_LINE, carried)


def _check_publish_line(
    subject: str, reply_length: int, header_size: int, size: int, headers: bool
) -> None:
    # PUB <subject> <reply> <size> / HPUB <subject> <reply> <header size> <size>; the
    # separator before the reply subject is sent even without one (nats-py does)
    length = len(subject.encode()) + 1 + reply_length + 1 + len(str(size))
    if headers:
        length += 1 + len(str(header_size))
    if length > MAX_CONTROL_LINE:
        carried = "subject, reply subject and sizes" if reply_length else "subject and sizes"
        raise SubjectTooLongError(subject, length, MAX_CONTROL_LINE, carried)


def check_message(
    subject: str,
    data: object,
    reply: str | None,
    headers: Headers | None,
    max_payload: int,
    known: dict[str, None],
    *,
    reply_length: int = 0,
) -> tuple[bytes, dict[str, str] | None, int]:
    """Apply every rule of a message about to be published, in this order: the subject,
    the reply subject, the headers, the payload type, the size, the protocol line's length
    (:class:`SubjectTooLongError` past :data:`MAX_CONTROL_LINE`; ``reply_length`` is the
    length of a reply subject the transport will add, as ``request`` does).

    Returns ``(payload as bytes, a private copy of the headers or None, size)``, the size
    being payload plus encoded headers.  Raises :class:`BadSubjectError`,
    :class:`BadHeaderError`, ``TypeError`` (payload type) or :class:`MaxPayloadError`
    (``size > max_payload``).  ``known`` caches valid subjects (see :func:`check_subject`).
    """
    if subject.__class__ is not str or subject not in known:  # the cache hit, inlined
        check_subject(subject, known)
    if reply is not None:
        check_subject(reply, known)
    copied, header_size = (None, 0) if headers is None else checked_headers(headers)
    payload = data if data.__class__ is bytes else payload_bytes(data)
    size = header_size + len(payload)
    if size > max_payload:
        raise MaxPayloadError(size, max_payload)
    if len(subject) + (reply_length if reply is None else len(reply)) >= _SHORT_LINE:
        if reply is not None:
            reply_length = len(reply.encode())
        _check_publish_line(subject, reply_length, header_size, size, copied is not None)
    return payload, copied, size


def positive_number(what: str, value: float) -> float:
    """Return ``value`` if it is a number > 0 (an int or a float, not a bool).

    Raises ``ValueError`` naming ``what`` and ``value`` otherwise (NaN included).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"invalid {what} {value!r}: must be a positive number")
    return value


def pending_limit(what: str, value: int | None, default: int) -> int:
    """``default`` for ``None``, else ``value`` if it is an int > 0 (not a bool).

    Raises ``ValueError`` naming ``what`` and ``value`` otherwise.
    """
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"invalid {what} {value!r}: must be a positive int")
    return value


_new_object = object.__new__
_SET_FIELDS = tuple(
    Msg.__dict__[field].__set__ for field in ("subject", "data", "headers", "reply")
)


def make_msg(
    subject: str, data: bytes, headers: Mapping[str, str] | None, reply: str | None
) -> Msg:
    """``Msg(subject, data, headers, reply)`` without checks, at a third of the cost of the
    frozen dataclass ``__init__`` (it sets the slots directly; ``Msg`` has no
    ``__post_init__``, which a test pins).  Callers pass what :func:`check_message` made,
    or what a broker received."""
    msg = _new_object(Msg)
    set_subject, set_data, set_headers, set_reply = _SET_FIELDS
    set_subject(msg, subject)
    set_data(msg, data)
    set_headers(msg, headers)
    set_reply(msg, reply)
    return msg


def server_match_order(patterns: list[str], subject: str) -> dict[str, int]:
    """The position of each of ``patterns`` that matches ``subject`` in the order
    nats-server's sublist returns matches: at each token, a ``>`` pattern ending there
    first, then what follows a ``*`` there (depth first), then the literal token; at the
    end the literal match, then a ``*`` match.  (Subscriptions under one pattern come in
    no fixed order on the server; here, in subscription order.)"""
    root: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for pattern in dict.fromkeys(patterns):
        level = root
        node: tuple[dict[str, Any], list[str]] | None = None
        for token in pattern.split("."):
            node = level.setdefault(token, ({}, []))
            level = node[0]
        if node is not None:
            node[1].append(pattern)
    found: list[str] = []

    def match_level(level: dict[str, Any] | None, tokens: list[str]) -> None:
        wildcard = literal = None
        for i, token in enumerate(tokens):
            if level is None:
                return
            tail = level.get(">")
            if tail is not None:
                found.extend(tail[1])
            wildcard = level.get("*")
            if wildcard is not None:
                match_level(wildcard[0], tokens[i + 1 :])
            literal = level.get(token)
            level = literal[0] if literal is not None else None
        if literal is not None:
            found.extend(literal[1])
        if wildcard is not None:
            found.extend(wildcard[1])

    match_level(root, subject.split("."))
    return {pattern: i for i, pattern in enumerate(dict.fromkeys(found))}
