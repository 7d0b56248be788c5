"""Shared constants and helpers of the transport conformance suite.

Waits are bounded with ``anyio.fail_after``; "nothing else arrives" is shown with a sentinel
published after the other messages by the same publisher, never with a sleep.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import pytest

from transports.base import Msg, Subscription, Transport

from ._suite_base import WAIT
from .backend import ConformanceBackend

__all__ = [
    "INVALID_HEADER_NAMES",
    "INVALID_PATTERNS",
    "INVALID_QUEUES",
    "INVALID_SUBJECTS",
    "ODD_HEADERS",
    "SENTINEL",
    "UNUSUAL_VALID_SUBJECTS",
    "VALID_PATTERNS",
    "WILDCARD_TABLE",
    "WILDCARD_UNIVERSE",
    "assert_rejected",
    "collect_until_sentinel",
    "connections",
    "settle",
    "take_pending",
]

SENTINEL = b"--sentinel--"

INVALID_SUBJECTS = [
    "", " a", "a b", "a ", "a..b", ".a", "a.", "a*", "*", ">", "a.*", "a.>", "*.a",
    "a\tb", "a\nb", "a\rb", "foo.>.bar",
]  # fmt: skip
INVALID_PATTERNS = [
    "", " a", "a b", "a..b", ".a", "a.", ".", "a*", "*a", ">a", "a>", "a.>.b", ">.a",
    "a.**", "a.*>", "a\tb", "a\nb",
]  # fmt: skip
VALID_PATTERNS = ["*", ">", "a.*", "a.>", "*.b", "a.*.c", "*.*.>", "$SRV.PING.*", "_INBOX.>"]
UNUSUAL_VALID_SUBJECTS = ["$SRV.PING", "ünï.cödé", "a-b_c~d#e%f/g", "A.b.C", "x" * 200, "1.2.3"]
INVALID_QUEUES = ["", " ", "a b", "a\tb", "\n", "q "]
INVALID_HEADER_NAMES = ["", "bad name", "bad:name", "bäd", "a\r\nb", "(x)", "a/b"]

WILDCARD_UNIVERSE = [
    "foo", "foo.bar", "foo.baz", "foo.bar.baz", "bar", "x.bar", "x.bar.y", "foo.x.baz",
    "Foo.bar", "foo.bar.baz.qux",
]  # fmt: skip
# pattern -> (subjects of WILDCARD_UNIVERSE it matches, a matching sentinel subject);
# written out by hand, independent of transports.subjects.matches.
WILDCARD_TABLE: dict[str, tuple[list[str], str]] = {
    "foo.*": (["foo.bar", "foo.baz"], "foo.end"),
    "foo.>": (["foo.bar", "foo.baz", "foo.bar.baz", "foo.x.baz", "foo.bar.baz.qux"], "foo.end"),
    ">": (WILDCARD_UNIVERSE, "end"),
    "*.bar": (["foo.bar", "x.bar", "Foo.bar"], "end.bar"),
    "foo.bar": (["foo.bar"], "foo.bar"),
    "foo": (["foo"], "foo"),
    "foo.bar.baz": (["foo.bar.baz"], "foo.bar.baz"),
    "*": (["foo", "bar"], "end"),
    "*.*": (["foo.bar", "foo.baz", "x.bar", "Foo.bar"], "end.end"),
    "foo.*.baz": (["foo.bar.baz", "foo.x.baz"], "foo.end.baz"),
    "*.bar.>": (["foo.bar.baz", "x.bar.y", "foo.bar.baz.qux"], "end.bar.end"),
}
ODD_HEADERS = {
    "X-Mixed-Case": "Value",
    "lower": "v",
    "UPPER": "V",
    "Unicode": "héllo ☃ 日本",
    "Spaces": "a  b c",
    "Colon": "a: b",
    "Empty": "",
}


# --------------------------------------------------------------------------- helpers


async def connections(backend: ConformanceBackend, count: int) -> list[Transport]:
    return [await backend.connect() for _ in range(count)]


async def assert_rejected(
    attempt: Callable[[], Awaitable[object]], error: type[ValueError], **named: object
) -> None:
    """``attempt()`` raises ``error`` (a ``ValueError``) whose attributes hold the ``named``
    values and whose message quotes each of them."""
    with pytest.raises(error) as caught:
        await attempt()
    assert isinstance(caught.value, ValueError)
    for attribute, value in named.items():
        assert getattr(caught.value, attribute) == value
        assert repr(value) in str(caught.value)


async def collect_until_sentinel(sub: Subscription) -> list[Msg]:
    """Messages of ``sub`` before the first one whose payload is :data:`SENTINEL`."""
    got: list[Msg] = []
    with anyio.fail_after(WAIT):
        async for msg in sub:
            if msg.data == SENTINEL:
                return got
            got.append(msg)
    raise AssertionError(f"subscription to {sub.subject!r} ended before the sentinel arrived")


async def settle(publisher: Transport, *subscribers: Transport) -> None:
    """Return once every message ``publisher`` sent so far is buffered at each subscriber
    connection (a sentinel on a private subject, relying on per-connection order)."""
    with anyio.fail_after(WAIT):
        for connection in subscribers:
            barrier = await connection.subscribe(connection.new_inbox())
            await publisher.publish(barrier.subject, SENTINEL)
            assert (await barrier.next_msg(timeout=WAIT)).data == SENTINEL
            await barrier.unsubscribe()


async def take_pending(sub: Subscription) -> list[Msg]:
    """Read exactly the messages that are buffered now."""
    return [await sub.next_msg(timeout=WAIT) for _ in range(sub.pending_msgs)]
