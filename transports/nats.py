"""The production transport: nats-py behind the ``Transport`` seam (asyncio only).

This module is the only one that imports ``nats`` (its helper ``_nats_errors`` is handed
nats-py's ``errors`` module through ``bind``).  Messages become :class:`transports.base.Msg`
at the edge; every nats-py exception and ``error_cb`` report goes through one helper
(``map_nats_error``) into our error tree.

nats-py internals used where its API falls short (pinned by ``test_nats_internals_we_rely_on``):

* a barrier after SUB, UNSUB and flush: nats-py's ``flush()`` writes its PING straight to the
  socket, possibly *ahead* of commands still queued for its flusher task (``Client._pending``),
  so one flush is no barrier.  We hand those to the socket first, then PING ourselves
  (``_nats_barrier``, via ``Client._pongs``): one round trip, shared by every barrier asked
  for in the same event-loop turn;
* ``Client.msg_class`` builds our ``Msg`` directly for our subscriptions (one object per
  message); a ``Subscription``'s queue and counters (``_nats_subscription``; the nats-py
  subscriptions of a ``subscribe_many`` are made to share one queue);
* ``Client._remove_sub`` (drain keeps in-flight messages), ``_flush_queue`` (an UNSUB sent
  without waiting) and ``Client._resp_map`` / ``_pongs`` (requests and barriers fail on close);
* ``Client._ps.parse``, ``_process_headers`` and ``_build_message`` are wrapped
  (``guard_incoming``): a message line nats-py cannot parse makes it reconnect, and a header
  block or subject it cannot decode kills its reader silently; any client on the network can
  send such messages.  We drop them (or their headers) and report an ``ERROR`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from nats import errors as nats_errors
from nats.aio.client import Client
from nats.protocol.command import unsub_cmd

from transports._nats_barrier import PingBarrier, queue_commands
from transports._nats_errors import bind, is_permanent_connect_error, map_nats_error
from transports._nats_subscription import (
    NatsMultiSubscription,
    NatsSubscription,
    drain_all,
    subscribe_shared,
)
from transports._nats_support import (
    ConnectAttempt,
    guard_incoming,
    msg_factory,
    pop_callbacks,
    server_list,
    subscription_error,
    to_msg,
)
from transports.base import (
    DEFAULT_PENDING_BYTES_LIMIT,
    DEFAULT_PENDING_MSGS_LIMIT,
    ConnectionClosedError,
    EventListener,
    Headers,
    Msg,
    PermissionViolationError,
    TransportError,
    TransportEvent,
    TransportEventKind,
)
from transports.events import EventListeners
from transports.subjects import (
    check_message,
    check_subscribe_line,
    pending_limit,
    positive_number,
    validate_pattern,
    validate_queue,
    validate_subject_list,
)

bind(nats_errors)  # _nats_errors maps with nats-py's error classes, imported only here

CLOSE_UNSUBSCRIBE_WAIT = 2.0
"""Longest ``close()`` waits for the server to acknowledge the connection's unsubscribes."""

__all__ = ["NatsMultiSubscription", "NatsSubscription", "NatsTransport", "connect_url"]

_logger = logging.getLogger(__name__)

_CALLBACKS = ("error_cb", "disconnected_cb", "reconnected_cb", "closed_cb")
_CONNECT_OPTIONS = frozenset(inspect.signature(Client.connect).parameters) - {"self", "servers"}
_UserCallback = Callable[..., Awaitable[None]]
_CLEANUP_LIMIT = 0.5
"""Seconds a failed connect may spend freeing its socket (nats-py's close can hang after a
failed TLS handshake: the stream's close waiter is never told)."""


class _ConnectAborted(Exception):
    """Raised from our ``error_cb`` to stop nats-py retrying a connect that must fail."""


class NatsTransport:
    """A :class:`transports.base.Transport` over a nats-py ``Client`` (asyncio only).

    ``NatsTransport(nc)`` wraps a connected client: its ``error_cb``, ``disconnected_cb``,
    ``reconnected_cb`` and ``closed_cb`` keep being called (ours are chained in front).
    ``await NatsTransport.connect(servers, **options)`` makes the client itself.
    """

    def __init__(self, nc: Client) -> None:
        """Wrap the connected nats-py client ``nc``; ``TypeError`` if it is not a nats-py
        client, ``ValueError`` if it never connected."""
        if not isinstance(nc, Client):
            raise TypeError(f"expected a nats-py Client (nats.aio.client.Client), got {nc!r}")
        if not (nc.is_connected or nc.is_reconnecting or nc.is_closed):
            raise ValueError(f"{nc!r} is not connected: connect it first, or use connect()")
        self._setup(nc, {name: getattr(nc, f"_{name}") for name in _CALLBACKS})
        for name, handler in self._handlers().items():
            setattr(nc, f"_{name}", handler)
        if nc.is_closed:
            self._finish_close()

    def _setup(self, nc: Client, user_callbacks: dict[str, _UserCallback | None]) -> None:
        self._nc = nc
        self._subs: dict[int, NatsSubscription] = {}
        self._draining: dict[NatsSubscription, None] = {}  # drains begun, not yet ended
        self._known_subjects: dict[str, None] = {}  # publish subjects found valid
        self._pings = PingBarrier(
            nc, nats_errors.ConnectionClosedError, nats_errors.FlushTimeoutError
        )
        # nats-py builds every incoming message with nc.msg_class: make it build ours
        nc.msg_class = msg_factory(self._subs, nc.msg_class)  # type: ignore[assignment]
        self._listeners = EventListeners(_logger)
        guard_incoming(nc, partial(self._emit, TransportEventKind.ERROR), nats_errors.ProtocolError)
        self._user_callbacks = user_callbacks
        self._closing = False  # close()/drain() was asked for by us
        self._close_finished = False
        self._drain_done: asyncio.Event | None = None
        self._errors_seen = 0
        self._denied: dict[str, int] = {}  # subscription denied -> error counter at the time
        self._baseline_error = nc.last_error
        self._attempt: ConnectAttempt | None = None  # while connect() runs

    def _handlers(self) -> dict[str, _UserCallback]:
        """Our nats-py callbacks, by option name; each calls the user's one after ours."""
        return {name: getattr(self, f"_on_{name.removesuffix('_cb')}") for name in _CALLBACKS}

    @classmethod
    async def connect(
        cls, servers: str | Sequence[str] = "nats://127.0.0.1:4222", **options: Any
    ) -> NatsTransport:
        """Connect to NATS; ``options`` are nats-py's ``Client.connect`` options, all of them.

        ``servers`` is one URL, a comma-separated string or a list.  User callbacks among
        the options (``error_cb``, ``closed_cb``, ...) are still called.  With
        ``allow_reconnect=False`` or ``max_reconnect_attempts=0`` each server is tried once
        (nats-py alone would retry forever).  Rejected credentials or a failed TLS handshake
        on every server end the attempt at once (:class:`AuthorizationError`,
        :class:`ConnectFailedError`), whatever the reconnect options: retrying cannot help.
        Raises ``TypeError`` for an unknown option or a callback that is not an
        ``async def``, ``ValueError`` for bad ``servers``, and :class:`TransportError`
        naming the servers and the reason when connecting fails.
        """
        user_callbacks = pop_callbacks(options, _CONNECT_OPTIONS, _CALLBACKS)
        urls = server_list(servers)
        self = cls.__new__(cls)
        self._setup(Client(), user_callbacks)
        options.update(self._handlers())
        options.setdefault("skip_subject_validation", True)  # ours ran first, and is stricter
        fail_fast = (
            not options.get("allow_reconnect", True) or options.get("max_reconnect_attempts") == 0
        )
        attempt = self._attempt = ConnectAttempt(len(urls), len(urls) if fail_fast else None)
        try:
            await self._nc.connect(urls, **options)
        except Exception as exc:
            with contextlib.suppress(Exception):  # free the socket, no user callbacks
                await asyncio.wait_for(self._nc._close(Client.CLOSED, do_cbs=False), _CLEANUP_LIMIT)
            raise attempt.failure(map_nats_error(exc), urls) from exc
        finally:
            self._attempt = None
        self._baseline_error = self._nc.last_error
        return self

    # ------------------------------------------------------------------ properties

    @property
    def nc(self) -> Client:
        """The underlying nats-py client, for what the seam does not cover."""
        return self._nc

    @property
    def max_payload(self) -> int:
        """Largest message the server accepts, in bytes (the server counts headers too)."""
        return self._nc.max_payload

    @property
    def is_connected(self) -> bool:
        """True while connected to the server (False while reconnecting and after close)."""
        return self._nc.is_connected

    @property
    def is_closed(self) -> bool:
        """True once closed or drained, or once nats-py gave up reconnecting."""
        return self._nc.is_closed

    def __repr__(self) -> str:
        state = "closed" if self.is_closed else "connected" if self.is_connected else "down"
        return f"<NatsTransport {state} {self._nc.connected_url!r}>"

    def new_inbox(self) -> str:
        """A fresh unique reply subject (``_INBOX.<nuid>`` unless ``inbox_prefix`` is set).

        Pure and local: it works even after ``close()``."""
        return self._nc.new_inbox()

    # ------------------------------------------------------------------ messaging

    async def publish(
        self,
        subject: str,
        data: bytes = b"",
        *,
        reply: str | None = None,
        headers: Headers | None = None,
    ) -> None:
        """Publish one message (see ``Transport.publish``).  :class:`MaxPayloadError` when
        payload plus encoded headers exceed ``max_payload`` (the server would disconnect)."""
        nc = self._nc
        payload, copied, size = check_message(
            subject, data, reply, headers, nc._max_payload, self._known_subjects
        )
        try:
            await nc.publish(subject, payload, reply or "", copied)
        except Exception as exc:
            raise map_nats_error(
                exc, subject=subject, size=size, max_payload=self.max_payload
            ) from exc

    async def request(
        self,
        subject: str,
        data: bytes = b"",
        *,
        headers: Headers | None = None,
        timeout: float = 1.0,
    ) -> Msg:
        """Publish with a private reply subject and return the first reply (see
        ``Transport.request``; also raises :class:`MaxPayloadError` like ``publish``)."""
        payload, copied, size = check_message(
            subject,
            data,
            None,
            headers,
            self._nc._max_payload,
            self._known_subjects,
            reply_length=len(self.new_inbox()) + 23,  # nats-py: <inbox prefix>.<nuid>.<nuid>
        )
        positive_number("timeout", timeout)
        if self._nc.is_closed:
            raise ConnectionClosedError()
        try:
            raw = await self._nc.request(subject, payload, timeout, headers=copied)
        except Exception as exc:
            raise map_nats_error(
                exc, subject=subject, timeout=timeout, size=size, max_payload=self.max_payload
            ) from exc
        return to_msg(raw)

    async def subscribe(
        self,
        subject: str,
        *,
        queue: str | None = None,
        pending_msgs_limit: int | None = None,
        pending_bytes_limit: int | None = None,
    ) -> NatsSubscription:
        """Subscribe; returns once the server has the subscription (see ``Transport.subscribe``).

        While the connection is reconnecting it returns at once (nats-py re-subscribes
        after reconnecting).  Raises :class:`PermissionViolationError` when the server
        refuses the subscription.  If the server removes it later (permissions changed by a
        configuration reload), an ``ERROR`` event carrying a :class:`PermissionViolationError`
        with the subject as subscribed is emitted, then the subscription ends.
        """
        validate_pattern(subject)
        validate_queue(queue)
        check_subscribe_line(subject, queue)
        msgs_limit = pending_limit(
            "pending_msgs_limit", pending_msgs_limit, DEFAULT_PENDING_MSGS_LIMIT
        )
        bytes_limit = pending_limit(
            "pending_bytes_limit", pending_bytes_limit, DEFAULT_PENDING_BYTES_LIMIT
        )
        nc = self._nc
        if nc.is_closed:
            raise ConnectionClosedError()
        errors_before = self._errors_seen
        try:
            raw = await nc.subscribe(
                subject,
                queue=queue or "",
                pending_msgs_limit=msgs_limit,
                pending_bytes_limit=bytes_limit + 1,  # nats-py drops at >= its limit
            )
        except Exception as exc:
            raise map_nats_error(exc, subject=subject) from exc
        sub = NatsSubscription(self, raw, subject, queue)
        self._subs[raw._id] = sub
        await self._confirm(sub, (subject,), errors_before)
        return sub

    async def subscribe_many(self, subjects: Sequence[str]) -> NatsMultiSubscription:
        """One subscription to several concrete subjects: one plain ``SUB`` each, one buffer
        and iterator (see ``transports.extensions.MultiSubjectSubscriber``).

        Returns once the server has them all (at once while reconnecting, like
        ``subscribe``).  A subject the server refuses ends the whole subscription:
        :class:`PermissionViolationError` for that subject.
        """
        checked = validate_subject_list(subjects)
        if self._nc.is_closed:
            raise ConnectionClosedError()
        errors_before = self._errors_seen
        try:
            raws = await subscribe_shared(self._nc, checked, self._unsubscribe_now)
        except Exception as exc:
            raise map_nats_error(exc) from exc
        sub = NatsMultiSubscription(self, raws, checked)
        for sid in sub.sids:
            self._subs[sid] = sub
        await self._confirm(sub, checked, errors_before)
        return sub

    async def _confirm(self, sub: NatsSubscription, subjects: Sequence[str], since: int) -> None:
        """The barrier after ``SUB``: ends ``sub`` and raises if it fails, or if the server
        refused one of ``subjects`` (an error counted after ``since``, before the PONG)."""
        try:
            if self._nc.is_connected:
                await self._barrier()
        except BaseException:
            sub._end(discard=True)
            self._unsubscribe_now(sub.sids)  # the barrier's error is the one to report
            raise
        denied = [s for s in subjects if self._denied.pop(s.lower(), -1) >= since]
        if denied:
            sub._revoked()  # done already by _on_error, which recorded the denial
            if len(subjects) > 1 and self._nc.is_connected:  # _revoked UNSUBs the others:
                with contextlib.suppress(Exception):  # they are through when this raises
                    await self._barrier()
            raise PermissionViolationError("subscription", denied[0])

    async def _barrier(self, timeout: float = 10.0, commands: Sequence[bytes] = ()) -> None:
        """Send ``commands``, return once the server has processed everything sent so far.

        Barriers asked for in the same event-loop turn share one PING (``_nats_barrier``):
        a service's 9 + N concurrent subscribes or drains cost one round trip together.
        """
        try:
            await self._pings.barrier(timeout, commands)
        except Exception as exc:
            raise map_nats_error(exc, timeout=timeout) from exc

    async def flush(self, timeout: float = 10.0) -> None:
        """Return once everything published so far has reached the server.

        Raises ``ValueError`` for a non-positive timeout, :class:`ConnectionClosedError`
        after close and :class:`TransportError` when the server does not answer in time.
        """
        positive_number("timeout", timeout)
        if self._nc.is_closed:
            raise ConnectionClosedError()
        await self._barrier(timeout)

    # ------------------------------------------------------------------ subscription hooks

    def _forget_subscription(self, sub: NatsSubscription) -> None:
        self._draining.pop(sub, None)
        self._unroute(sub)

    def _unroute(self, sub: NatsSubscription) -> None:
        """No more messages for ``sub`` (it may still hold some for its consumer)."""
        for sid in sub.sids:
            self._subs.pop(sid, None)
            self._nc._remove_sub(sid)

    async def _send_unsubscribe(self, sub: NatsSubscription, limit: int) -> None:
        """UNSUB (one per sid), returning once the server has processed it (nothing while
        reconnecting: nats-py re-subscribes only what is still in its table)."""
        if self._nc.is_connected:  # the barrier writes them before its PING
            await self._barrier(commands=[unsub_cmd(sid, limit) for sid in sub.sids])

    def _unsubscribe_now(self, sids: Sequence[int]) -> None:
        """Plain UNSUB for ``sids``, queued for nats-py's flusher without waiting."""
        queue_commands(self._nc, [unsub_cmd(sid, 0) for sid in sids])

    async def _stop_interest(self, sub: NatsSubscription) -> None:
        """A drain begins: no more messages for ``sub``; it ends when its consumer took the
        rest, or when the connection closes first (which discards them)."""
        try:
            await self._send_unsubscribe(sub, 0)
        finally:
            self._unroute(sub)
            self._draining[sub] = None

    # ------------------------------------------------------------------ closing

    async def drain(self) -> None:
        """Drain every subscription, then close (see ``Transport.drain``).

        Bounded by nats-py's ``drain_timeout`` option: past it an ``ERROR`` event is
        emitted and the connection is closed anyway.  Does nothing after close.
        """
        if self._drain_done is not None:
            await self._drain_done.wait()
            return
        self._drain_done = asyncio.Event()
        self._closing = True
        nc = self._nc
        try:
            for error in await drain_all(self._subs.values(), nc.options.get("drain_timeout", 30)):
                self._emit(TransportEventKind.ERROR, map_nats_error(error))
            if not nc.is_closed:
                try:
                    await nc.drain()
                except Exception as exc:  # e.g. reconnecting: report, then close below
                    self._emit(TransportEventKind.ERROR, map_nats_error(exc))
        finally:
            if not nc.is_closed:
                await nc.close()
            self._finish_close()
            self._drain_done.set()

    async def close(self) -> None:
        """Close at once (see ``Transport.close``).  Idempotent.

        While connected, every subscription is unsubscribed first and the server's
        acknowledgement awaited (at most :data:`CLOSE_UNSUBSCRIBE_WAIT` seconds): a closed
        socket alone is noticed by the server a moment later, and until then it would still
        route messages (and queue-group turns) to this connection's subscriptions.
        """
        if not self._nc.is_closed:
            self._closing = True
            if self._subs and self._nc.is_connected:
                commands = [unsub_cmd(sid, 0) for sid in self._subs]
                with contextlib.suppress(Exception):  # closing regardless
                    await self._pings.barrier(CLOSE_UNSUBSCRIBE_WAIT, commands)
            try:
                await self._nc.close()
            except Exception as exc:
                self._finish_close()
                raise map_nats_error(exc) from exc
        self._finish_close()

    def _finish_close(self) -> None:
        """End subscriptions, fail pending requests, emit ``CLOSED``: once, however we closed."""
        if self._close_finished:
            return
        self._close_finished = True
        # once each (a multi has several sids); what they buffered is gone, as with nats-py
        for sub in [*dict.fromkeys(self._subs.values()), *self._draining]:
            sub._end(discard=True)
        self._pings.fail_waiting(self._nc._resp_map.values())  # barriers and requests
        last = self._nc.last_error
        if not self._closing and last is not None and last is not self._baseline_error:
            self._emit(TransportEventKind.ERROR, map_nats_error(last))
        self._emit(TransportEventKind.CLOSED)

    async def __aenter__(self) -> NatsTransport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ events

    def add_event_listener(self, listener: EventListener) -> Callable[[], None]:
        """Call ``listener`` for every later connection event; returns its remover."""
        return self._listeners.add(listener)

    def _emit(self, kind: TransportEventKind, error: TransportError | None = None) -> None:
        if self._listeners:
            self._listeners.emit(TransportEvent(kind, error))
        elif (
            error is not None
            and (self._attempt is None or self._attempt.budget is None)
            and not self._user_callbacks.get("error_cb")
        ):  # reported nowhere else (a fail-fast connect raises it instead)
            _logger.error("NATS connection error: %s", error)

    async def _call_user(self, name: str, *args: object) -> None:
        callback = self._user_callbacks.get(name)
        if callback is not None:
            try:
                await callback(*args)
            except Exception:
                _logger.exception("user %s %r failed", name, callback)

    async def _on_error(self, exc: Exception) -> None:
        self._errors_seen += 1
        error, ended = subscription_error(exc, self._subs, self._denied, self._errors_seen)
        self._emit(TransportEventKind.ERROR, error)
        for sub in ended:  # after the event: listeners learn why before the iterator ends
            sub._revoked()
        await self._call_user("error_cb", exc)
        if self._attempt is not None:
            give_up = self._attempt.record(error, permanent=is_permanent_connect_error(exc))
            if give_up is not None:
                raise _ConnectAborted(str(give_up))

    async def _on_disconnected(self) -> None:
        if not self._nc.is_closed:  # closing reports CLOSED only
            self._emit(TransportEventKind.DISCONNECTED)
        await self._call_user("disconnected_cb")

    async def _on_reconnected(self) -> None:
        self._baseline_error = self._nc.last_error
        self._emit(TransportEventKind.RECONNECTED)
        await self._call_user("reconnected_cb")

    async def _on_closed(self) -> None:
        self._finish_close()
        await self._call_user("closed_cb")


async def connect_url(url: str, **options: Any) -> NatsTransport:
    """``transports.connect()`` entry for ``nats://``, ``tls://``, ``ws://`` and ``wss://``.

    ``url`` may list several servers separated by commas; ``options`` are nats-py's.
    """
    return await NatsTransport.connect(url, **options)
