"""Subject, queue-group and header-name rules, and the pure subject-matching oracle.

These functions are the single source of truth for what both transports accept.
They follow nats-server's rules, tightened where the server is lax in a way that
only hides mistakes:

* A subject is one or more tokens separated by ``.``; no token is empty.
* No whitespace anywhere (space, tab, CR, LF, form feed, vertical tab).
* In a subscription pattern, ``*`` matches exactly one token and ``>`` matches one
  or more trailing tokens; a token that contains ``*`` or ``>`` must be exactly
  that character, and ``>`` may only be the last token.
* A subject that is published to (or used as a reply subject) contains no
  wildcard token.
* A queue group name is non-empty and contains no whitespace.
* A header name is a non-empty RFC 7230 token (the rule nats-py enforces).

Every validator raises a :class:`~transports.base.BadSubjectError` (or
:class:`~transports.base.BadHeaderError`) whose message names the bad value and
the rule it breaks.  :func:`matches` is the reference ("oracle") semantics that
the in-memory broker's trie and the property tests are checked against.
"""

from __future__ import annotations

import re
from collections.abc import Container, Sequence

from transports.base import BadHeaderError, BadQueueError, BadSubjectError

__all__ = [
    "is_valid_pattern",
    "is_valid_subject",
    "matches",
    "validate_header_name",
    "validate_header_value",
    "validate_pattern",
    "validate_queue",
    "validate_subject",
    "validate_subject_list",
]

_WHITESPACE = re.compile(r"[\s]")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _problem(subject: object, *, wildcards: bool) -> str | None:
    """Return why ``subject`` is invalid, or ``None`` when it is valid."""
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
            if token == ">" and index != last:
                return "'>' is only allowed as the last token"
    return None


def validate_subject(subject: str) -> str:
    """Check a subject that is published to (or used as a reply subject).

    Returns the subject unchanged; raises :class:`BadSubjectError` naming the
    subject and the rule when it is not a valid literal subject.
    """
    problem = _problem(subject, wildcards=False)
    if problem is not None:
        raise BadSubjectError(subject, problem)
    return subject


def validate_pattern(pattern: str) -> str:
    """Check a subscription subject (wildcards ``*`` and ``>`` allowed).

    Returns the pattern unchanged; raises :class:`BadSubjectError` naming the
    pattern and the rule when it is invalid.
    """
    problem = _problem(pattern, wildcards=True)
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
        if type(subject) is str and subject in known:
            continue
        problem = _problem(subject, wildcards=True)
        if problem is None and ("*" in subject or ">" in subject):
            problem = "must be a concrete subject, without wildcards, in subscribe_many"
        if problem is not None:
            raise BadSubjectError(subject, problem)
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
        raise BadHeaderError(name, "value must not contain CR or LF")
    if value != value.strip():
        raise BadHeaderError(name, "value must not have leading or trailing whitespace")
    return value


def is_valid_subject(subject: str) -> bool:
    """True when ``subject`` may be published to."""
    return _problem(subject, wildcards=False) is None


def is_valid_pattern(pattern: str) -> bool:
    """True when ``pattern`` may be subscribed to."""
    return _problem(pattern, wildcards=True) is None


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
