"""Scatter/gather over any Transport: one request, every reply (ADR-32, Discovery and Status).

:func:`request_many` publishes one message with a fresh inbox as reply subject (the inbox
is subscribed *before* the publish, so no reply can be missed) and collects replies until
the first of:

1. ``max_wait`` seconds have passed since the publish (overall deadline);
2. ``max_count`` replies have been accepted -- it returns at once, without waiting more;
3. ``max_interval`` seconds passed without any reply, counted from the latest reply
   (inactivity / "stall"; applied only once the first reply has arrived, so the first
   reply may take up to ``max_wait``);
4. the broker's no-responders status arrives (nothing was subscribed): it returns the
   empty result at once;
5. on a transport that knows when every receiver of the request is done
   (``transports.extensions.ReplyGatherer``: the in-process memory broker), as soon as it
   says so -- every subscription the request reached has answered or returned without
   answering (the exact rule: ``transports.memory.gathering``).  The replies are the ones
   a real server gives; only the waiting is gone.  Over NATS, rules 1-4 (ADR-32).

Defaults (those of nats.js's services client): ``max_wait`` :data:`DEFAULT_MAX_WAIT`
(2.0 s); ``max_interval``
:data:`DEFAULT_MAX_INTERVAL` (0.3 s) -- except when ``max_count`` is given and
``max_interval`` is not: a caller who says how many replies it expects waits up to
``max_wait`` for them ("count" strategy, as nats.js and ``nats micro``).  Pass
``max_interval=math.inf`` to disable the inactivity rule altogether.

Replies are handed out in arrival order.  A ``parse`` function may turn each reply into a
value; a reply it rejects with ``ValueError`` is logged (logger ``micro.discovery``) and
skipped -- it does not count toward ``max_count``, but it is activity for the inactivity
rule.  :class:`Gathering` is the iterator form: an async iterator and an async context
manager (leaving the ``async with`` block, or exhausting the iterator, removes the inbox).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, TypeVar

import anyio

from micro._support import offers
from transports.base import (
    ConnectionClosedError,
    Headers,
    Msg,
    Subscription,
    SubscriptionClosedError,
    Transport,
)
from transports.extensions import ReplyGatherer, ReplyStream

__all__ = [
    "DEFAULT_MAX_INTERVAL",
    "DEFAULT_MAX_WAIT",
    "GatherLimits",
    "Gathering",
    "request_many",
    "request_many_iter",
]

T = TypeVar("T")

DEFAULT_MAX_WAIT = 2.0
"""Seconds a discovery waits at most, counted from the publish (as nats.js: 2 s)."""

DEFAULT_MAX_INTERVAL = 0.3
"""Seconds of silence after a reply that end a discovery (as nats.js and ``nats micro``)."""

_log = logging.getLogger("micro.discovery")


def _seconds(value: object, what: str, *, allow_inf: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"invalid {what} {value!r}: must be a number of seconds > 0")
    seconds = float(value)
    if math.isnan(seconds) or seconds <= 0 or (math.isinf(seconds) and not allow_inf):
        rule = "a number > 0" if allow_inf else "a finite number > 0"
        raise ValueError(f"invalid {what} {value!r}: must be {rule}")
    return seconds


@dataclass(frozen=True, slots=True)
class GatherLimits:
    """When a gathering ends: validated, with the defaults applied.

    ``max_interval`` is ``None`` when the inactivity rule does not apply.
    """

    max_wait: float
    max_count: int | None
    max_interval: float | None

    @classmethod
    def of(
        cls,
        max_wait: float | None = None,
        max_count: int | None = None,
        max_interval: float | None = None,
    ) -> GatherLimits:
        """Validate the three limits and apply the module's defaults.

        Raises ``ValueError`` naming the value: ``max_wait`` must be a finite number > 0,
        ``max_count`` an int >= 1, ``max_interval`` a number > 0 (``math.inf`` disables it).
        """
        wait = (
            DEFAULT_MAX_WAIT
            if max_wait is None
            else _seconds(max_wait, "max_wait", allow_inf=False)
        )
        if max_count is not None and (
            isinstance(max_count, bool) or not isinstance(max_count, int) or max_count < 1
        ):
            raise ValueError(f"invalid max_count {max_count!r}: must be None or an int >= 1")
        interval: float | None
        if max_interval is None:
            interval = DEFAULT_MAX_INTERVAL if max_count is None else None
        else:
            interval = _seconds(max_interval, "max_interval", allow_inf=True)
            if math.isinf(interval):
                interval = None
        return cls(wait, max_count, interval)


def _identity(msg: Msg) -> Msg:
    return msg


class _InboxReplies:
    """A :class:`~transports.extensions.ReplyStream` over any transport: an inbox
    subscription whose end is never known (the limits decide)."""

    __slots__ = ("_sub",)

    def __init__(self, sub: Subscription) -> None:
        self._sub = sub

    @property
    def inbox(self) -> str:
        return self._sub.subject

    async def next_reply(self, timeout: float) -> Msg | None:  # noqa: ASYNC109
        return await self._sub.next_msg(timeout=timeout)

    async def aclose(self) -> None:
        if self._sub.is_active:
            await self._sub.unsubscribe()


async def _publish(
    transport: Transport, subject: str, data: bytes, headers: Headers | None
) -> ReplyStream:
    """Subscribe a fresh inbox, then publish the request with it as reply subject."""
    if offers(transport, ReplyGatherer):
        return await transport.gather_replies(subject, data, headers=headers)
    sub = await transport.subscribe(transport.new_inbox())
    replies = _InboxReplies(sub)
    try:
        await transport.publish(subject, data, reply=sub.subject, headers=headers)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await _close_quietly(replies)
        raise
    return replies


async def _close_quietly(replies: ReplyStream) -> None:
    try:
        await replies.aclose()
    except Exception as exc:  # e.g. the connection closed meanwhile
        _log.debug("removing inbox %s failed: %s", replies.inbox, exc)


class Gathering(Generic[T]):
    """One scatter/gather in progress: ``async with`` it and ``async for`` over it.

    The request is published when iteration starts (first ``__anext__``) or on
    ``__aenter__``, whichever comes first.  Items come in arrival order; iteration ends
    under the rules of the module docstring.  After it ended, :attr:`no_responders` tells
    whether it ended on the no-responders status.

    Raises what ``transport.subscribe``/``publish`` raise (e.g. ``BadSubjectError``,
    ``ConnectionClosedError``), and ``ConnectionClosedError`` if the connection closes
    while gathering.  :attr:`complete` tells whether it ended because the transport knew
    every receiver was done (rule 5 of the module docstring).  Cancellation is safe: the
    inbox is removed by ``aclose()``, which ``__aexit__`` calls (shielded).
    """

    def __init__(
        self,
        transport: Transport,
        subject: str,
        data: bytes = b"",
        *,
        headers: Headers | None = None,
        limits: GatherLimits | None = None,
        parse: Callable[[Msg], T],
    ) -> None:
        self._transport = transport
        self._subject = subject
        self._data = data
        self._headers = headers
        self._limits = limits if limits is not None else GatherLimits.of()
        self._parse = parse
        self._replies: ReplyStream | None = None
        self._started = False
        self._done = False
        self._accepted = 0
        self._published_at = 0.0
        self._deadline = 0.0
        self._last_reply: float | None = None
        self.no_responders = False
        """True once the gathering ended because nobody was subscribed to the subject."""
        self.complete = False
        """True once the gathering ended because the transport reported every receiver of
        the request done (``transports.extensions.ReplyGatherer``)."""

    @property
    def subject(self) -> str:
        """The subject the request is (or will be) published to."""
        return self._subject

    @property
    def limits(self) -> GatherLimits:
        return self._limits

    @property
    def published_at(self) -> float:
        """``time.monotonic()`` right after the publish (``0.0`` before it); for RTTs."""
        return self._published_at

    @property
    def accepted(self) -> int:
        """Items handed out so far."""
        return self._accepted

    async def start(self) -> None:
        """Subscribe the inbox, then publish the request (once; later calls do nothing)."""
        if self._started:
            return
        self._started = True
        self._replies = await _publish(self._transport, self._subject, self._data, self._headers)
        self._published_at = time.monotonic()
        self._deadline = self._published_at + self._limits.max_wait

    async def aclose(self) -> None:
        """End the gathering now and remove the inbox (idempotent, never raises)."""
        self._done = True
        replies, self._replies = self._replies, None
        if replies is not None:
            with anyio.CancelScope(shield=True):
                await _close_quietly(replies)

    def __aiter__(self) -> Gathering[T]:
        return self

    async def __anext__(self) -> T:
        if not self._started:
            await self.start()
        limits = self._limits
        while not self._done:
            replies = self._replies
            if replies is None or (
                limits.max_count is not None and self._accepted >= limits.max_count
            ):
                break
            now = time.monotonic()
            wait = self._deadline - now
            if self._last_reply is not None and limits.max_interval is not None:
                wait = min(wait, self._last_reply + limits.max_interval - now)
            if wait <= 0:
                break
            try:
                msg = await replies.next_reply(wait)
            except TimeoutError:
                break
            except SubscriptionClosedError:
                await self.aclose()
                if self._transport.is_closed:
                    raise ConnectionClosedError(
                        f"the connection closed while gathering replies to {self._subject!r}"
                    ) from None
                raise StopAsyncIteration from None
            if msg is None:
                self.complete = True
                break
            if msg.is_no_responders:
                self.no_responders = True
                break
            self._last_reply = time.monotonic()
            try:
                item = self._parse(msg)
            except ValueError as exc:
                _log.warning("skipped a reply to %s: %s", self._subject, exc)
                continue
            self._accepted += 1
            return item
        await self.aclose()
        raise StopAsyncIteration

    async def collect(self) -> list[T]:
        """Every (remaining) item, in arrival order; the inbox is removed in any case."""
        items: list[T] = []
        try:
            async for item in self:
                items.append(item)
        finally:
            await self.aclose()
        return items

    async def __aenter__(self) -> Gathering[T]:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def request_many_iter(
    transport: Transport,
    subject: str,
    data: bytes = b"",
    *,
    headers: Headers | None = None,
    max_wait: float | None = None,
    max_count: int | None = None,
    max_interval: float | None = None,
) -> Gathering[Msg]:
    """The iterator form of :func:`request_many`: ``async with request_many_iter(...) as it``.

    Raises ``ValueError`` for bad limits at once (before anything is sent).
    """
    limits = GatherLimits.of(max_wait, max_count, max_interval)
    return Gathering(transport, subject, data, headers=headers, limits=limits, parse=_identity)


async def request_many(
    transport: Transport,
    subject: str,
    data: bytes = b"",
    *,
    headers: Headers | None = None,
    max_wait: float | None = None,
    max_count: int | None = None,
    max_interval: float | None = None,
) -> list[Msg]:
    """Publish once to ``subject`` and return every reply, in arrival order.

    Stops at the first of ``max_wait``, ``max_count``, ``max_interval`` of silence after
    a reply, or no responders (-> ``[]`` at once); see the module docstring for defaults.
    Raises ``ValueError`` for bad limits, and what the transport raises for a bad subject
    or a closed connection.
    """
    gathering = request_many_iter(
        transport,
        subject,
        data,
        headers=headers,
        max_wait=max_wait,
        max_count=max_count,
        max_interval=max_interval,
    )
    return await gathering.collect()
