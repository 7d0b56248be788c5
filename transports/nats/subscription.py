"""The ``Subscription`` of ``transports.nats``: a thin, fast iterator over a nats-py subscription.

It works on a few attributes of a nats-py ``Subscription`` (``_pending_queue``, the message
queue nats-py's reader task fills, and the counters ``_pending_size``, ``_received`` and
``_max_msgs``; pinned by ``test_nats_internals_we_rely_on``) and asks its owner, the
``NatsTransport``, for everything that talks to the server.

Why not nats-py's own iterator: it starts a task and an ``asyncio.wait`` per message, and it
does not end on every path our contract names.  Here the consumer awaits the nats-py queue
directly; when the subscription ends an end marker is queued behind the buffered messages,
so a waiting consumer wakes up.  The marker is put back whenever a consumer takes it (every
later ``__anext__`` stops too), and it never counts as an unfinished task of the queue, so
``queue.join()`` (used by drain) waits for real messages only.

:class:`NatsMultiSubscription` (``subscribe_many``) is the same iterator over several nats-py
subscriptions made to share one queue (:func:`share_queue`): one ``SUB`` per subject on the
wire, one buffer and one consumer here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from nats.aio.client import Client
from nats.aio.subscription import Subscription

from transports.base import (
    DEFAULT_PENDING_BYTES_LIMIT,
    DEFAULT_PENDING_MSGS_LIMIT,
    Msg,
    SubscriptionClosedError,
)
from transports.nats.incoming import to_msg

__all__ = [
    "NatsMultiSubscription",
    "NatsSubscription",
    "SubscriptionOwner",
    "raw_subscribe",
    "share_queue",
    "subscribe_shared",
]

_END: Any = object()
"""Queued once a subscription has ended: wakes and stops its consumers."""


class SubscriptionOwner(Protocol):
    """What a :class:`NatsSubscription` needs from its transport."""

    def _forget_subscription(self, sub: NatsSubscription) -> None:
        """Stop routing messages to ``sub`` (locally; sends nothing)."""

    async def _send_unsubscribe(self, sub: NatsSubscription, limit: int) -> None:
        """Send ``UNSUB`` (with ``limit`` when positive); return once the server has it."""

    async def _stop_interest(self, sub: NatsSubscription) -> None:
        """Send ``UNSUB`` and return once every message the server sent before it is queued."""

    def _unsubscribe_now(self, sids: Sequence[int]) -> None:
        """Queue a plain ``UNSUB`` for each of ``sids``, without waiting for the server."""


class NatsSubscription:
    """A :class:`transports.base.Subscription` over a nats-py subscription in iterator mode.

    Created by ``NatsTransport.subscribe``; see ``transports.base.Subscription`` for the
    contract.  Message order is the server's delivery order.
    """

    __slots__ = (
        "_delivered",
        "_drained",
        "_dropped",
        "_end_queued",
        "_ended",
        "_limit",
        "_owner",
        "_queue",
        "_queue_group",
        "_raw",
        "_subject",
        "_watch",
    )

    def __init__(
        self, owner: SubscriptionOwner, raw: Subscription, subject: str, queue: str | None
    ) -> None:
        self._owner = owner
        self._raw = raw
        self._queue: asyncio.Queue[Any] = raw._pending_queue
        self._subject = subject
        self._queue_group = queue
        self._delivered = 0
        self._dropped = 0
        self._limit = 0
        self._ended = False
        self._end_queued = False
        self._watch = False  # True once the per-message slow path (limit or end) applies
        self._drained: asyncio.Event | None = None

    def __repr__(self) -> str:
        state = "active" if not self._ended else "ended"
        return f"<NatsSubscription {self._subject!r} queue={self._queue_group!r} {state}>"

    # ------------------------------------------------------------------ properties

    @property
    def subject(self) -> str:
        """The subscribed pattern, wildcards included."""
        return self._subject

    @property
    def queue(self) -> str | None:
        """The queue group, or ``None`` for a plain subscription."""
        return self._queue_group

    @property
    def sid(self) -> int:
        """The subscription id on this connection (the server's ``sid``)."""
        return self._raw._id

    @property
    def sids(self) -> tuple[int, ...]:
        """Every subscription id on this connection: one per subject subscribed."""
        return (self._raw._id,)

    @property
    def pending_msgs(self) -> int:
        """Messages buffered and not yet taken by the consumer."""
        return max(0, self._queue.qsize() - self._end_queued)

    @property
    def pending_bytes(self) -> int:
        """Payload bytes buffered and not yet taken by the consumer."""
        return self._raw._pending_size

    @property
    def delivered(self) -> int:
        """Messages handed to the consumer so far."""
        return self._delivered

    @property
    def dropped(self) -> int:
        """Messages dropped because a pending limit was reached (slow consumer)."""
        return self._dropped

    @property
    def is_active(self) -> bool:
        """True until the subscription has ended."""
        return not self._ended

    # ------------------------------------------------------------------ consuming

    def __aiter__(self) -> NatsSubscription:
        return self

    async def __anext__(self) -> Msg:
        """Wait for the next message; ``StopAsyncIteration`` once the subscription ended
        and its buffer is exhausted."""
        queue = self._queue
        # a buffered message is taken without creating the `get()` coroutine (per message)
        msg = await queue.get() if queue.empty() else queue.get_nowait()
        if msg.__class__ is not Msg:  # the end marker, or a message built by nats-py
            if msg is _END:
                self._requeue_end()
                raise StopAsyncIteration
            msg = to_msg(msg)
        queue.task_done()
        self._took(msg)
        return msg

    async def next_msg(self, timeout: float | None = None) -> Msg:
        """Wait up to ``timeout`` seconds (``None``: forever) for the next message.

        Raises builtin :class:`TimeoutError` when none arrives in time,
        :class:`SubscriptionClosedError` once the subscription has ended and its buffer is
        exhausted, and ``ValueError`` for a negative ``timeout``.
        """
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"timeout must be None or >= 0 seconds, got {timeout!r}")
        try:
            if timeout is None or not self._queue.empty():
                return await self.__anext__()
            return await asyncio.wait_for(self.__anext__(), timeout)
        except StopAsyncIteration:
            raise SubscriptionClosedError(self._subject) from None
        except asyncio.TimeoutError:
            raise TimeoutError(f"no message on {self._subject!r} within {timeout:g} s") from None

    def _took(self, msg: Msg) -> None:
        """Count ``msg`` as taken by the consumer."""
        self._raw._pending_size -= len(msg.data)
        self._delivered += 1
        if self._watch:
            self._after_take()

    # ------------------------------------------------------------------ ending

    async def unsubscribe(self, limit: int = 0) -> None:
        """Remove interest (see ``transports.base.Subscription.unsubscribe``).

        Raises ``ValueError`` for a negative or non-integer ``limit``.
        """
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise ValueError(f"limit must be an int >= 0, got {limit!r}")
        if self._ended:
            return
        if (
            limit == 0
            or self._delivered >= limit
            or (self._received() >= limit and self._queue.empty())
        ):
            self._end(discard=True)
            await self._owner._send_unsubscribe(self, 0)
            return
        self._limit = limit
        self._cap(limit)
        self._watch = True
        await self._owner._send_unsubscribe(self, limit)

    async def drain(self) -> None:
        """Stop interest at once, keep what is buffered, return once the consumer took it all.

        The iterator then ends.  Concurrent calls all return at that point; calling it on an
        ended subscription does nothing.  If it is cancelled, the subscription ends anyway
        (buffered messages stay available to the consumer).
        """
        if self._ended:
            return
        if self._drained is not None:
            await self._drained.wait()
            return
        self._drained = asyncio.Event()
        try:
            await self._owner._stop_interest(self)
            await self._queue.join()
        finally:
            self._end(discard=False)
            self._drained.set()

    def _end(self, *, discard: bool) -> None:
        """End the subscription locally; with ``discard`` drop what is buffered.  Idempotent."""
        if self._ended:
            return
        self._ended = True
        self._watch = True
        self._owner._forget_subscription(self)
        queue = self._queue
        if discard:
            while not queue.empty():
                queue.get_nowait()
                queue.task_done()
            self._raw._pending_size = 0
        self._queue_end()

    def _queue_end(self) -> None:
        # A full queue has no waiting consumer; the marker is queued after the next take.
        if not self._end_queued and not self._queue.full():
            self._requeue_end()
            self._end_queued = True

    def _requeue_end(self) -> None:
        self._queue.put_nowait(_END)
        self._queue.task_done()  # the marker is not a message: join() must not wait for it

    def _after_take(self) -> None:
        """Slow path after a message was taken: queue the end marker or apply the limit."""
        if self._ended:
            self._queue_end()
            return
        limit = self._limit
        if limit and (
            self._delivered >= limit or (self._received() >= limit and self._queue.empty())
        ):
            self._end(discard=True)
            self._release_server()

    def _note_dropped(self) -> None:
        """nats-py dropped a message for us (slow consumer).  It counted the message toward
        an ``unsubscribe(limit)`` (as the server did): if that reached the limit with nothing
        left to hand out, the subscription is over."""
        self._dropped += 1
        limit = self._limit
        if limit and not self._ended and self._received() >= limit and self._queue.empty():
            self._end(discard=True)
            self._release_server()

    def _revoked(self) -> None:
        """The server refused or removed the subscription: end it, keeping what is buffered."""
        self._end(discard=False)

    # hooks of the slow paths, overridden by NatsMultiSubscription

    def _received(self) -> int:
        """Messages nats-py has received for this subscription (queued or taken)."""
        return self._raw._received

    def _cap(self, limit: int) -> None:
        self._raw._max_msgs = limit  # nats-py stops queueing once it has received `limit`

    def _release_server(self) -> None:
        """Ended by its limit: the server already dropped the subscription (it counts too)."""

    def _subject_of(self, sid: int) -> str:
        """The subject subscribed with ``sid`` (one of :attr:`sids`)."""
        return self._subject


async def raw_subscribe(
    nc: Client,
    subject: str,
    queue: str | None = None,
    msgs_limit: int = DEFAULT_PENDING_MSGS_LIMIT,
    bytes_limit: int = DEFAULT_PENDING_BYTES_LIMIT,
) -> Subscription:
    """A nats-py subscription in iterator mode, with our pending limits (``bytes_limit`` is
    the most it keeps: nats-py drops a message once its count reaches the limit)."""
    return await nc.subscribe(
        subject,
        queue=queue or "",
        pending_msgs_limit=msgs_limit,
        pending_bytes_limit=bytes_limit + 1,
    )


async def subscribe_shared(
    nc: Client,
    subjects: Sequence[str],
    unsubscribe_now: Callable[[Sequence[int]], None],
) -> list[Subscription]:
    """nats-py subscriptions to ``subjects``, one each (:func:`raw_subscribe` with the
    default limits: ``DEFAULT_PENDING_BYTES_LIMIT`` per subject), all feeding ONE queue of
    ``DEFAULT_PENDING_MSGS_LIMIT`` messages.

    If one fails, those already made are removed from nats-py's table and unsubscribed
    with ``unsubscribe_now`` (their sids), and the exception propagates.
    """
    shared: asyncio.Queue[Any] = asyncio.Queue(DEFAULT_PENDING_MSGS_LIMIT)
    raws: list[Subscription] = []
    try:
        for subject in subjects:
            raw = await raw_subscribe(nc, subject)
            raws.append(raw)
            share_queue(raw, shared)  # with what came while nats-py's subscribe awaited
    except BaseException:
        for raw in raws:
            nc._remove_sub(raw._id)
        unsubscribe_now([raw._id for raw in raws])
        raise
    return raws


def share_queue(raw: Subscription, queue: asyncio.Queue[Any]) -> None:
    """Make nats-py queue the messages of ``raw`` into ``queue`` from now on.

    Call it right after nats-py's ``subscribe`` returned, before any ``await``: nats-py's
    reader puts each message into ``raw._pending_queue`` when it arrives.  What arrived
    while ``subscribe`` was suspended (possible only when its flush had to wait) is moved
    over; if ``queue`` is full it is dropped, as nats-py drops what overflows.
    """
    own, raw._pending_queue = raw._pending_queue, queue
    while not own.empty():
        msg = own.get_nowait()
        if queue.full():
            raw._pending_size -= len(msg.data)
        else:
            queue.put_nowait(msg)


class NatsMultiSubscription(NatsSubscription):
    """A :class:`transports.extensions.MultiSubscription`: several nats-py subscriptions
    (one per subject, each with its own ``sid``) feeding one queue, read by one iterator.

    Created by ``NatsTransport.subscribe_many``.  ``sid`` is the first subject's.  nats-py
    counts each message's bytes on the subscription it came on; the subjects are concrete,
    so ``msg.subject`` names that subscription.  ``unsubscribe(limit)`` counts the messages
    of all subjects together.
    """

    __slots__ = ("_by_sid", "_by_subject", "_raws", "_subjects")

    def __init__(
        self,
        owner: SubscriptionOwner,
        raws: Sequence[Subscription],
        subjects: tuple[str, ...],
    ) -> None:
        """``raws[i]`` is the nats-py subscription to ``subjects[i]``; they share one queue."""
        super().__init__(owner, raws[0], subjects[0], None)
        self._raws = tuple(raws)
        self._subjects = subjects
        self._by_subject = dict(zip(subjects, self._raws, strict=True))
        self._by_sid = {raw._id: subject for subject, raw in self._by_subject.items()}

    def __repr__(self) -> str:
        state = "active" if not self._ended else "ended"
        return f"<NatsMultiSubscription {self._subjects!r} {state}>"

    @property
    def subjects(self) -> tuple[str, ...]:
        """Every subject subscribed, in the order given to ``subscribe_many``."""
        return self._subjects

    @property
    def sids(self) -> tuple[int, ...]:
        """The subscription ids on this connection, one per subject (in that order)."""
        return tuple(raw._id for raw in self._raws)

    @property
    def pending_bytes(self) -> int:
        """Payload bytes buffered and not yet taken by the consumer."""
        return sum(raw._pending_size for raw in self._raws)

    def _took(self, msg: Msg) -> None:
        source = self._by_subject.get(msg.subject)
        if source is not None:
            source._pending_size -= len(msg.data)
        self._delivered += 1
        if self._watch:
            self._after_take()

    def _end(self, *, discard: bool) -> None:
        if self._ended:
            return
        super()._end(discard=discard)
        if discard:
            for raw in self._raws:
                raw._pending_size = 0

    def _received(self) -> int:
        return sum(raw._received for raw in self._raws)

    def _cap(self, limit: int) -> None:
        # the server caps each subject at `limit`; the total is enforced here (_after_take)
        for raw in self._raws:
            raw._max_msgs = limit

    def _revoked(self) -> None:
        """The server removed one subject: end the whole subscription, UNSUB the others."""
        if not self._ended:
            self._end(discard=False)
            self._owner._unsubscribe_now(self.sids)

    def _release_server(self) -> None:
        """Ended by its limit: UNSUB the subjects the server still serves (it counts each
        subject's messages on its own, up to the limit)."""
        live = [raw._id for raw in self._raws if raw._received < raw._max_msgs]
        if live:
            self._owner._unsubscribe_now(live)

    def _subject_of(self, sid: int) -> str:
        return self._by_sid.get(sid, self._subject)
