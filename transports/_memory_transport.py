"""``MemoryTransport``: one connection to a ``transports.memory.MemoryBroker``.

Implements :class:`transports.base.Transport`; re-exported by ``transports.memory``
(read that module's docstring for the broker semantics).  Validation happens here,
routing in ``MemoryBroker._dispatch``, buffering in ``MemorySubscription``.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from transports._memory_messages import Nuid
from transports._memory_outage import ConnectionFaults
from transports._memory_subscription import MemorySubscription
from transports.base import (
    DEFAULT_PENDING_BYTES_LIMIT,
    DEFAULT_PENDING_MSGS_LIMIT,
    ConnectionClosedError,
    EventListener,
    FlushTimeoutError,
    Headers,
    Msg,
    NoRespondersError,
    RequestTimeoutError,
    SlowConsumerError,
    TransportError,
    TransportEvent,
    TransportEventKind,
)
from transports.events import EventListeners
from transports.runtime import (
    TIMED_OUT,
    Expiry,
    Waiter,
    call_soon,
    fail,
    new_waiter,
    running_loop,
    wait,
    wake,
)
from transports.subjects import (
    REQUEST_REPLY_LENGTH,
    check_message,
    check_subscribe_line,
    make_msg,
    pending_limit,
    positive_number,
    validate_pattern,
    validate_queue,
    validate_subject_list,
)

if TYPE_CHECKING:
    from transports.memory import MemoryBroker

__all__ = ["DEFAULT_PENDING_SIZE", "MemoryTransport"]

DEFAULT_PENDING_SIZE = 2 * 1024 * 1024
"""Bytes of publishes buffered while disconnected (nats-py's ``pending_size`` default)."""

_log = logging.getLogger("transports.memory")


class _ReplyMux:
    """One wildcard inbox subscription per connection serving all its ``request()`` calls
    (like nats-py's response multiplexer): the first reply per token wins."""

    __slots__ = ("_conn", "counter", "pattern", "pending", "prefix")

    def __init__(self, conn: MemoryTransport, inbox: str) -> None:
        self._conn = conn
        self.prefix = inbox + "."
        self.pattern = inbox + ".*"
        self.pending: dict[str, Waiter[Msg]] = {}
        self.counter = 0

    def _push(self, msg: Msg) -> None:
        waiter = self.pending.pop(msg.subject[len(self.prefix) :], None)
        if waiter is not None:
            self._conn._expiry.discard(waiter)
            wake(waiter, msg)

    def _push_dropped(self, msg: Msg) -> None:
        """A reply lost as by a slow consumer (forced by a fault rule): reported, and the
        request waits on (it times out)."""
        self._conn._emit(TransportEvent(TransportEventKind.ERROR, SlowConsumerError(self.pattern)))


class MemoryTransport(ConnectionFaults):
    """A connection to a :class:`MemoryBroker`; a :class:`~transports.base.Transport`.

    Beyond the protocol: ``drain()`` is bounded by ``drain_timeout`` (then it closes
    anyway and emits an ``ERROR`` event), and ``subscribe`` raises
    :class:`ConnectionClosedError` while the connection drains.

    Simulated network failures (:meth:`force_disconnect`, :meth:`force_reconnect`,
    :meth:`disconnected`) behave like nats-py losing and regaining its server; strict
    mode reporting goes through :meth:`handler_failed` (``transports.extensions.HandlerErrorSink``).
    """

    def __init__(
        self,
        broker: MemoryBroker,
        cid: int,
        name: str | None,
        drain_timeout: float,
        pending_size: int = DEFAULT_PENDING_SIZE,
    ) -> None:
        self._broker = broker
        self._cid = cid
        self._name = name
        self._drain_timeout = drain_timeout
        self._closed = False
        self._offline = False  # force_disconnect()ed and not yet reconnected
        self._outbox: list[Msg] = []
        self._outbox_bytes = 0
        self._pending_size = pending_size
        self._reconnect_waiters: list[Waiter[None]] = []
        self._draining = False
        self._subs: dict[int, MemorySubscription] = {}
        self._next_sid = 0
        self._listeners = EventListeners(_log)
        self._events: deque[TransportEvent] = deque()
        self._events_scheduled = False
        self._nuid = Nuid(random.Random(broker._id_rng.getrandbits(64)))
        self._mux: _ReplyMux | None = None
        self._closed_waiters: list[Waiter[None]] = []
        self._expiry = Expiry()

    def __repr__(self) -> str:
        state = (
            "closed"
            if self._closed
            else "draining"
            if self._draining
            else "disconnected"
            if self._offline
            else "open"
        )
        return f"<MemoryTransport cid={self._cid} name={self._name!r} {state}>"

    @property
    def broker(self) -> MemoryBroker:
        """The broker this connection belongs to."""
        return self._broker

    @property
    def cid(self) -> int:
        """Connection id, unique within the broker."""
        return self._cid

    @property
    def name(self) -> str | None:
        """The name given to ``connect``."""
        return self._name

    @property
    def max_payload(self) -> int:
        """Largest message ``publish`` and ``request`` accept: payload plus encoded headers,
        in bytes, as nats-server counts them."""
        return self._broker._max_payload

    @property
    def is_connected(self) -> bool:
        """True until the connection is closed, except while :meth:`force_disconnect` holds."""
        return not (self._closed or self._offline)

    @property
    def is_closed(self) -> bool:
        """True once ``close()`` or ``drain()`` has finished."""
        return self._closed

    @property
    def in_process(self) -> bool:
        """True: the broker runs in this process (``transports.extensions.InProcessBroker``)."""
        return True

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionClosedError()

    def new_inbox(self) -> str:
        """A fresh, unique subject ``_INBOX.<22-char id>``; works after close too."""
        return "_INBOX." + self._nuid.next()

    def _message(
        self,
        subject: str,
        data: bytes,
        reply: str | None,
        headers: Headers | None,
    ) -> Msg:
        """Validate a message about to be published (order: subjects, headers, payload,
        connection state) and build it."""
        broker = self._broker
        payload, copied, _ = check_message(
            subject,
            data,
            reply,
            headers,
            broker._max_payload,
            broker._known_subjects,
        )
        if self._closed:
            raise ConnectionClosedError()
        return make_msg(subject, payload, copied, reply)

    async def publish(
        self,
        subject: str,
        data: bytes = b"",
        *,
        reply: str | None = None,
        headers: Headers | None = None,
    ) -> None:
        """Publish one message (see ``Transport.publish``); never runs consumer code.

        Raises BadSubjectError, BadHeaderError, MaxPayloadError, ConnectionClosedError,
        and TypeError when ``data`` is not bytes-like.
        """
        self._broker._dispatch(self, self._message(subject, data, reply, headers))

    async def subscribe(
        self,
        subject: str,
        *,
        queue: str | None = None,
        pending_msgs_limit: int | None = None,
        pending_bytes_limit: int | None = None,
    ) -> MemorySubscription:
        """Subscribe (see ``Transport.subscribe``); live at the broker when it returns."""
        validate_pattern(subject)
        validate_queue(queue)
        check_subscribe_line(subject, queue)
        msgs_limit = pending_limit(
            "pending_msgs_limit", pending_msgs_limit, DEFAULT_PENDING_MSGS_LIMIT
        )
        bytes_limit = pending_limit(
            "pending_bytes_limit", pending_bytes_limit, DEFAULT_PENDING_BYTES_LIMIT
        )
        self._check_open()
        if self._draining:
            raise ConnectionClosedError("the connection is draining")
        self._next_sid += 1
        sub = MemorySubscription(self, self._next_sid, subject, queue, msgs_limit, bytes_limit)
        self._subs[self._next_sid] = sub
        if not self._offline:  # else registered by force_reconnect(), as nats-py re-subscribes
            self._broker._sublist.insert(subject, sub, queue)
        return sub

    async def subscribe_many(self, subjects: Sequence[str]) -> MemorySubscription:
        """One subscription to several concrete subjects (``transports.extensions``): the
        broker holds one entry per subject, all feeding one buffer (the default pending
        limits apply to that buffer as a whole)."""
        checked = validate_subject_list(subjects)
        self._check_open()
        if self._draining:
            raise ConnectionClosedError("the connection is draining")
        self._next_sid += 1
        sub = MemorySubscription(
            self,
            self._next_sid,
            checked[0],
            None,
            DEFAULT_PENDING_MSGS_LIMIT,
            DEFAULT_PENDING_BYTES_LIMIT,
            checked,
        )
        self._subs[self._next_sid] = sub
        if not self._offline:
            sub._register()
        return sub

    async def request(
        self,
        subject: str,
        data: bytes = b"",
        *,
        headers: Headers | None = None,
        timeout: float = 1.0,  # noqa: ASYNC109 (signature fixed by the Transport protocol)
    ) -> Msg:
        """Publish with a private reply subject and return the first reply.

        Raises NoRespondersError (promptly), RequestTimeoutError, ConnectionClosedError
        (also when closed while waiting), ValueError for a non-positive ``timeout``,
        and the validation errors of ``publish``.
        """
        broker = self._broker
        payload, copied, _ = check_message(
            subject,
            data,
            None,
            headers,
            broker._max_payload,
            broker._known_subjects,
            reply_length=REQUEST_REPLY_LENGTH,
        )
        if type(timeout) is not float or not timeout > 0.0:
            positive_number("timeout", timeout)
        self._check_open()
        mux = self._mux
        if mux is None:
            mux = self._mux = _ReplyMux(self, self.new_inbox())
            if not self._offline:
                broker._sublist.insert(mux.pattern, mux)
        mux.counter += 1
        token = str(mux.counter)
        msg = make_msg(subject, payload, copied, mux.prefix + token)
        loop = running_loop()
        waiter: Waiter[Msg] = loop.create_future() if loop is not None else new_waiter()
        mux.pending[token] = waiter  # the mux pops it (and its deadline) when the reply comes
        expiry = self._expiry
        expiry.add(waiter, timeout)
        try:
            self._broker._dispatch(self, msg)
            reply = await waiter
        except BaseException:  # cancelled, or closed (ConnectionClosedError)
            mux.pending.pop(token, None)
            expiry.discard(waiter)
            raise
        if reply is TIMED_OUT:
            mux.pending.pop(token, None)
            raise RequestTimeoutError(subject, timeout)
        if not reply.data and reply.headers is not None and reply.is_no_responders:
            raise NoRespondersError(subject)
        return reply

    async def flush(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 (protocol signature)
        """A checkpoint: everything published is already at the broker; delivers this
        connection's queued events.  While disconnected it waits for the reconnection
        (like nats-py's PING waiting for its PONG).

        Raises ConnectionClosedError after close (also when closed while waiting),
        FlushTimeoutError when still disconnected after ``timeout`` seconds, and
        ValueError for a non-positive ``timeout``.
        """
        positive_number("timeout", timeout)
        self._check_open()
        if self._offline:
            waiter: Waiter[None] = new_waiter()
            self._reconnect_waiters.append(waiter)
            try:
                await wait(waiter, timeout, self._expiry)
            except TimeoutError:
                raise FlushTimeoutError(
                    f"flush timed out after {timeout:g} s: the connection is disconnected"
                ) from None
            finally:
                if waiter in self._reconnect_waiters:
                    self._reconnect_waiters.remove(waiter)
        self._deliver_events()
        await anyio.lowlevel.checkpoint()

    async def drain(self) -> None:
        """Drain every subscription (see ``Subscription.drain``), then close.

        Bounded by ``drain_timeout``: past it the rest is discarded, an ``ERROR`` event
        reports it and the connection closes.  Concurrent calls all return once closed.
        Cancelling the draining call closes the connection at once.
        """
        if self._closed:
            return
        if self._draining:
            closed: Waiter[None] = new_waiter()
            self._closed_waiters.append(closed)
            await closed
            return
        self._draining = True
        subs = list(self._subs.values())
        try:
            for sub in subs:
                sub._begin_drain()
            with anyio.move_on_after(self._drain_timeout) as scope:
                for sub in subs:
                    await sub._wait_ended()
            if scope.cancelled_caught:
                left = sum(sub.pending_msgs for sub in subs)
                error = TransportError(
                    f"drain timed out after {self._drain_timeout:g} s; "
                    f"{left} buffered message(s) discarded"
                )
                self._emit(TransportEvent(TransportEventKind.ERROR, error))
        finally:
            await self.close()  # never suspends, so it completes even when cancelled

    async def close(self) -> None:
        """Close at once: subscriptions end (buffers discarded), pending requests fail
        with ConnectionClosedError, queued events are delivered, then ``CLOSED``
        (exactly once).  Idempotent."""
        if self._closed:
            return
        self._closed = True
        for sub in list(self._subs.values()):
            sub._close()
        mux, self._mux = self._mux, None
        if mux is not None:
            self._broker._sublist.remove(mux.pattern, mux)
            pending, mux.pending = mux.pending, {}
            for waiter in pending.values():
                fail(waiter, ConnectionClosedError("the connection was closed during the request"))
        self._broker._forget(self)
        if self._offline:
            self._offline = False
            self._broker._offline_changed(-1)
        self._outbox.clear()  # like nats-py, what a disconnected connection buffered is lost
        self._outbox_bytes = 0
        waiters, self._reconnect_waiters = self._reconnect_waiters, []
        for reconnect_waiter in waiters:
            fail(reconnect_waiter, ConnectionClosedError())
        self._expiry.close()
        self._emit(TransportEvent(TransportEventKind.CLOSED))
        self._deliver_events()
        for closed_waiter in self._closed_waiters:
            wake(closed_waiter, None)
        self._closed_waiters.clear()

    def add_event_listener(self, listener: EventListener) -> Callable[[], None]:
        """Call ``listener`` for every later event; returns its remover (idempotent).

        Raises TypeError for a non-callable.  After close nothing more is emitted.
        """
        return self._listeners.add(listener)

    def _emit(self, event: TransportEvent) -> None:
        """Queue ``event`` for the listeners; they run soon, never inside the caller."""
        self._events.append(event)
        if not self._events_scheduled:
            self._events_scheduled = True
            call_soon(self._deliver_events)

    def _deliver_events(self) -> None:
        self._events_scheduled = False
        events = self._events
        while events:
            self._listeners.emit(events.popleft())

    def _forget(self, sid: int) -> None:
        self._subs.pop(sid, None)

    async def __aenter__(self) -> MemoryTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
