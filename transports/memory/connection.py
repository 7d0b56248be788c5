"""``MemoryTransport``: one connection to a ``transports.memory.MemoryBroker``.

Implements :class:`transports.base.Transport`; re-exported by ``transports.memory``
(read that package's docstring for the broker semantics).  Validation happens here,
routing in :meth:`transports.memory.routing.Router.dispatch`, buffering in
``MemorySubscription``.  Simulated network failures (``force_disconnect`` and
``force_reconnect``) are here too: they only change what this connection does.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from types import TracebackType
from typing import Protocol

import anyio
import anyio.lowlevel

from transports.base import (
    DEFAULT_PENDING_BYTES_LIMIT,
    DEFAULT_PENDING_MSGS_LIMIT,
    NO_RESPONDERS_STATUS,
    STATUS_HEADER,
    ConnectionClosedError,
    EventListener,
    Headers,
    Msg,
    NoRespondersError,
    RequestTimeoutError,
    TransportError,
    TransportEvent,
    TransportEventKind,
)
from transports.events import EventListeners
from transports.memory.gathering import MemoryReplies, publish_tracked
from transports.memory.inbox import Nuid
from transports.memory.outbox import Outbox
from transports.memory.routing import Router
from transports.memory.subscription import MemorySubscription, ReplyInbox
from transports.memory.unmodelled import NotModelledError, unmodelled_feature
from transports.runtime import (
    TIMED_OUT,
    Expiry,
    Waiter,
    call_soon,
    current_home,
    fail,
    new_waiter,
    running_loop,
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

__all__ = ["DEFAULT_PENDING_SIZE", "Broker", "MemoryTransport"]

DEFAULT_PENDING_SIZE = 2 * 1024 * 1024
"""Bytes of publishes buffered while disconnected (nats-py's ``pending_size`` default)."""

_log = logging.getLogger("transports.memory")


class Broker(Protocol):
    """What a connection needs from its broker (``broker.MemoryBroker``; declared here so
    that this module does not import the broker's).  Routing goes through the broker's
    :class:`~transports.memory.routing.Router`, handed to the connection separately."""

    @property
    def max_payload(self) -> int:
        """Largest message accepted (payload plus encoded headers)."""

    @property
    def strict(self) -> bool:
        """Strict mode: mistakes fail the test instead of only being reported."""

    def report_handler_failure(
        self, connection: MemoryTransport, subject: str, error: Exception
    ) -> None:
        """A service handler on ``connection`` raised ``error`` (kept in strict mode)."""

    def handler_started(self) -> None:
        """A service handler runs in a task of its own (``wait_idle`` waits for it)."""

    def handler_finished(self) -> None:
        """That handler is done."""

    @property
    def handlers_running(self) -> int:
        """Handlers announced by ``handler_started`` and not finished yet."""

    def connection_closed(self, connection: MemoryTransport) -> None:
        """``connection`` has closed: forget it."""


class MemoryTransport:
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
        broker: Broker,
        router: Router,
        nuid: Nuid,
        cid: int,
        name: str | None,
        drain_timeout: float,
        pending_size: int = DEFAULT_PENDING_SIZE,
    ) -> None:
        """Made by ``MemoryBroker.connect`` (its arguments are checked there); ``nuid``
        mints this connection's inbox ids."""
        self._broker = broker
        self._router = router
        self._max_payload = broker.max_payload
        self._cid = cid
        self._name = name
        self._drain_timeout = drain_timeout
        self._closed = False
        self._offline = False  # force_disconnect()ed and not yet reconnected
        self._outbox = Outbox(pending_size)
        self._draining = False
        self._subs: dict[int, MemorySubscription] = {}
        self._next_sid = 0
        self._listeners = EventListeners(_log)
        self._events: deque[TransportEvent] = deque()
        self._events_scheduled = False
        self._nuid = nuid
        self._mux: ReplyInbox | None = None
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
    def broker(self) -> Broker:
        """The broker this connection belongs to (a ``MemoryBroker``)."""
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
    def subscriptions(self) -> list[MemorySubscription]:
        """This connection's subscriptions that have not ended, oldest first."""
        return list(self._subs.values())

    @property
    def max_payload(self) -> int:
        """Largest message ``publish`` and ``request`` accept: payload plus encoded headers,
        in bytes, as nats-server counts them."""
        return self._max_payload

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
        payload, copied, _ = check_message(
            subject,
            data,
            reply,
            headers,
            self._max_payload,
            self._router.known_subjects,
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
        msg = self._message(subject, data, reply, headers)
        if self._offline:
            self._outbox.hold(msg)
        else:
            self._router.dispatch(self, msg)

    async def gather_replies(
        self, subject: str, data: bytes = b"", *, headers: Headers | None = None
    ) -> MemoryReplies:
        """A request whose replies end once every receiver is done: the
        ``transports.extensions.ReplyGatherer`` rule is in ``transports.memory.gathering``."""
        limits = (DEFAULT_PENDING_MSGS_LIMIT, DEFAULT_PENDING_BYTES_LIMIT)
        inbox = self._add_subscription(self.new_inbox(), None, *limits, None)
        try:
            msg = self._message(subject, data, inbox.subject, headers)
            if self._offline:
                self._outbox.hold(msg)
        except BaseException:
            inbox._close()
            raise
        return publish_tracked(self._router, self, inbox, msg, self._broker, not self._offline)

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
        return self._add_subscription(subject, queue, msgs_limit, bytes_limit, None)

    async def subscribe_many(self, subjects: Sequence[str]) -> MemorySubscription:
        """One subscription to several concrete subjects (``transports.extensions``): the
        broker holds one entry per subject, all feeding one buffer (the default pending
        limits apply to that buffer as a whole)."""
        checked = validate_subject_list(subjects)
        return self._add_subscription(
            checked[0], None, DEFAULT_PENDING_MSGS_LIMIT, DEFAULT_PENDING_BYTES_LIMIT, checked
        )

    def _add_subscription(
        self,
        subject: str,
        queue: str | None,
        msgs_limit: int,
        bytes_limit: int,
        subjects: tuple[str, ...] | None,
    ) -> MemorySubscription:
        """Make a subscription (arguments already checked) and register its interest."""
        self._check_open()
        if self._draining:
            raise ConnectionClosedError("the connection is draining")
        self._next_sid += 1
        sub = MemorySubscription(
            self, self._router, self._next_sid, subject, queue, msgs_limit, bytes_limit, subjects
        )
        self._subs[self._next_sid] = sub
        if not self._offline:  # else registered by force_reconnect(), as nats-py re-subscribes
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
        payload, copied, _ = check_message(
            subject,
            data,
            None,
            headers,
            self._max_payload,
            self._router.known_subjects,
            reply_length=REQUEST_REPLY_LENGTH,
        )
        if type(timeout) is not float or not timeout > 0.0:
            positive_number("timeout", timeout)
        self._check_open()
        mux = self._mux
        if mux is None:
            mux = self._mux = ReplyInbox(self, self.new_inbox())
            if not self._offline:
                self._router.add_interest(mux.pattern, mux)
        elif self._router.is_shared:
            mux.home = current_home()  # replies are handed over to this request's loop
        mux.counter += 1
        token = str(mux.counter)
        msg = make_msg(subject, payload, copied, mux.prefix + token)
        loop = running_loop()
        waiter: Waiter[Msg] = loop.create_future() if loop is not None else new_waiter()
        mux.pending[token] = waiter  # the mux pops it (and its deadline) when the reply comes
        expiry = self._expiry
        expiry.add(waiter, timeout)
        try:
            if self._offline:
                self._outbox.hold(msg)
            else:
                self._router.dispatch(self, msg)
            reply = await waiter
        except BaseException:  # cancelled, or closed (ConnectionClosedError)
            mux.pending.pop(token, None)
            expiry.discard(waiter)
            raise
        if reply is TIMED_OUT:
            mux.pending.pop(token, None)
            raise RequestTimeoutError(subject, timeout)
        headers = reply.headers
        if headers is not None and headers.get(STATUS_HEADER) == NO_RESPONDERS_STATUS:
            feature = unmodelled_feature(subject) if self._broker.strict else None
            if feature is not None:
                raise NotModelledError(subject, feature)
            raise NoRespondersError(subject)  # any 503 reply, body or not (as nats-py)
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
            await self._outbox.wait_reconnected(timeout, self._expiry)
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
            self._router.remove_interest(mux.pattern, mux)
            pending, mux.pending = mux.pending, {}
            for waiter in pending.values():
                fail(waiter, ConnectionClosedError("the connection was closed during the request"))
        self._broker.connection_closed(self)
        self._offline = False
        self._outbox.discard()  # like nats-py, what a disconnected connection buffered is lost
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

    # ------------------------------------------------------------------ simulated outages

    def force_disconnect(self) -> None:
        """Simulate losing the server, as nats-py experiences it; :meth:`force_reconnect`
        ends it.  Synchronous, so it may be called from anywhere (a test, a handler, an
        event listener).  While disconnected:

        * ``is_connected`` is False (``is_closed`` stays False) and a ``DISCONNECTED`` event
          is emitted (listeners run soon, never inside this call);
        * the broker routes nothing to this connection: its subscriptions and request
          inbox are withdrawn, so messages published meanwhile by others are *not*
          delivered to it later (as with a real server); what its subscriptions had
          already buffered stays readable;
        * ``publish`` and ``request`` buffer their messages (up to ``pending_size`` bytes
          of payload plus headers, a ``connect()`` option defaulting to nats-py's 2 MiB;
          ``0`` disables buffering); beyond it they raise :class:`TransportError` and the
          message is not buffered;
        * ``subscribe`` returns at once and the subscription becomes live on reconnect;
          ``unsubscribe``/``drain`` work locally;
        * ``flush`` waits for the reconnection (``FlushTimeoutError`` after its timeout);
        * a pending ``request`` keeps waiting; its reply is lost if it was published
          while this connection was away (then it times out);
        * ``close()`` discards the buffered publishes and emits ``CLOSED``.

        No effect when already disconnected.  Raises :class:`ConnectionClosedError` after
        close.
        """
        self._check_open()
        if self._offline:
            return
        self._offline = True  # publish and request now hand their messages to the outbox
        for sub in list(self._subs.values()):
            sub._detach()
        if self._mux is not None:
            self._router.remove_interest(self._mux.pattern, self._mux)
        self._emit(TransportEvent(TransportEventKind.DISCONNECTED))

    def force_reconnect(self) -> None:
        """End a :meth:`force_disconnect`: in nats-py's order, re-register every live
        subscription (and the request inbox), then send the buffered publishes in publish
        order, then emit ``RECONNECTED`` and release waiting ``flush`` calls.

        No effect when connected.  Raises :class:`ConnectionClosedError` after close.
        """
        self._check_open()
        if not self._offline:
            return
        self._offline = False
        for sub in list(self._subs.values()):
            sub._attach()
        if self._mux is not None:
            self._router.add_interest(self._mux.pattern, self._mux)
        self._outbox.reconnected(partial(self._router.dispatch, self))
        self._emit(TransportEvent(TransportEventKind.RECONNECTED))

    @contextlib.contextmanager
    def disconnected(self) -> Iterator[MemoryTransport]:
        """``with conn.disconnected(): ...`` -- :meth:`force_disconnect` on entry,
        :meth:`force_reconnect` on exit (unless the connection was closed meanwhile)."""
        self.force_disconnect()
        try:
            yield self
        finally:
            if not self._closed:
                self.force_reconnect()

    @property
    def outbox_bytes(self) -> int:
        """Bytes (payload plus headers) of publishes buffered while disconnected."""
        return self._outbox.size

    # ------------------------------------------------------------------ strict mode

    def handler_failed(self, subject: str, error: Exception) -> None:
        """``transports.extensions.HandlerErrorSink``: a service handler on this connection raised
        ``error`` (not a ``ServiceError``) for a request on ``subject``.  Passed on to the
        broker, which keeps it when strict (see ``MemoryBroker.strict``).  Never raises."""
        self._broker.report_handler_failure(self, subject, error)

    def handler_started(self) -> None:
        """``transports.extensions.HandlerTracker``: a service handler on this connection runs in
        a task of its own (``max_concurrency > 1``); ``MemoryBroker.wait_idle`` waits for it."""
        self._broker.handler_started()

    def handler_finished(self) -> None:
        """``transports.extensions.HandlerTracker``: that handler is done."""
        self._broker.handler_finished()

    async def __aenter__(self) -> MemoryTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
