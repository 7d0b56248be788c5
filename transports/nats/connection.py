"""``NatsTransport``: nats-py's ``Client`` behind the ``Transport`` seam (asyncio only).

Messages become :class:`transports.base.Msg` at the edge (``incoming``); every nats-py
exception and ``error_cb`` report goes through one helper (``errors.map_nats_error``) into
our error tree.  The nats-py internals used are listed in the package docstring.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from nats.aio.client import Client
from nats.protocol.command import unsub_cmd

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
from transports.nats.barrier import PingBarrier, queue_commands
from transports.nats.connect import (
    CALLBACKS,
    RETRY_OPTION,
    ConnectAttempt,
    connect_client,
    pop_callbacks,
    server_list,
)
from transports.nats.errors import map_nats_error
from transports.nats.incoming import guard_incoming, msg_factory, to_msg
from transports.nats.subscription import (
    NatsMultiSubscription,
    NatsSubscription,
    raw_subscribe,
    subscribe_shared,
)
from transports.nats.table import SubscriptionTable
from transports.subjects import (
    REQUEST_TOKEN_LENGTH,
    check_message,
    check_subscribe_line,
    pending_limit,
    positive_number,
    validate_pattern,
    validate_queue,
    validate_subject_list,
)
from transports.urls import redact_url

CLOSE_UNSUBSCRIBE_WAIT = 2.0
"""Longest ``close()`` waits for the server to acknowledge the connection's unsubscribes."""

__all__ = ["NatsTransport", "connect_url"]

_logger = logging.getLogger(__name__)

_UserCallback = Callable[..., Awaitable[None]]
_Sub = TypeVar("_Sub", bound=NatsSubscription)


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
        self._setup(nc, {name: getattr(nc, f"_{name}") for name in CALLBACKS})
        for name, handler in self._handlers().items():
            setattr(nc, f"_{name}", handler)
        if nc.is_closed:
            self._finish_close()

    def _setup(self, nc: Client, user_callbacks: dict[str, _UserCallback | None]) -> None:
        self._nc = nc
        self._subs = SubscriptionTable()
        self._known_subjects: dict[str, None] = {}  # publish subjects found valid
        self._request_reply_length = 0  # measured at the first request (after connect)
        self._pings = PingBarrier(nc)
        # nats-py builds every incoming message with nc.msg_class: make it build ours
        nc.msg_class = msg_factory(self._subs.by_sid, nc.msg_class)  # type: ignore[assignment]
        self._listeners = EventListeners(_logger)
        guard_incoming(nc, partial(self._emit, TransportEventKind.ERROR))
        self._user_callbacks = user_callbacks
        self._closing = False  # close()/drain() was asked for by us
        self._close_finished = False
        self._drain_done: asyncio.Event | None = None
        self._baseline_error = nc.last_error
        self._attempt: ConnectAttempt | None = None  # while connect() runs

    def _handlers(self) -> dict[str, _UserCallback]:
        """Our nats-py callbacks, by option name; each calls the user's one after ours."""
        return {name: getattr(self, f"_on_{name.removesuffix('_cb')}") for name in CALLBACKS}

    @classmethod
    async def connect(
        cls, servers: str | Sequence[str] = "nats://127.0.0.1:4222", **options: Any
    ) -> NatsTransport:
        """Connect to NATS; ``options`` are nats-py's ``Client.connect`` options, all of them,
        plus ``retry_on_failed_connect``.

        ``servers`` is one URL, a comma-separated string or a list.  User callbacks among
        the options (``error_cb``, ``closed_cb``, ...) are still called.

        The first connect tries each server once (each attempt bounded by nats-py's
        ``connect_timeout``, 2 s by default) and then fails with one error: nats-py alone
        would retry ``max_reconnect_attempts`` times per server, ``reconnect_time_wait``
        apart.  With ``retry_on_failed_connect=True`` it does retry so (as nats.go's
        ``RetryOnFailedConnect``; ``max_reconnect_attempts=-1`` retries until cancelled).
        Once connected, a lost connection is re-established according to nats-py's options
        (``allow_reconnect`` and the rest) either way.  Rejected credentials or a failed TLS
        handshake on every server end the attempt at once (:class:`AuthorizationError`,
        :class:`ConnectFailedError`), whatever the options: retrying cannot help.

        Raises ``TypeError`` for an unknown option, a non-bool ``retry_on_failed_connect``
        or a callback that is not an ``async def``, ``ValueError`` for bad ``servers``, and
        :class:`TransportError` naming the servers (credentials redacted) and the reason
        when connecting fails.
        """
        retry = options.pop(RETRY_OPTION, False)
        if not isinstance(retry, bool):
            raise TypeError(f"{RETRY_OPTION} must be a bool, got {retry!r}")
        user_callbacks = pop_callbacks(options)
        urls = server_list(servers)
        self = cls.__new__(cls)
        self._setup(Client(), user_callbacks)
        options.update(self._handlers())
        options.setdefault("skip_subject_validation", True)  # ours ran first, and is stricter
        self._attempt = ConnectAttempt.for_options(urls, options, retry=retry)
        try:
            await connect_client(self._nc, urls, options, self._attempt)
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
        url = self._nc.connected_url
        shown = redact_url(url.geturl()) if url is not None else None
        return f"<NatsTransport {state} {shown!r}>"

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
            reply_length=self._request_reply_length or self._measure_request_reply(),
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

    def _measure_request_reply(self) -> int:
        """The length of the reply subject nats-py gives a request, ``<inbox prefix>.<nuid>
        .<token>``: one inbox plus a separator and a token of
        :data:`~transports.subjects.REQUEST_TOKEN_LENGTH` characters.  Once per connection
        (the prefix is fixed when it connects)."""
        self._request_reply_length = len(self.new_inbox()) + 1 + REQUEST_TOKEN_LENGTH
        return self._request_reply_length

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
        return await self._add(
            partial(raw_subscribe, self._nc, subject, queue, msgs_limit, bytes_limit),
            lambda raw: NatsSubscription(self, raw, subject, queue),
            (subject,),
            subject,
        )

    async def subscribe_many(self, subjects: Sequence[str]) -> NatsMultiSubscription:
        """One subscription to several concrete subjects: one plain ``SUB`` each, one buffer
        and iterator (see ``transports.extensions.MultiSubjectSubscriber``).

        Returns once the server has them all (at once while reconnecting, like
        ``subscribe``).  A subject the server refuses ends the whole subscription:
        :class:`PermissionViolationError` for that subject.
        """
        checked = validate_subject_list(subjects)
        return await self._add(
            partial(subscribe_shared, self._nc, checked, self._unsubscribe_now),
            lambda raws: NatsMultiSubscription(self, raws, checked),
            checked,
            None,
        )

    async def _add(
        self,
        subscribing: Callable[[], Awaitable[Any]],
        wrap: Callable[[Any], _Sub],
        subjects: Sequence[str],
        subject: str | None,
    ) -> _Sub:
        """Subscribe with nats-py (``subscribing()``; errors mapped naming ``subject``),
        list ``wrap(what it returned)`` and return it once the server has ``subjects``."""
        if self._nc.is_closed:
            raise ConnectionClosedError()
        if self._drain_done is not None:  # as on memory: a drain takes no new interest
            raise ConnectionClosedError("the connection is draining")
        since = self._subs.reports
        try:
            raw = await subscribing()
        except Exception as exc:
            raise map_nats_error(exc, subject=subject) from exc
        sub = wrap(raw)
        self._subs.add(sub)
        await self._confirm(sub, subjects, since)
        return sub

    async def _confirm(self, sub: NatsSubscription, subjects: Sequence[str], since: int) -> None:
        """The barrier after ``SUB``: ends ``sub`` and raises if it fails, or if the server
        refused one of ``subjects`` (an error reported after ``since``, before the PONG)."""
        try:
            if self._nc.is_connected:
                await self._barrier()
        except BaseException:
            sub._end(discard=True)
            self._unsubscribe_now(sub.sids)  # the barrier's error is the one to report
            raise
        denied = self._subs.denied(subjects, since)
        if denied:
            sub._revoked()  # done already by _on_error, which recorded the denial
            if len(subjects) > 1 and self._nc.is_connected:  # _revoked UNSUBs the others:
                with contextlib.suppress(Exception):  # they are through when this raises
                    await self._barrier()
            raise PermissionViolationError("subscription", denied[0])

    async def _barrier(self, timeout: float = 10.0, commands: Sequence[bytes] = ()) -> None:
        """Send ``commands``, return once the server has processed everything sent so far.

        Barriers asked for in the same event-loop turn share one PING (``PingBarrier``):
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
        for sid in self._subs.remove(sub):
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
        try:
            await self._send_unsubscribe(sub, 0)
        finally:
            for sid in self._subs.start_drain(sub):
                self._nc._remove_sub(sid)

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
            for error in await self._subs.drain_all(nc.options.get("drain_timeout", 30)):
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
            if self._subs.by_sid and self._nc.is_connected:
                commands = [unsub_cmd(sid, 0) for sid in self._subs.by_sid]
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
        self._subs.end_all()
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
        elif error is None or self._user_callbacks.get("error_cb"):
            return
        elif self._attempt is None:  # reported nowhere else
            _logger.error("NATS connection error: %s", error)
        elif self._attempt.budget is None:  # retry_on_failed_connect: one line per attempt
            _logger.warning("NATS connect attempt failed (retrying): %s", error)
        # else: a fail-fast first connect raises the error instead

    async def _call_user(self, name: str, *args: object) -> None:
        callback = self._user_callbacks.get(name)
        if callback is not None:
            try:
                await callback(*args)
            except Exception:
                _logger.exception("user %s %r failed", name, callback)

    async def _on_error(self, exc: Exception) -> None:
        error, ended = self._subs.on_error(exc)
        self._emit(TransportEventKind.ERROR, error)
        for sub in ended:  # after the event: listeners learn why before the iterator ends
            sub._revoked()
        await self._call_user("error_cb", exc)
        if self._attempt is not None:
            self._attempt.record(error, exc)  # raises ConnectAborted to stop nats-py retrying

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
