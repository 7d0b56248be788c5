"""Simulated network failures and handler reports of a memory connection (a mixin of
``transports._memory_transport.MemoryTransport``; read that module first)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

from transports.base import Msg, TransportError, TransportEvent, TransportEventKind
from transports.runtime import Waiter, wake

if TYPE_CHECKING:
    from transports._memory_subscription import MemorySubscription
    from transports._memory_transport import MemoryTransport, _ReplyMux
    from transports.memory import MemoryBroker

__all__ = ["ConnectionFaults"]


class ConnectionFaults:
    """``force_disconnect`` / ``force_reconnect`` / ``disconnected`` and the
    ``HandlerErrorSink`` / ``HandlerTracker`` hooks of ``MemoryTransport``."""

    _broker: MemoryBroker
    _offline: bool
    _outbox: list[Msg]
    _outbox_bytes: int
    _pending_size: int
    _reconnect_waiters: list[Waiter[None]]
    _subs: dict[int, MemorySubscription]
    _mux: _ReplyMux | None
    _closed: bool

    if TYPE_CHECKING:

        def _check_open(self) -> None: ...

        def _emit(self, event: TransportEvent) -> None: ...

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
        self._offline = True  # the broker's dispatch now hands our publishes to _hold
        self._broker._offline_changed(+1)
        for sub in list(self._subs.values()):
            sub._detach()
        if self._mux is not None:
            self._broker._sublist.remove(self._mux.pattern, self._mux)
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
        self._broker._offline_changed(-1)
        for sub in list(self._subs.values()):
            sub._attach()
        if self._mux is not None:
            self._broker._sublist.insert(self._mux.pattern, self._mux)
        outbox, self._outbox, self._outbox_bytes = self._outbox, [], 0
        for msg in outbox:
            self._broker._dispatch(cast("MemoryTransport", self), msg)
        waiters, self._reconnect_waiters = self._reconnect_waiters, []
        for waiter in waiters:
            wake(waiter, None)
        self._emit(TransportEvent(TransportEventKind.RECONNECTED))

    @contextlib.contextmanager
    def disconnected(self) -> Iterator[ConnectionFaults]:
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
        return self._outbox_bytes

    def _hold(self, msg: Msg) -> None:
        """What the broker's dispatch does with our publishes while we are disconnected:
        buffer ``msg`` for the reconnection (raises when ``pending_size`` is exceeded)."""
        size = len(msg.data)
        if msg.headers:
            size += sum(len(name) + len(value.encode()) + 4 for name, value in msg.headers.items())
        if self._pending_size <= 0 or self._outbox_bytes + size > self._pending_size:
            raise TransportError(
                "reconnecting and the outbound buffer (pending_size) is full: "
                f"{self._outbox_bytes} + {size} bytes > {self._pending_size}"
            )
        self._outbox.append(msg)
        self._outbox_bytes += size

    # ------------------------------------------------------------------ strict mode

    def handler_failed(self, subject: str, error: Exception) -> None:
        """``transports.extensions.HandlerErrorSink``: a service handler on this connection raised
        ``error`` (not a ``ServiceError``) for a request on ``subject``.  Passed on to the
        broker, which keeps it when strict (see ``MemoryBroker.strict``).  Never raises."""
        self._broker._handler_failed(cast("MemoryTransport", self), subject, error)

    def handler_started(self) -> None:
        """``transports.extensions.HandlerTracker``: a service handler on this connection runs in
        a task of its own (``max_concurrency > 1``); ``MemoryBroker.wait_idle`` waits for it."""
        self._broker._handlers_running += 1

    def handler_finished(self) -> None:
        """``transports.extensions.HandlerTracker``: that handler is done."""
        self._broker._handlers_running -= 1
