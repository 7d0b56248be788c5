"""Wire models of the control responses: PING, INFO and STATS (ADR-32; docs/wire.md).

Writing is exact (``as_dict``/``to_json`` produce what docs/wire.md lists
under "we write"): service ``metadata`` is ``{}`` when unset, endpoint INFO
``metadata`` is ``null`` when unset, ``description`` is a string, ``queue_group``
is ``""`` when there is none, ``data`` is ``null`` when ``None``, ``started`` is
RFC 3339 UTC with ``Z``.

Reading is tolerant (``from_response``): unknown keys are ignored; ``metadata``
may be ``{}``, ``null`` or absent; ``description`` may be ``null`` or absent;
``queue_group``, ``last_error`` and ``data`` may be absent; ``started`` may have
0-9 fractional digits and ``Z`` or a numeric offset.  What cannot be read (a
missing ``name``, a counter that is not an integer, a metadata value that is not
a string, ...) raises ``ValueError`` naming the field, so a discovery client can
skip that one reply.  Each parsed model owns fresh containers (no aliasing of
the input mapping).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from micro.control import INFO_RESPONSE_TYPE, PING_RESPONSE_TYPE, STATS_RESPONSE_TYPE
from micro.timestamps import format_timestamp, parse_timestamp

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "EndpointInfo",
    "EndpointStats",
    "PingInfo",
    "ServiceInfo",
    "ServiceStats",
    "format_timestamp",
    "parse_timestamp",
]


def _dumps(document: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON; NaN/Infinity are refused (``ValueError``) as Go cannot read them."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


# ----------------------------------------------------------------------------- readers


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _required_str(resp: Mapping[str, Any], key: str, what: str) -> str:
    value = resp.get(key)
    if not isinstance(value, str):
        problem = "is missing" if key not in resp else f"must be a string, got {value!r}"
        raise ValueError(f"{what} field {key!r} {problem}")
    return value


def _optional_str(resp: Mapping[str, Any], key: str, what: str) -> str | None:
    value = resp.get(key)
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"{what} field {key!r} must be a string or null, got {value!r}")


def _integer(resp: Mapping[str, Any], key: str, what: str) -> int:
    """A JSON integer; absent/null read as 0, integral floats (``5.0``) as ints."""
    value = resp.get(key)
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    raise ValueError(f"{what} field {key!r} must be an integer, got {value!r}")


def _nanoseconds(resp: Mapping[str, Any], key: str, what: str) -> int:
    """A duration in ns: any finite JSON number, rounded; absent/null read as 0.

    Durations are lenient where counters are strict: nats.js sends
    ``processing_time / num_requests`` unrounded for iterator-style endpoints.
    """
    value = resp.get(key)
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return round(value)
    raise ValueError(f"{what} field {key!r} must be a number of nanoseconds, got {value!r}")


def _metadata(resp: Mapping[str, Any], key: str, what: str) -> dict[str, str] | None:
    """``None`` for absent/null metadata, else a copy checked to be str -> str."""
    value = resp.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} field {key!r} must be an object or null, got {value!r}")
    copy: dict[str, str] = {}
    for name, text in value.items():
        if not isinstance(name, str) or not isinstance(text, str):
            raise ValueError(f"{what} {key} entry {name!r} must map a string to a string")
        copy[name] = text
    return copy


def _items(resp: Mapping[str, Any], key: str, what: str) -> list[Mapping[str, Any]]:
    value = resp.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{what} field {key!r} must be an array, got {value!r}")
    return [_mapping(item, f"{what} {key}[{index}]") for index, item in enumerate(value)]


def _type(resp: Mapping[str, Any], default: str, what: str) -> str:
    value = _optional_str(resp, "type", what)
    return default if value is None else value


def _identity(resp: Mapping[str, Any], type_: str, what: str) -> dict[str, Any]:
    """The service identity every control response carries (ADR-32: ``name``, ``id``,
    ``version``, ``metadata``, and ``type``, defaulting to ``type_``), as constructor
    arguments; absent or null ``metadata`` gives ``{}``."""
    return {
        "name": _required_str(resp, "name", what),
        "id": _required_str(resp, "id", what),
        "version": _required_str(resp, "version", what),
        "metadata": _metadata(resp, "metadata", what) or {},
        "type": _type(resp, type_, what),
    }


def _identity_dict(model: PingInfo | ServiceInfo | ServiceStats) -> dict[str, Any]:
    """The wire form of a control response's identity, in this order: ``type``, ``name``,
    ``id``, ``version``, ``metadata`` (``{}`` when empty or ``None``)."""
    return {
        "type": model.type,
        "name": model.name,
        "id": model.id,
        "version": model.version,
        "metadata": dict(model.metadata or {}),
    }


def _copy_data(data: object) -> object:
    return dict(data) if isinstance(data, dict) else data


# ----------------------------------------------------------------------------- models


class _WireModel:
    """Shared ``to_json`` for the response models."""

    __slots__ = ()

    def as_dict(self) -> dict[str, Any]:  # pragma: no cover - overridden by every model
        raise NotImplementedError

    def copy(self) -> Self:
        """A deep copy: changing the copy's metadata, endpoints or data leaves this one alone."""
        return copy.deepcopy(self)

    def to_json(self) -> bytes:
        """The compact JSON encoding of :meth:`as_dict` (UTF-8).

        Raises ``TypeError``/``ValueError`` if user-supplied ``data`` is not JSON
        serializable (or holds NaN/Infinity).
        """
        return _dumps(self.as_dict())


@dataclass(slots=True)
class EndpointInfo(_WireModel):
    """One endpoint in an INFO response.

    Field order follows ``nats_contrib.micro`` (``name, subject, metadata, queue_group``) so
    positional construction written for it keeps working.  ``queue_group`` ``None``
    means "no queue group" (written as ``""``); the reader maps ``""``, ``null`` and an
    absent key to ``None``, so ``None`` is the one in-memory form of "no queue group"
    for both endpoint models.
    """

    name: str
    subject: str
    metadata: dict[str, str] | None = None
    queue_group: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Wire form: ``queue_group`` ``""`` when ``None``; ``metadata`` ``null`` when ``None``."""
        return {
            "name": self.name,
            "subject": self.subject,
            "queue_group": self.queue_group or "",
            "metadata": None if self.metadata is None else dict(self.metadata),
        }

    @classmethod
    def from_response(cls, resp: Mapping[str, Any]) -> Self:
        """Read an INFO endpoint entry.

        ``""``, ``null`` or absent ``queue_group`` and null/absent ``metadata`` give ``None``.
        """
        what = "INFO endpoint"
        resp = _mapping(resp, what)
        return cls(
            name=_required_str(resp, "name", what),
            subject=_required_str(resp, "subject", what),
            queue_group=_optional_str(resp, "queue_group", what) or None,
            metadata=_metadata(resp, "metadata", what),
        )


@dataclass(slots=True)
class EndpointStats(_WireModel):
    """Statistics of one endpoint in a STATS response; durations in nanoseconds.

    ``queue_group`` ``None`` = no queue group, as for :class:`EndpointInfo`.
    ``data`` is whatever the stats callback returned (any JSON value is kept as
    received, the annotation follows the ``nats_contrib.micro`` API); ``None`` = no callback.
    """

    name: str
    subject: str
    num_requests: int = 0
    num_errors: int = 0
    last_error: str = ""
    processing_time: int = 0
    average_processing_time: int = 0
    queue_group: str | None = None
    data: dict[str, object] | None = None

    def as_dict(self) -> dict[str, Any]:
        """Wire form: ``queue_group`` ``""`` when ``None``; ``data`` ``null`` when ``None``.

        ``data`` is written as ``null`` rather than omitted (ADR-32 marks it optional, so
        readers take either): nats-py's own ``nats.micro`` reader requires the key, Go and JS
        accept it.
        """
        document: dict[str, Any] = {
            "name": self.name,
            "subject": self.subject,
            "queue_group": self.queue_group or "",
            "num_requests": self.num_requests,
            "num_errors": self.num_errors,
            "last_error": self.last_error,
            "processing_time": self.processing_time,
            "average_processing_time": self.average_processing_time,
        }
        document["data"] = None if self.data is None else _copy_data(self.data)
        return document

    @classmethod
    def from_response(cls, resp: Mapping[str, Any]) -> Self:
        """Read a STATS endpoint entry; absent counters read 0, absent ``last_error`` ``""``."""
        what = "STATS endpoint"
        resp = _mapping(resp, what)
        data = resp.get("data")
        return cls(
            name=_required_str(resp, "name", what),
            subject=_required_str(resp, "subject", what),
            num_requests=_integer(resp, "num_requests", what),
            num_errors=_integer(resp, "num_errors", what),
            last_error=_optional_str(resp, "last_error", what) or "",
            processing_time=_nanoseconds(resp, "processing_time", what),
            average_processing_time=_nanoseconds(resp, "average_processing_time", what),
            queue_group=_optional_str(resp, "queue_group", what) or None,
            data=cast("dict[str, object] | None", _copy_data(data)),  # any JSON value is kept
        )


@dataclass(slots=True)
class PingInfo(_WireModel):
    """A PING response: the identity of one service instance."""

    name: str
    id: str
    version: str
    metadata: dict[str, str] = field(default_factory=dict)
    type: str = PING_RESPONSE_TYPE

    def as_dict(self) -> dict[str, Any]:
        """Wire form: exactly ``type``, ``name``, ``id``, ``version``, ``metadata``."""
        return _identity_dict(self)

    @classmethod
    def from_response(cls, resp: Mapping[str, Any]) -> Self:
        """Read a PING response; absent or null ``metadata`` gives ``{}``."""
        what = "PING response"
        resp = _mapping(resp, what)
        return cls(**_identity(resp, PING_RESPONSE_TYPE, what))


@dataclass(slots=True)
class ServiceInfo(_WireModel):
    """An INFO response: identity, description and endpoints (registration order)."""

    name: str
    id: str
    version: str
    description: str
    metadata: dict[str, str]
    endpoints: list[EndpointInfo]
    type: str = INFO_RESPONSE_TYPE

    def as_dict(self) -> dict[str, Any]:
        """Wire form; ``metadata`` ``{}`` when empty, ``endpoints`` ``[]`` when none."""
        return {
            **_identity_dict(self),
            "description": self.description or "",
            "endpoints": [endpoint.as_dict() for endpoint in self.endpoints],
        }

    @classmethod
    def from_response(cls, resp: Mapping[str, Any]) -> Self:
        """Read an INFO response; null/absent ``description`` gives ``""``, ``metadata`` ``{}``."""
        what = "INFO response"
        resp = _mapping(resp, what)
        return cls(
            **_identity(resp, INFO_RESPONSE_TYPE, what),
            description=_optional_str(resp, "description", what) or "",
            endpoints=[
                EndpointInfo.from_response(item) for item in _items(resp, "endpoints", what)
            ],
        )


@dataclass(slots=True)
class ServiceStats(_WireModel):
    """A STATS response.  ``started`` is an aware UTC ``datetime`` when parsed.

    ``metadata`` ``None`` is written as ``{}``; :meth:`from_response` always
    returns a ``dict`` (``{}`` when absent or null).
    """

    name: str
    id: str
    version: str
    started: datetime
    endpoints: list[EndpointStats]
    metadata: dict[str, str] | None = None
    type: str = STATS_RESPONSE_TYPE

    def as_dict(self) -> dict[str, Any]:
        """Wire form; ``started`` via :func:`format_timestamp` (UTC, ``Z``)."""
        return {
            **_identity_dict(self),
            "started": format_timestamp(self.started),
            "endpoints": [endpoint.as_dict() for endpoint in self.endpoints],
        }

    @classmethod
    def from_response(cls, resp: Mapping[str, Any]) -> Self:
        """Read a STATS response; ``started`` is required (see :func:`parse_timestamp`)."""
        what = "STATS response"
        resp = _mapping(resp, what)
        started_text = _required_str(resp, "started", what)
        try:
            started = parse_timestamp(started_text)
        except ValueError as exc:
            raise ValueError(f"{what} field 'started': {exc}") from None
        return cls(
            **_identity(resp, STATS_RESPONSE_TYPE, what),
            started=started,
            endpoints=[
                EndpointStats.from_response(item) for item in _items(resp, "endpoints", what)
            ],
        )
