"""RFC 3339 timestamps for the STATS ``started`` field (ADR-32, STATS; validated by ``nats micro``).

Writer: UTC, suffix ``Z``, fractional seconds with trailing zeros trimmed (none
when the time is on a whole second), like nats.go -- at most 6 digits since a
``datetime`` holds microseconds.

Reader: any RFC 3339 date-time -- ``T`` or ``t`` separator, any number of
fractional digits (nats.go sends up to 9, nats.py/JS 3, contrib 6; digits past the
microsecond are truncated, not rounded), ``Z``/``z`` or a numeric offset.  The
result is always an aware ``datetime`` in UTC.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

__all__ = ["format_timestamp", "parse_timestamp"]

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


def format_timestamp(dt: datetime) -> str:
    """Format ``dt`` as RFC 3339 in UTC with a ``Z`` suffix.

    An aware ``datetime`` is converted to UTC; a naive one is taken to be UTC
    already (as nats_contrib.micro does).  Always six fractional digits, for example
    ``2024-05-01T10:20:30.500000Z``.
    Raises ``TypeError`` if ``dt`` is not a ``datetime``.
    """
    if not isinstance(dt, datetime):
        raise TypeError(f"timestamp must be a datetime, got {type(dt).__name__} {dt!r}")
    if dt.tzinfo is not None and dt.utcoffset() is not None:
        dt = dt.astimezone(timezone.utc)
    text = (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    )
    # Always six fractional digits: nats-py's reader parses ``%S.%fZ`` and rejects a
    # timestamp without a fraction (or with more than six digits).
    return f"{text}.{dt.microsecond:06d}Z"


def parse_timestamp(text: str) -> datetime:
    """Parse an RFC 3339 date-time into an aware UTC ``datetime``.

    Accepts 0 or more fractional digits (truncated to microseconds) and ``Z`` or
    a ``+HH:MM``/``-HH:MM`` offset.  Raises ``ValueError`` naming the text when it
    is not an RFC 3339 date-time, names an impossible date or time (including a
    leap second ``:60``, which ``datetime`` cannot hold), or falls outside the
    years 1..9999 once converted to UTC.  Raises ``TypeError`` for a non-str.
    """
    if not isinstance(text, str):
        raise TypeError(f"timestamp must be a str, got {type(text).__name__} {text!r}")
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(
            f"invalid timestamp {text!r}: must be an RFC 3339 date-time such as "
            "2024-05-01T10:20:30.123456789Z or 2024-05-01T12:20:30+02:00"
        )
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    microsecond = int((fraction or "")[:6].ljust(6, "0"))
    if zulu:
        tz = timezone.utc
    else:
        if int(off_h) > 23 or int(off_m) > 59:
            raise ValueError(
                f"invalid timestamp {text!r}: offset {sign}{off_h}:{off_m} is out of range"
            )
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        tz = timezone(-offset if sign == "-" else offset)
    try:
        parsed = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), microsecond, tz
        )
        return parsed.astimezone(timezone.utc)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"invalid timestamp {text!r}: {exc}") from None
