"""One endpoint: a handler bound to a subject, its subscription loop and its statistics.

Request handling follows ADR-32 (Request Handling, Error Handling, STATS); where the
reference implementations differ, docs/wire.md says what we do:

* every delivered message counts in ``num_requests`` (before the handler runs);
* ``processing_time`` adds the handler's wall time in nanoseconds (monotonic clock,
  ``time.perf_counter_ns`` unless injected); ``average_processing_time`` is the floor of
  ``processing_time / num_requests``;
* one request adds at most one error: an escaped exception (typed
  :class:`~micro.errors.ServiceError` -> its ``code:description``; anything else ->
  ``500:<Type>: <message>``, logged with its traceback), else the latest of a failed send
  (``500:<Type>: <message>`` too, e.g. ``500:MaxPayloadError: payload of ...``) or an error
  reply sent through ``respond_error`` (``code:description``): every ``last_error`` starts
  with ``<code>:``;
* after an escaped exception, if the request has a reply subject and nothing was sent yet,
  an error reply goes out: the typed code/description, or ``500 Internal Server Error``
  (``str(exc)`` instead when the service opted in with ``expose_exception_text``);
* a handler that returns without responding to a request that has a reply subject (and
  without a failed send) leaves its caller waiting: that counts as the request's one error
  (``last_error`` = ``micro.request.UNANSWERED_ERROR``), is logged as a warning naming the
  endpoint and the service, and is reported to a transport that collects handler failures
  (``HandlerErrorSink``: a strict ``MemoryBroker`` fails the test) as
  :class:`~micro.request.UnansweredRequestError`.  Nothing is sent: the reply may still come
  from elsewhere, and the caller's own timeout ends its wait;
* nothing a handler does stops the endpoint.

With ``max_concurrency == 1`` (default) the loop is ``async for msg in sub:`` awaiting
``_handle`` for each message (no task, cancel scope or timeout per message); with ``N > 1``
up to ``N`` requests are handled at once in child tasks of the loop, each running the same
``_handle``.  A ``concurrency_pool`` (a semaphore shared by several endpoints, e.g. every
listener of an App) bounds them together as well: after taking a message, the loop waits
for one of the pool's slots before handling it, so while the pool is full the messages stay
buffered in the subscription and the wait never counts as processing time.  (Inlining
``_handle`` in the serial loop saved ~0.2-0.3 µs per message, about 1 % of a
memory-transport round trip through a service: not worth a second copy.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from types import MappingProxyType

import anyio

from micro._support import offers
from micro.errors import ServiceError, last_error_text
from micro.models import EndpointInfo, EndpointStats
from micro.request import (
    UNANSWERED_ERROR,
    Handler,
    TransportRequest,
    UnansweredRequestError,
    is_async_callable,
)
from transports.base import Msg, Subscription, Transport
from transports.extensions import HandlerErrorSink, HandlerTracker
from transports.runtime import Event, new_event

__all__ = ["Endpoint"]

_log = logging.getLogger("micro.service")

INTERNAL_ERROR_DESCRIPTION = "Internal Server Error"


def _header_safe(description: str) -> str:
    """``description`` with whitespace runs (CR/LF included) collapsed, fit for a header."""
    return " ".join(description.split()) or INTERNAL_ERROR_DESCRIPTION


class Endpoint:
    """An endpoint of a :class:`~micro.service.Service` (created by ``add_endpoint``).

    Read-only identity: :attr:`name`, :attr:`subject` (group prefix applied),
    :attr:`queue_group` (``None`` = plain subscription), :attr:`metadata` (immutable
    mapping or ``None``), :attr:`handler`, :attr:`max_concurrency`, the pending limits and
    the live :attr:`subscription` (``None`` before start and after stop).
    """

    __slots__ = (
        "_chain",
        "_clock",
        "_done",
        "_expose_exception_text",
        "_handler",
        "_last_error",
        "_max_concurrency",
        "_metadata",
        "_name",
        "_num_errors",
        "_num_requests",
        "_pending_bytes_limit",
        "_pending_msgs_limit",
        "_pool",
        "_processing_time",
        "_queue_group",
        "_service",
        "_subject",
        "_subscription",
        "_transport",
    )

    def __init__(
        self,
        transport: Transport,
        *,
        name: str,
        subject: str,
        queue_group: str | None,
        metadata: Mapping[str, str] | None,
        handler: Handler,
        chain: Handler,
        pending_msgs_limit: int | None,
        pending_bytes_limit: int | None,
        max_concurrency: int,
        clock: Callable[[], int],
        expose_exception_text: bool,
        service: str = "",
        concurrency_pool: anyio.Semaphore | None = None,
    ) -> None:
        """``service`` is the service's name, for log records."""
        self._transport = transport
        self._service = service
        self._name = name
        self._subject = subject
        self._queue_group = queue_group
        self._metadata = None if metadata is None else MappingProxyType(dict(metadata))
        self._handler = handler
        self._chain = chain
        self._pending_msgs_limit = pending_msgs_limit
        self._pending_bytes_limit = pending_bytes_limit
        self._max_concurrency = max_concurrency
        self._pool = concurrency_pool
        self._clock = clock
        self._expose_exception_text = expose_exception_text
        self._subscription: Subscription | None = None
        self._done: Event | None = None
        self._num_requests = 0
        self._num_errors = 0
        self._last_error = ""
        self._processing_time = 0

    # ------------------------------------------------------------------ identity

    @property
    def name(self) -> str:
        """The endpoint name (several endpoints may share one)."""
        return self._name

    @property
    def subject(self) -> str:
        """The subscribed subject, wildcards and group prefixes included."""
        return self._subject

    @property
    def queue_group(self) -> str | None:
        """The effective queue group; ``None`` when queue groups are disabled for it."""
        return self._queue_group

    @property
    def metadata(self) -> Mapping[str, str] | None:
        """The endpoint metadata (read-only), or ``None`` when none was given."""
        return self._metadata

    @property
    def handler(self) -> Handler:
        """The handler as given (without middlewares)."""
        return self._handler

    @property
    def max_concurrency(self) -> int:
        """How many requests this endpoint handles at the same time (at most)."""
        return self._max_concurrency

    @property
    def pending_msgs_limit(self) -> int | None:
        """Pending messages limit of the subscription (``None``: the transport default)."""
        return self._pending_msgs_limit

    @property
    def pending_bytes_limit(self) -> int | None:
        """Pending bytes limit of the subscription (``None``: the transport default)."""
        return self._pending_bytes_limit

    @property
    def subscription(self) -> Subscription | None:
        """The live subscription, or ``None`` before start / after stop or removal."""
        return self._subscription

    # ------------------------------------------------------------------ statistics

    @property
    def info(self) -> EndpointInfo:
        """This endpoint's INFO entry (a fresh copy)."""
        return EndpointInfo(
            name=self._name,
            subject=self._subject,
            queue_group=self._queue_group,
            metadata=None if self._metadata is None else dict(self._metadata),
        )

    @property
    def stats(self) -> EndpointStats:
        """A snapshot of the counters (``data`` is added by ``Service.stats()``)."""
        requests = self._num_requests
        return EndpointStats(
            name=self._name,
            subject=self._subject,
            num_requests=requests,
            num_errors=self._num_errors,
            last_error=self._last_error,
            processing_time=self._processing_time,
            average_processing_time=self._processing_time // requests if requests else 0,
            queue_group=self._queue_group,
        )

    def reset(self) -> None:
        """Zero the counters and clear ``last_error`` (ADR-32, Design: ``reset()``); identity
        is kept."""
        self._num_requests = 0
        self._num_errors = 0
        self._last_error = ""
        self._processing_time = 0

    def record_error(self, text: str) -> None:
        """Count one error with ``text`` as ``last_error``."""
        self._num_errors += 1
        self._last_error = text

    # ------------------------------------------------------------------ serving

    async def subscribe(self) -> Subscription:
        """Subscribe to the endpoint subject (live on return) and remember the subscription."""
        subscription = await self._transport.subscribe(
            self._subject,
            queue=self._queue_group,
            pending_msgs_limit=self._pending_msgs_limit,
            pending_bytes_limit=self._pending_bytes_limit,
        )
        self._subscription = subscription
        self._done = new_event()
        return subscription

    async def wait_done(self) -> None:
        """Return once the serving loop has ended (immediately if it never started)."""
        if self._done is not None:
            await self._done.wait()

    async def serve(self, subscription: Subscription) -> BaseException | None:
        """Handle every message of ``subscription`` until it ends; never raises.

        Returns the error the loop failed with (``None`` when the subscription simply
        ended): the caller (the service's life cycle) decides whether an end it did not ask
        for stops the service (as nats.go: ``required subscription <subject> stopped``).
        """
        error: BaseException | None = None
        try:
            if self._max_concurrency == 1 and self._pool is None:
                await self._serve_serially(subscription)
            else:
                await self._serve_concurrently(subscription)
        except Exception as exc:
            error = exc
            _log.exception("endpoint %r stopped receiving on %r", self._name, self._subject)
        finally:
            self._subscription = None
            if self._done is not None:
                self._done.set()
        return error

    async def _serve_serially(self, subscription: Subscription) -> None:
        """One request at a time (the hot path): no task per message."""
        handle = self._handle
        async for msg in subscription:
            await handle(msg)

    async def _serve_concurrently(self, subscription: Subscription) -> None:
        """Up to ``max_concurrency`` requests at once (and within the shared pool, if any),
        each in a child task; with a pool and ``max_concurrency == 1``, one at a time in order."""
        slots = anyio.Semaphore(self._max_concurrency)
        pool = self._pool
        tracker = self._transport if offers(self._transport, HandlerTracker) else None

        async def handle_and_release(msg: Msg) -> None:
            try:
                await self._handle(msg)
            finally:
                slots.release()
                if pool is not None:
                    pool.release()
                if tracker is not None:
                    tracker.handler_finished()

        receive = subscription.__anext__
        async with anyio.create_task_group() as group:
            while True:
                # a free slot first: waiting messages stay buffered.  (anyio's acquire()
                # always yields to the loop; acquire_nowait() first saves that turn.)
                try:
                    slots.acquire_nowait()
                except anyio.WouldBlock:
                    await slots.acquire()
                try:
                    msg = await receive()
                except StopAsyncIteration:
                    slots.release()
                    break
                if pool is not None:  # the one message taken waits here, unhandled
                    try:
                        pool.acquire_nowait()
                    except anyio.WouldBlock:
                        await pool.acquire()
                if tracker is not None:
                    tracker.handler_started()  # a test broker's wait_idle waits for it
                group.start_soon(handle_and_release, msg)

    async def _handle(self, msg: Msg) -> None:
        """Run the handler chain for one message and account for it; never raises."""
        request = TransportRequest(self._transport, msg)
        self._num_requests += 1
        clock = self._clock
        started = clock()
        try:
            await self._chain(request)
        except Exception as exc:
            await self._handler_failed(request, exc)
        else:
            if request.problem is not None:
                self._record_problem(request.problem)
            elif not request.responded and msg.reply:
                self._unanswered(request)
        self._processing_time += clock() - started

    def _unanswered(self, request: TransportRequest) -> None:
        """The handler returned without responding to a request that has a reply subject."""
        subject = request.subject()
        self.record_error(UNANSWERED_ERROR)
        plain_def = not is_async_callable(self._handler)
        error = UnansweredRequestError(self._name, self._service, subject, plain_def=plain_def)
        _log.warning("%s", error)
        if offers(self._transport, HandlerErrorSink):
            self._transport.handler_failed(subject, error)

    def _record_problem(self, problem: str | BaseException) -> None:
        """Count a handled request's latest error reply or failed send as its one error."""
        self.record_error(problem if isinstance(problem, str) else last_error_text(problem))

    async def _handler_failed(self, request: TransportRequest, exc: Exception) -> None:
        code = 500
        description = INTERNAL_ERROR_DESCRIPTION
        data: bytes | None = None
        headers: Mapping[str, str] | None = None
        if exc is request.problem:  # the handler let a failed send escape
            text = last_error_text(exc)
        elif isinstance(exc, ServiceError):
            code, description = exc.code, exc.description
            data, headers = exc.data or None, exc.headers or None
            text = f"{code}:{description}"
        else:
            text = last_error_text(exc)
            _log.error(
                "handler of endpoint %r failed on %r",
                self._name,
                request.subject(),
                exc_info=exc,
            )
            if self._expose_exception_text and str(exc):
                description = str(exc)
        self.record_error(text)
        if not isinstance(exc, ServiceError) and offers(self._transport, HandlerErrorSink):
            self._transport.handler_failed(request.subject(), exc)  # e.g. a strict test broker
        if not request.msg.reply or request.responded:
            return
        try:
            await request.respond_error(code, _header_safe(description), data, headers)
        except Exception as send_exc:
            _log.warning(
                "endpoint %r could not send the error reply for %r: %s",
                self._name,
                request.subject(),
                send_exc,
            )
