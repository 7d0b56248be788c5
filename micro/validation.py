"""Validation of service configuration values (ADR-32, Design and Endpoints).

Every ``validate_*`` function returns the value it accepted (metadata: a copy) and
raises :class:`~micro.errors.ValidationError` whose message names the bad value and
the rule it breaks.  Regexes are the ones ADR-32 names (and nats.go uses); they are matched with
``re.ASCII`` and ``fullmatch`` so that ``\\d`` means an ASCII digit and a trailing
newline is not silently accepted by ``$``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from micro.errors import ValidationError
from transports.subjects import subject_problem

__all__ = [
    "METADATA_MAX_BYTES",
    "NAME_PATTERN",
    "SEMVER_PATTERN",
    "validate_endpoint_name",
    "validate_endpoint_subject",
    "validate_group_prefix",
    "validate_metadata",
    "validate_name",
    "validate_pending_limits",
    "validate_queue_group",
    "validate_service_name",
    "validate_version",
]

NAME_PATTERN = r"^[A-Za-z0-9\-_]+$"
"""Service and endpoint names (ADR-32: ``A-Z, a-z, 0-9, dash, underscore``)."""

SEMVER_PATTERN = (
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
"""The semver.org regex (ADR-32, Design); ``\\d`` is an ASCII digit."""

METADATA_MAX_BYTES = 128 * 1024
"""Cap on the UTF-8 size of all metadata keys plus values (ADR-33, as nats.go)."""

_NAME = re.compile(NAME_PATTERN, re.ASCII)
_SEMVER = re.compile(SEMVER_PATTERN, re.ASCII)
_WHITESPACE = re.compile(r"\s")
_NOT_NAME_CHAR = re.compile(r"[^A-Za-z0-9\-_]", re.ASCII)

_NAME_RULE = f"must match {NAME_PATTERN} (ASCII letters, digits, '-' and '_')"


def _require_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a str, got {type(value).__name__} {value!r}")
    return value


def validate_name(name: str, what: str = "name") -> str:
    """Check a name-like subject token (``^[A-Za-z0-9\\-_]+$``); ``what`` names it in messages."""
    text = _require_str(name, what)
    if not text:
        raise ValidationError(f"invalid {what} '': a name is required; it {_NAME_RULE}")
    if _NAME.fullmatch(text) is None:
        bad = _NOT_NAME_CHAR.search(text)
        detail = f" (character {bad.group()!r} is not allowed)" if bad else ""
        raise ValidationError(f"invalid {what} {text!r}: {_NAME_RULE}{detail}")
    return text


def validate_service_name(name: str) -> str:
    """Check a service name: non-empty, ``^[A-Za-z0-9\\-_]+$``.  Returns it unchanged."""
    return validate_name(name, "service name")


def validate_endpoint_name(name: str) -> str:
    """Check an endpoint name: same rule as the service name.  Returns it unchanged."""
    return validate_name(name, "endpoint name")


def validate_version(version: str) -> str:
    """Check a version against the strict semver.org regex.  Returns it unchanged.

    ``0.1.0`` and ``1.0.0-alpha.1+build.5`` pass; ``""``, ``v1.2.3``, ``1.2`` and
    ``01.2.3`` do not (nats.js's loose check is deliberately not followed).
    """
    text = _require_str(version, "version")
    if _SEMVER.fullmatch(text) is None:
        raise ValidationError(
            f"invalid version {text!r}: must be a semantic version (https://semver.org), "
            "e.g. 1.0.0 or 1.0.0-alpha.1+build.5"
        )
    return text


def validate_endpoint_subject(subject: str) -> str:
    """Check a final endpoint subject (group prefix already applied), token-aware.

    Rules (ADR-32, Endpoints; nats-server's subject syntax): one or more ``.``-separated
    tokens, none empty; no whitespace; a token containing ``*`` or ``>`` is exactly ``*``
    or ``>``; ``>`` only as the last token.  ``*`` tokens may appear anywhere.  Returns it
    unchanged.
    """
    text = _require_str(subject, "endpoint subject")
    if not text:
        raise ValidationError("endpoint subject is required: got ''")
    problem = subject_problem(text, wildcards=True)
    if problem is not None:
        raise ValidationError(f"invalid endpoint subject {text!r}: {problem}")
    return text


def validate_group_prefix(prefix: str) -> str:
    """Check a group prefix; ``""`` means "no prefix" and is returned as is.

    A non-empty prefix follows the endpoint subject rules except that ``>`` is not
    allowed at all; ``*`` tokens are fine and the prefix may start with ``$``
    (e.g. ``$SYS.SOMETHING.*``).  Returns it unchanged.
    """
    text = _require_str(prefix, "group prefix")
    if not text:
        return text
    problem = subject_problem(text, wildcards=True, full_wildcard=False)
    if problem is not None:
        raise ValidationError(f"invalid group prefix {text!r}: {problem}")
    return text


def validate_queue_group(q: str) -> str:
    """Check an explicit queue group name (ADR-32, Request Handling).  Returns it unchanged.

    Must be non-empty, contain no whitespace and no ``*`` or ``>``; dots are
    allowed.  Whether ``""``/``None`` mean "inherit" is the caller's business: this
    function only judges a name that will be used.
    """
    text = _require_str(q, "queue group")
    if not text:
        raise ValidationError("invalid queue group '': must not be empty")
    if _WHITESPACE.search(text):
        raise ValidationError(f"invalid queue group {text!r}: must not contain whitespace")
    if "*" in text or ">" in text:
        raise ValidationError(
            f"invalid queue group {text!r}: must not contain wildcard characters '*' or '>'"
        )
    return text


def validate_metadata(md: Mapping[str, str] | None, what: str = "metadata") -> dict[str, str]:
    """Check the metadata mapping ``md`` and return a new ``dict`` copy of it.

    ``None`` gives ``{}`` (callers that must keep "unset" distinct from "empty"
    check for ``None`` first).  Every key and value must be a ``str``; the UTF-8
    size of all keys plus values must not exceed :data:`METADATA_MAX_BYTES`.  Keys
    starting with ``_nats`` are reserved for NATS tooling (ADR-33) but accepted.
    ``what`` names the metadata in messages, e.g. ``"endpoint 'add' metadata"``.
    """
    if md is None:
        return {}
    if not isinstance(md, Mapping):
        raise ValidationError(f"{what} must be a mapping of str to str, got {type(md).__name__}")
    copy: dict[str, str] = {}
    size = 0
    for key, value in md.items():
        if not isinstance(key, str):
            raise ValidationError(f"{what} key {key!r} must be a str, got {type(key).__name__}")
        if not isinstance(value, str):
            raise ValidationError(
                f"{what} value for key {key!r} must be a str, got {type(value).__name__} {value!r}"
            )
        size += _utf8_size(key, what, key) + _utf8_size(value, what, key)
        copy[key] = value
    if size > METADATA_MAX_BYTES:
        raise ValidationError(
            f"{what} is too large: keys and values take {size} bytes (UTF-8), "
            f"the limit is {METADATA_MAX_BYTES} (128 KiB)"
        )
    return copy


def _utf8_size(text: str, what: str, key: str) -> int:
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ValidationError(
            f"{what} entry {key!r} is not valid Unicode text (cannot be UTF-8 encoded: {exc})"
        ) from None


def _validate_limit(value: int | None, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(
            f"{what} must be a positive int or None, got {type(value).__name__} {value!r}"
        )
    if value <= 0:
        raise ValidationError(f"invalid {what} {value!r}: must be a positive int or None")
    return value


def validate_pending_limits(msgs: int | None, bytes: int | None) -> tuple[int | None, int | None]:
    """Check per-endpoint pending limits; each is a positive ``int`` or ``None`` (default).

    Returns ``(msgs, bytes)`` unchanged.  Zero, negative, ``bool`` and non-int values
    are rejected (Go rejects zero limits too).
    """
    return (
        _validate_limit(msgs, "pending messages limit"),
        _validate_limit(bytes, "pending bytes limit"),
    )
