"""Subscriptions of the in-memory broker (re-exported by ``transports.memory``).

A subscription is a bounded FIFO buffer filled synchronously by the broker's routing (it
is a :class:`~transports.memory.routing.Receiver`) and emptied by its consumer.  Its life
has three states:

* ``LIVE``: registered in the broker's sublist, receiving messages;
* ``STOPPING``: interest removed (``drain()``, or the ``unsubscribe(limit=N)`` count
  reached), the buffer is still handed out; it ends as soon as the buffer is empty;
* ``ENDED``: nothing more is handed out; iteration stops, ``next_msg`` raises
  :class:`~transports.base.SubscriptionClosedError`.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from transports.base import (
    Msg,
    SlowConsumerError,
    SubscriptionClosedError,
    TransportEvent,
    TransportEventKind,
)
from transports.memory.routing import Router
from transports.runtime import (
    Expiry,
    Waiter,
    current_home,
    current_task,
    new_waiter,
    now,
    running_loop,
    task_is_alive,
    task_of,
    wait,
    wake,
)

__all__ = ["MemorySubscription", "Owner", "ReplyInbox"]

_LIVE, _STOPPING, _ENDED = 0, 1, 2


class Owner(Protocol):
    """What a subscription uses of its connection (``connection.MemoryTransport``; declared
    here so that this module does not import the connection's)."""

    _expiry: Expiry  # deadlines of ``next_msg`` timeouts

    def _emit(self, event: TransportEvent) -> None:
        """Queue a connection event (the slow-consumer ``ERROR``)."""

    def _forget(self, sid: int) -> None:
        """The subscription ``sid`` has ended: drop it from the connection."""


class MemorySubscription:
    """A :class:`~transports.base.Subscription` held by the in-memory broker.

    Create it with ``MemoryTransport.subscribe``.  Every sentence of the protocol's
    docstrings holds; in addition several tasks may wait on one subscription at once
    (each message goes to exactly one of them).
    """

    def __init__(
        self,
        conn: Owner,
        router: Router,
        sid: int,
        subject: str,
        queue: str | None,
        pending_msgs_limit: int,
        pending_bytes_limit: int,
        subjects: tuple[str, ...] | None = None,
    ) -> None:
        """``subjects``: every subject of a ``subscribe_many`` subscription (``subject``
        is the first); ``None`` for a plain subscription to the one pattern ``subject``."""
        self._conn = conn
        self._router = router
        self._sid = sid
        self._subject = subject
        self._subjects = subjects or (subject,)
        self._queue = queue
        self._msgs_limit = pending_msgs_limit
        self._bytes_limit = pending_bytes_limit
        self._buffer: deque[Msg] = deque()
        self._pending_bytes = 0
        self._received = 0
        self._delivered = 0
        self._dropped = 0
        self._max_msgs = 0
        self._state = _LIVE
        self._waiters: list[Waiter[None]] = []
        self._drain_waiters: list[Waiter[None]] = []
        self.home = current_home()
        """The event loop the subscription was made on (messages are handed over there)."""
        self._holder: object = None  # the task processing the last message from __anext__
        self._iterated = False  # a consumer loop has waited in __anext__ (see wait_idle)

    def __repr__(self) -> str:
        state = ("live", "stopping", "ended")[self._state]
        return (
            f"<MemorySubscription sid={self._sid} subject={self._subject!r} "
            f"queue={self._queue!r} {state} pending={len(self._buffer)}>"
        )

    # ------------------------------------------------------------------ protocol properties

    @property
    def subject(self) -> str:
        """The subscribed pattern, wildcards included."""
        return self._subject

    @property
    def subjects(self) -> tuple[str, ...]:
        """Every subject subscribed: ``(subject,)`` unless made by ``subscribe_many``."""
        return self._subjects

    @property
    def queue(self) -> str | None:
        """The queue group, or ``None`` for a plain subscription."""
        return self._queue

    @property
    def pending_msgs(self) -> int:
        """Messages buffered and not yet taken by the consumer."""
        return len(self._buffer)

    @property
    def pending_bytes(self) -> int:
        """Payload bytes buffered and not yet taken by the consumer."""
        return self._pending_bytes

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
        return self._state != _ENDED

    # ------------------------------------------------------------------ broker side

    @property
    def connection(self) -> object:
        """The ``MemoryTransport`` that made this subscription."""
        return self._conn

    def deliver(self, msg: Msg) -> None:
        """Buffer ``msg`` (called by the broker's routing, only while ``LIVE``).

        Beyond a pending limit the message is dropped, ``dropped`` grows and an
        ``ERROR`` event is queued on the owning connection.  Never blocks, never runs
        consumer code.
        """
        if self._state == _ENDED:  # handed over from another loop after it ended
            return
        self._received += 1
        if self._max_msgs and self._received >= self._max_msgs:
            self._stop_interest()
        buffer = self._buffer
        size = len(msg.data)
        if len(buffer) >= self._msgs_limit or self._pending_bytes + size > self._bytes_limit:
            self._drop()
            return
        buffer.append(msg)
        self._pending_bytes += size
        waiters = self._waiters
        if waiters:
            for waiter in waiters:
                if not waiter.done():  # wake(), inlined: the hot path
                    try:
                        waiter.set_result(None)
                    except RuntimeError:  # its event loop is closed / its trio run is over
                        continue
            waiters.clear()

    def _drop(self) -> None:
        """Count one message dropped as a slow consumer and report it (``ERROR`` event)."""
        self._dropped += 1
        self._conn._emit(TransportEvent(TransportEventKind.ERROR, SlowConsumerError(self._subject)))
        if not self._buffer and self._state == _STOPPING:
            self._end()

    def deliver_dropped(self, msg: Msg) -> None:
        """Route ``msg`` here but drop it as a slow consumer would (forced by a fault rule)."""
        self._received += 1
        if self._max_msgs and self._received >= self._max_msgs:
            self._stop_interest()
        self._drop()

    def _attach(self) -> None:
        """Re-register interest after the connection reconnected (only while ``LIVE``)."""
        if self._state == _LIVE:
            self._register()

    def _detach(self) -> None:
        """Withdraw interest while the connection is disconnected; the state is kept."""
        if self._state == _LIVE:
            self._unregister()

    def _stop_interest(self) -> None:
        """Leave the sublist: no message is routed here any more."""
        if self._state == _LIVE:
            self._state = _STOPPING
            self._unregister()

    def _register(self) -> None:
        """Register interest with the broker's router under every subject."""
        for subject in self._subjects:
            self._router.add_interest(subject, self, self._queue)

    def _unregister(self) -> None:
        for subject in self._subjects:
            self._router.remove_interest(subject, self, self._queue)

    def _discard(self) -> None:
        """Forget buffered messages (they are not delivered)."""
        self._buffer.clear()
        self._pending_bytes = 0

    def _end(self) -> None:
        """Enter ``ENDED``: wake every waiter, release drainers, leave the connection."""
        self._state = _ENDED
        for waiter in self._waiters:
            wake(waiter, None)
        self._waiters.clear()
        for waiter in self._drain_waiters:
            wake(waiter, None)
        self._drain_waiters.clear()
        self._conn._forget(self._sid)

    def _close(self) -> None:
        """End at once, discarding the buffer (unsubscribe, connection close)."""
        if self._state != _ENDED:
            self._stop_interest()
            self._discard()
            self._end()

    def _begin_drain(self) -> None:
        """Stop interest, keep the buffer; end now if it is already empty."""
        if self._state != _ENDED:
            self._stop_interest()
            if not self._buffer:
                self._end()

    async def _wait_ended(self) -> None:
        if self._state != _ENDED:
            waiter: Waiter[None] = new_waiter()
            self._drain_waiters.append(waiter)
            await waiter

    def idle_state(self, caller: object) -> tuple[int, bool]:
        """For ``MemoryBroker.wait_idle`` (the rule is in :mod:`transports.memory.idle`):
        the messages buffered for a consumer loop (``0`` for a probe only read with
        ``next_msg``), and whether a consumer other than ``caller`` still handles the
        message it took from ``__anext__``."""
        holder = self._holder
        handling = (
            holder is not None
            and holder is not caller
            and self._state != _ENDED
            and task_is_alive(holder)
        )
        return (len(self._buffer) if self._iterated or handling else 0), handling

    @property
    def routed(self) -> tuple[int, int]:
        """``(received, dropped)`` so far: messages routed here, and those of them dropped as
        a slow consumer (compared around one dispatch, they tell whether it came here)."""
        return self._received, self._dropped

    @property
    def last_position(self) -> int:
        """The position (1-based, in hand-out order) of the newest buffered message."""
        return self._delivered + len(self._buffer)

    def finished_with(self, position: int, caller: object) -> bool | None:
        """Has the consumer finished with the message at ``position`` (see
        :attr:`last_position`)?  True once it was discarded unread or its consumer loop
        came back for another message (or its task ended, or it is ``caller``); ``None``
        when this cannot be known: it was taken with ``next_msg``, by no consumer loop."""
        if self._delivered < position:
            return self._state == _ENDED  # not taken yet; or never will be: discarded
        looped = self._iterated or self._holder is not None
        if self._delivered > position and looped:
            return True  # the loop came back for a later message
        holder = self._holder
        if holder is not None:
            return holder is caller or not task_is_alive(holder)
        return True if self._iterated else None

    # ------------------------------------------------------------------ consumer side

    def _take(self) -> Msg:
        msg = self._buffer.popleft()
        self._pending_bytes -= len(msg.data)
        self._delivered += 1
        if self._state == _STOPPING:
            if self._max_msgs and self._delivered >= self._max_msgs:
                self._discard()  # unsubscribe(limit): at most `limit` are handed out
            if not self._buffer:
                self._end()
        return msg

    def _park(self) -> Waiter[None]:
        """A waiter woken when a message is pushed or the subscription ends.
        The caller awaits it and calls :meth:`_unpark` if the wait raises."""
        waiter: Waiter[None] = new_waiter()
        self._waiters.append(waiter)
        return waiter

    def _unpark(self, waiter: Waiter[None]) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)

    def __aiter__(self) -> MemorySubscription:
        return self

    async def __anext__(self) -> Msg:
        """Wait for the next message; ``StopAsyncIteration`` once the subscription ended
        and its buffer is exhausted."""
        # For MemoryBroker.wait_idle: the consumer is back, so it has finished with the last
        # message; it holds the one returned below until it comes back again.
        self._holder = None
        buffer = self._buffer
        loop = running_loop()
        while not buffer:
            if self._state != _LIVE:
                raise StopAsyncIteration
            self._iterated = True  # a consumer loop (it waits here): its buffer is awaited
            waiter: Waiter[None] = loop.create_future() if loop is not None else new_waiter()
            self._waiters.append(waiter)  # _park(), inlined: the hot path
            try:
                await waiter
            except BaseException:
                self._unpark(waiter)
                raise
        self._holder = task_of(loop) if loop is not None else current_task()
        return self._take()

    async def next_msg(self, timeout: float | None = None) -> Msg:
        """Wait up to ``timeout`` seconds (``None``: forever, ``0``: only what is buffered).

        Raises builtin :class:`TimeoutError` when nothing arrives in time,
        :class:`SubscriptionClosedError` once the subscription ended and its buffer is
        exhausted, and ``ValueError`` for a negative or NaN ``timeout``.
        """
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"invalid timeout {timeout!r}: must be None or a number >= 0")
        buffer = self._buffer
        deadline = None if timeout is None else now() + timeout
        while not buffer:
            if self._state != _LIVE:
                raise SubscriptionClosedError(self._subject)
            remaining = None if deadline is None else deadline - now()
            waiter = self._park()
            try:
                if remaining is None:
                    await waiter
                else:
                    await wait(waiter, remaining, self._conn._expiry)
            except BaseException:
                self._unpark(waiter)
                raise
        return self._take()

    async def unsubscribe(self, limit: int = 0) -> None:
        """Remove interest.

        ``limit == 0``: when this returns nothing more is delivered and the buffer is
        discarded.  ``limit > 0``: the subscription stops receiving once ``limit``
        messages in total have been routed to it (counting those already received, and
        like nats-server counting ones dropped as slow consumer), and ends once ``limit``
        messages in total have been handed to the consumer (what it still buffers then
        is discarded, as with nats-py) or its buffer is consumed.  No effect on an ended
        subscription.  Raises
        ``ValueError`` for a negative or non-int ``limit``.
        """
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise ValueError(f"invalid limit {limit!r}: must be an int >= 0")
        if self._state == _ENDED:
            return
        if limit == 0 or self._delivered >= limit:
            self._close()
            return
        self._max_msgs = limit
        if self._received >= limit:
            self._begin_drain()

    async def drain(self) -> None:
        """Stop interest at once; return once every buffered message has been taken
        (the iterator then ends).  No effect on an ended subscription.  Also returns
        when the subscription ends otherwise (``unsubscribe()``, connection close)."""
        self._begin_drain()
        await self._wait_ended()


class ReplyInbox:
    """One wildcard inbox subscription per connection serving all its ``request()`` calls
    (like nats-py's response multiplexer): the first reply per token wins.  A
    :class:`~transports.memory.routing.Receiver`."""

    __slots__ = ("_conn", "counter", "home", "pattern", "pending", "prefix")

    def __init__(self, conn: Owner, inbox: str) -> None:
        self._conn = conn
        self.home = current_home()
        """The event loop of the latest request (``request`` updates it)."""
        self.prefix = inbox + "."
        self.pattern = inbox + ".*"
        self.pending: dict[str, Waiter[Msg]] = {}
        self.counter = 0

    @property
    def connection(self) -> object:
        return self._conn

    @property
    def subjects(self) -> tuple[str, ...]:
        return (self.pattern,)

    def deliver(self, msg: Msg) -> None:
        waiter = self.pending.pop(msg.subject[len(self.prefix) :], None)
        if waiter is not None:
            self._conn._expiry.discard(waiter)
            wake(waiter, msg)

    def deliver_dropped(self, msg: Msg) -> None:
        """A reply lost as by a slow consumer (forced by a fault rule): reported, and the
        request waits on (it times out)."""
        self._conn._emit(TransportEvent(TransportEventKind.ERROR, SlowConsumerError(self.pattern)))
