"""The arguments the lockstep machine generates: subjects, patterns, queues, headers, payloads.

Everything here aims at the edges where a broker double tends to differ from nats-server:

* tokens that are short and shared (so patterns and subjects match each other), non-ASCII,
  reserved-looking (``_INBOX``, ``$SYS``, ``$JS``), and long enough that a subject plus its
  reply subject or queue group lands around the server's 4,096-byte protocol-line limit;
* subjects and patterns that break a rule (empty tokens, whitespace, misplaced ``>``),
  and arguments of the wrong type;
* header names and values that are valid, invalid, or reserved for the server (``Status``);
* payloads of every buffer type the seam accepts, and some it refuses.

Values are plain data; the machine hands the same value to both transports.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

__all__ = [
    "concrete",
    "LONG_TOKEN_LENGTHS",
    "header_maps",
    "limits",
    "patterns",
    "payloads",
    "queue_names",
    "reply_subjects",
    "subjects",
    "timeouts",
]

SHORT_TOKENS = ("a", "b", "c", "ü", "_INBOX", "$SYS", "$JS", "API")
"""Tokens drawn most often: few enough that generated patterns match generated subjects."""

LONG_TOKEN_LENGTHS = (
    200,
    2_000,
    4_000,
    4_030,
    4_050,
    4_060,
    4_070,
    4_080,
    4_090,
    4_100,
    8_000,
)
"""Lengths of the rare long tokens: a subject of this length plus a reply subject, a queue
name or a request inbox crosses nats-server's 4,096-byte protocol-line limit somewhere in
this range, whichever way the line is counted."""


def _weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Draw from one of ``choices``, each picked with its relative weight."""
    pool = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.sampled_from(pool).flatmap(lambda strategy: strategy)


_common = st.sampled_from(("a", "a", "b"))
_short = st.sampled_from(SHORT_TOKENS)
_long = st.sampled_from(LONG_TOKEN_LENGTHS).map(lambda n: "x" * n)
_tokens = _weighted((12, _common), (4, _short), (1, _long))

_HOT_SUBJECTS = ("a", "a", "a", "b", "a.b", "a.a", "_INBOX.a", "$SYS.a", "ü")
"""Subjects drawn half of the time, so that most messages find a subscriber."""

_HOT_PATTERNS = ("a", "a", "a", "b", "*", ">", "a.*", "a.>", "*.b", "_INBOX.>", "$SYS.>", "ü")

_BROKEN_SUBJECTS = ("", "a..b", ".a", "a.", "a b", "a\tb", "a.>.b", "a*", "a.*b", "\r\n")


def _joined(tokens: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(tokens, min_size=1, max_size=3).map(".".join)


def subjects() -> st.SearchStrategy[object]:
    """Subjects to publish or request on: mostly valid, sometimes broken or of the wrong type."""
    valid = _joined(_tokens)
    return _weighted(
        (60, st.sampled_from(_HOT_SUBJECTS)),
        (20, valid),
        (2, st.sampled_from((*_BROKEN_SUBJECTS, "a.*", "a.>", "*", ">"))),
        (1, st.sampled_from((42, None, b"a"))),
    )


def reply_subjects() -> st.SearchStrategy[object]:
    """Reply subjects for ``publish``: usually none, else a subject (valid or not)."""
    return _weighted((3, st.none()), (1, subjects()))


def patterns() -> st.SearchStrategy[object]:
    """Subscription patterns with ``*`` and ``>``; sometimes broken or of the wrong type."""
    body = st.lists(st.one_of(_tokens, _tokens, st.just("*")), min_size=1, max_size=3)
    tailed = st.tuples(st.lists(st.one_of(_tokens, st.just("*")), max_size=2), st.booleans()).map(
        lambda pair: ".".join([*pair[0], ">"]) if pair[1] or not pair[0] else ".".join(pair[0])
    )
    valid = st.one_of(body.map(".".join), tailed)
    return _weighted(
        (60, st.sampled_from(_HOT_PATTERNS)),
        (20, valid),
        (2, st.sampled_from(_BROKEN_SUBJECTS)),
        (1, st.sampled_from((7, None))),
    )


def queue_names() -> st.SearchStrategy[object]:
    """Queue group names: a few shared ones, long ones, and broken ones."""
    return _weighted(
        (12, st.sampled_from(("q", "q", "r", "ü"))),
        (1, st.sampled_from(LONG_TOKEN_LENGTHS).map(lambda n: "q" * n)),
        (1, st.sampled_from(("", "a b", "\t", 5))),
    )


_HEADER_NAMES = ("X", "Y", "Status", "Nats-Msg-Id", "Description", "ü", "a b", "", "a:b")
_HEADER_VALUES = ("1", "", "ü", "v w", " x", "x ", "a\r\nb", "x" * 5_000)


def header_maps() -> st.SearchStrategy[object]:
    """Headers: none, valid maps, maps breaking a name or value rule, wrong types."""
    names = st.sampled_from(_HEADER_NAMES)
    values = st.one_of(st.sampled_from(_HEADER_VALUES), st.sampled_from((3, None, b"v")))
    valid = st.dictionaries(st.sampled_from(("X", "Y", "Description")), st.sampled_from(("1", "ü")))
    return _weighted(
        (12, st.none()),
        (6, valid),
        (2, st.dictionaries(names, values, max_size=2)),
        (1, st.sampled_from(([("X", "1")], "X: 1"))),
    )


_SIZES = (0, 1, 3, 10, 1024 * 1024 - 200, 1024 * 1024, 1024 * 1024 + 1)


def payloads() -> st.SearchStrategy[object]:
    """Payloads of every buffer type, of sizes around ``max_payload``, and some non-payloads."""
    size = _weighted((12, st.sampled_from(_SIZES[:4])), (1, st.sampled_from(_SIZES)))
    wrapped = st.tuples(size, st.sampled_from(("bytes", "bytearray", "memoryview"))).map(
        lambda pair: _payload(*pair)
    )
    return _weighted((20, wrapped), (1, st.sampled_from(("text", 5, None))))


def _payload(size: int, kind: str) -> object:
    data = bytes(i % 251 for i in range(size)) if size < 64 else b"p" * size
    if kind == "bytearray":
        return bytearray(data)
    if kind == "memoryview":
        return memoryview(data)
    return data


def concrete(pattern: object) -> str:
    """A subject ``pattern`` matches (``*`` and ``>`` read as ``a``); ``""`` if it is not a
    valid pattern (the publish then fails on both sides alike)."""
    if not isinstance(pattern, str):
        return ""
    return ".".join("a" if token in ("*", ">") else token for token in pattern.split("."))


def limits() -> st.SearchStrategy[int]:
    """``unsubscribe(limit)`` values: mostly small, sometimes 0 (now) or negative."""
    return st.sampled_from((0, 0, 1, 1, 1, 2, 2, 3, 5, -1))


def timeouts() -> st.SearchStrategy[float | None]:
    """``None`` lets the machine pick a timeout from what it knows will answer; the rest are
    refused by the seam (timeouts must be positive)."""
    return _weighted((20, st.none()), (1, st.sampled_from((0.0, -1.0))))
