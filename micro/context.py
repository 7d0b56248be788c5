"""``Context`` and ``run``: a main function for services, with clean shutdown.

A :class:`Context` owns what a program opens -- the connection, the services, any async
context entered through it -- and releases all of it, in reverse order, when the program
is cancelled (``ctx.cancel()``, a trapped signal) or the ``async with`` block ends::

    async def setup(ctx: Context) -> None:
        service = await ctx.add_service("greeter", "1.0.0")
        await service.add_endpoint("hello", hello)

    run(setup, "nats://127.0.0.1:4222", trap_signals=True)   # or "memory://"

It is transport-neutral: ``connect(*options)`` takes URLs (``nats://...``, ``memory://...``;
see :func:`transports.connect`), mappings of transport options, and ``nats_contrib.micro``'s
connect options (``nats_contrib.connect_opts.option.WithServer(url)``, ...) without
importing nats-py; :mod:`micro.connect_options` says how.  The connection callbacks among
them (``error_cb``, ``closed_cb``, ...) become :meth:`Context.add_error_callback` & co,
driven by the transport's events.

Connecting fails fast: the first connect tries each server once and raises one error
(``ConnectFailedError``, ``AuthorizationError``), the URL in it without password or token.
``retry_on_failed_connect=True`` (a keyword of :meth:`Context.connect`,
:meth:`Context.run_forever` and :func:`run`) makes it retry as a reconnect would, with
nats-py's ``max_reconnect_attempts`` and ``reconnect_time_wait``.  Once connected, a lost
connection is re-established either way (docs/production.md, "Retrying and reconnecting").

A context runs once, through the life cycle it shares with :class:`~micro.app.App`
(:class:`micro._running.RunState`): entering it makes it ``RUNNING``, :meth:`Context.cancel`
(or a trapped signal) makes it ``STOPPING``, leaving the ``async with`` block ``STOPPED``.
It must be entered (``async with Context() as ctx`` or ``run_forever``) before ``connect``,
``add_service`` or ``trap_signal``, and cannot be entered twice.  Signals are watched by
:func:`micro._running.watch_signals`, as ``await app.run()`` watches them.
"""

from __future__ import annotations

import inspect
import logging
import signal
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, AbstractContextManager, AsyncExitStack
from datetime import datetime
from functools import partial
from types import TracebackType
from typing import Any, TypeVar

import anyio
import anyio.abc

from micro._running import DEFAULT_STOP_SIGNALS, Phase, RunState, watch_signals
from micro._support import as_transport, call_callback
from micro.connect_options import (
    DEFAULT_SERVER_URL,
    ConnectOption,
    ConnectSettings,
    is_raw_nats_client,
    resolve_options,
)
from micro.event_loop import backend_options
from micro.service import Service, add_service
from transports.base import (
    ConnectionClosedError,
    Transport,
    TransportError,
    TransportEvent,
    TransportEventKind,
)

__all__ = ["DEFAULT_SERVER_URL", "ConnectOption", "ConnectSettings", "Context", "run"]
# DEFAULT_SERVER_URL, ConnectOption and ConnectSettings are re-exported from
# micro.connect_options for ``nats_contrib.micro``'s ``from ...context import ...`` habits.

T = TypeVar("T")

_log = logging.getLogger("micro.context")


async def _call(callback: Callable[..., object], *args: Any) -> None:
    result = callback(*args)
    if inspect.isawaitable(result):
        await result


def _close_unawaited(awaitable: object) -> None:
    if inspect.iscoroutine(awaitable):
        awaitable.close()


class Context:
    """Runs services and cleans up after them (``nats_contrib.micro``'s ``Context``).

    ``client`` is an optional connection to use: a :class:`~transports.base.Transport`
    (already connected) or a nats-py client (connected by :meth:`connect` if it is not).
    Whatever the context connects or is given is closed when it exits.
    """

    def __init__(self, client: Transport | Any | None = None) -> None:
        self.exit_stack = AsyncExitStack()
        self.services: list[Service] = []
        self._raw_client: Any = None
        self._transport: Transport | None = None
        if client is not None:
            if is_raw_nats_client(client) and not getattr(client, "is_connected", False):
                self._raw_client = client
            else:
                self._transport = as_transport(client)
        self._life = RunState()
        self._wait_scopes: set[anyio.CancelScope] = set()
        self._signal_scopes: list[anyio.CancelScope] = []
        self._callbacks: dict[TransportEventKind, list[Callable[..., object]]] = {
            kind: [] for kind in TransportEventKind
        }
        self._task_group: anyio.abc.TaskGroup | None = None
        self._listening = False
        self._queue: deque[tuple[str, Callable[..., object], tuple[Any, ...]]] = deque()
        self._draining = False

    def __repr__(self) -> str:
        return f"<Context {self._life.phase.value}>"

    # ------------------------------------------------------------------ connection

    @property
    def transport(self) -> Transport:
        """The connection; raises ``RuntimeError`` before :meth:`connect`."""
        if self._transport is None:
            raise RuntimeError("the context is not connected: call 'await ctx.connect()' first")
        return self._transport

    @property
    def client(self) -> Transport:
        """Alias of :attr:`transport` (``nats_contrib.micro``'s attribute name)."""
        return self.transport

    async def connect(self, *options: ConnectOption, retry_on_failed_connect: bool = False) -> None:
        """Connect (see the module docstring for ``options``); closed when the context exits.

        The first connect tries each server once and fails with one error; with
        ``retry_on_failed_connect=True`` it retries as a reconnect would (the transport
        option of that name: nats-py's ``max_reconnect_attempts`` and
        ``reconnect_time_wait`` apply; ``memory://`` ignores it).  It is not passed to a
        nats-py client given to the context unconnected: nats-py's own behaviour applies.
        Does not raise when the context is cancelled meanwhile (check :meth:`cancelled`).
        Raises ``RuntimeError`` when the context is not entered or already connected,
        ``ValueError`` for an unknown option or URL, ``TypeError`` for an option of the
        wrong kind, and the transport's errors (e.g. a refused connection).
        """
        self._require_entered("connect()")
        if self._transport is not None and self._listening:
            raise RuntimeError("the context is already connected")
        if not isinstance(retry_on_failed_connect, bool):
            raise TypeError(
                f"retry_on_failed_connect must be a bool, got {retry_on_failed_connect!r}"
            )
        await self.wait_for(self._open(options, retry_on_failed_connect))

    async def _open(self, options: tuple[ConnectOption, ...], retry: bool) -> None:
        resolved = resolve_options(options)
        for kind, callbacks in resolved.callbacks.items():
            self._callbacks[kind].extend(callbacks)
        kwargs = resolved.transport_options
        if self._transport is not None:
            if resolved.names_a_server or kwargs:
                raise ValueError(
                    "the context was given a connected transport: connect() takes no "
                    f"server or transport options then (got {options!r})"
                )
            if self._transport.is_closed:
                raise ConnectionClosedError("the transport given to the context is closed")
            self._adopt(self._transport)
            return
        if self._raw_client is not None:
            if resolved.names_a_server:
                kwargs["servers"] = resolved.urls or resolved.servers
            await self._raw_client.connect(**kwargs)
            self._adopt(as_transport(self._raw_client))
            return
        from transports import connect as connect_url

        if retry:  # only when asked: a third-party transport need not know the option
            kwargs["retry_on_failed_connect"] = True
        self._adopt(await connect_url(resolved.url(), **kwargs))

    def _adopt(self, transport: Transport) -> None:
        """Own ``transport``: listen to its events, close it on exit (after the listener)."""
        self._transport = transport
        self._listening = True
        remove = transport.add_event_listener(self._on_event)
        self.exit_stack.callback(remove)
        self.exit_stack.push_async_callback(transport.close)

    # ------------------------------------------------------------------ connection events

    def add_closed_callback(self, callback: Callable[[], Awaitable[None] | None]) -> None:
        """Call ``callback()`` (sync or async) when the connection closes."""
        self._callbacks[TransportEventKind.CLOSED].append(callback)

    def add_disconnected_callback(self, callback: Callable[[], Awaitable[None] | None]) -> None:
        """Call ``callback()`` (sync or async) each time the connection is lost."""
        self._callbacks[TransportEventKind.DISCONNECTED].append(callback)

    def add_reconnected_callback(self, callback: Callable[[], Awaitable[None] | None]) -> None:
        """Call ``callback()`` (sync or async) each time the connection is re-established."""
        self._callbacks[TransportEventKind.RECONNECTED].append(callback)

    def add_error_callback(self, callback: Callable[[Exception], Awaitable[None] | None]) -> None:
        """Call ``callback(error)`` (sync or async) for each asynchronous connection error
        (a :class:`~transports.base.TransportError`, e.g. a slow consumer)."""
        self._callbacks[TransportEventKind.ERROR].append(callback)

    def _on_event(self, event: TransportEvent) -> None:
        """Queue the callbacks of ``event``; one task runs the queue in event order."""
        callbacks = self._callbacks[event.kind]
        if not callbacks:
            return
        args: tuple[Any, ...] = ()
        if event.kind is TransportEventKind.ERROR:
            args = (event.error or TransportError("unspecified connection error"),)
        what = f"{event.kind.value} callback"
        group = self._task_group
        if group is None:  # after the context exited: run what can run synchronously
            for callback in list(callbacks):
                try:
                    _close_unawaited(callback(*args))
                except Exception:
                    _log.exception("the %s raised; ignored", what)
            return
        self._queue.extend((what, callback, args) for callback in callbacks)
        if not self._draining:
            self._draining = True
            group.start_soon(self._run_callbacks)

    async def _run_callbacks(self) -> None:
        try:
            while self._queue:
                what, callback, args = self._queue.popleft()
                await call_callback(what, callback, *args)
        finally:
            self._draining = False

    # ------------------------------------------------------------------ services and resources

    async def add_service(
        self,
        name: str,
        version: str,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
        queue_group: str | None = None,
        pending_bytes_limit_by_endpoint: int | None = None,
        pending_msgs_limit_by_endpoint: int | None = None,
        now: Callable[[], datetime] | None = None,
        id_generator: Callable[[], str] | None = None,
        api_prefix: str | None = None,
        **options: Any,
    ) -> Service:
        """Create and start a service on the context's connection; stopped on exit.

        Parameters are those of :func:`micro.add_service` (keyword-only extras such as
        ``stats_handler`` go through ``options``).  Raises ``RuntimeError`` before
        :meth:`connect`, and what ``add_service``/``Service.start`` raise.
        """
        self._require_entered("add_service()")
        service = add_service(
            self.transport,
            name,
            version,
            description,
            metadata,
            queue_group,
            pending_bytes_limit_by_endpoint,
            pending_msgs_limit_by_endpoint,
            now,
            id_generator,
            api_prefix,
            **options,
        )
        await self.enter(service)
        self.services.append(service)
        return service

    def reset(self) -> None:
        """Reset the statistics of every service of the context."""
        for service in self.services:
            service.reset()

    async def enter(self, async_context: AbstractAsyncContextManager[T]) -> T:
        """Enter ``async_context`` now; it is exited when the context exits (reverse order).

        A plain (sync) context manager is accepted as well.
        """
        if not hasattr(async_context, "__aenter__") and isinstance(
            async_context, AbstractContextManager
        ):
            entered: T = self.exit_stack.enter_context(async_context)
            return entered
        return await self.exit_stack.enter_async_context(async_context)

    def push(self, callback: Callable[[], Awaitable[None] | None]) -> None:
        """Call ``callback()`` (sync or async) when the context exits (reverse order)."""
        self.exit_stack.push_async_callback(_call, callback)

    # ------------------------------------------------------------------ cancellation

    def cancel(self) -> None:
        """Cancel the context: :meth:`wait` returns and :meth:`wait_for` calls stop.

        Idempotent; call it from the event loop's thread (from another thread use
        ``anyio.from_thread.run_sync(ctx.cancel)``).
        """
        self._life.request_stop()
        for scope in list(self._wait_scopes):
            scope.cancel()

    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called (or a trapped signal arrived)."""
        return self._life.stop_requested

    async def wait(self) -> None:
        """Wait until the context is cancelled."""
        await self._life.wait_stop_requested()

    async def wait_for(self, coro: Awaitable[T]) -> T | None:
        """Await ``coro``, stopping it if the context is cancelled meanwhile.

        Returns its result, or ``None`` when the context was cancelled (no exception; see
        :meth:`cancelled`).  Exceptions raised by ``coro`` propagate.  If the context is
        already cancelled, ``coro`` is closed without running.
        """
        if self.cancelled():
            _close_unawaited(coro)
            return None
        with anyio.CancelScope() as scope:
            self._wait_scopes.add(scope)
            try:
                return await coro
            finally:
                self._wait_scopes.discard(scope)
        return None

    # ------------------------------------------------------------------ signals

    def trap_signal(self, *signals: signal.Signals) -> None:
        """Cancel the context when one of ``signals`` (default SIGINT, SIGTERM) arrives.

        The handlers are installed by a task of the context, soon after this returns;
        after the first signal the default handlers are back (a second Ctrl-C interrupts).
        Outside the main thread nothing is installed (see :mod:`micro._running`).  Raises
        ``RuntimeError`` when the context is not entered.
        """
        group = self._require_entered("trap_signal()")
        group.start_soon(self._watch_signals, signals or DEFAULT_STOP_SIGNALS)

    async def _watch_signals(
        self,
        signals: tuple[signal.Signals, ...],
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Watch ``signals`` until the first one cancels the context, or it exits."""
        with anyio.CancelScope() as scope:
            self._signal_scopes.append(scope)
            await watch_signals(signals, self._cancel_on_signal, task_status=task_status)

    def _cancel_on_signal(self, reason: str) -> None:
        _log.info("received %s: cancelling the context", reason)
        self.cancel()
        for scope in self._signal_scopes:
            scope.cancel()

    # ------------------------------------------------------------------ life cycle

    def _require_entered(self, what: str) -> anyio.abc.TaskGroup:
        entered = self._life.phase is Phase.RUNNING or self._life.phase is Phase.STOPPING
        if not entered or self._task_group is None:
            raise RuntimeError(
                f"{what} needs an entered context: use 'async with Context() as ctx' "
                "or 'await Context().run_forever(setup)'"
            )
        return self._task_group

    async def __aenter__(self) -> Context:
        if not self._life.begin():
            raise RuntimeError("a Context can be entered only once")
        group = anyio.create_task_group()
        await group.__aenter__()
        self._task_group = group
        if self._life.started():  # cancelled before it was entered
            self.cancel()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        """Exit everything entered (reverse order, shielded from cancellation), then wait
        for the connection callbacks still running.  Exceptions of the block propagate
        unchanged; an exception raised by a cleanup step propagates after the others ran."""
        self._life.finish()
        for scope in self._signal_scopes:
            scope.cancel()
        group = self._task_group
        try:
            with anyio.CancelScope(shield=True):
                await self.exit_stack.aclose()
        finally:
            self.services.clear()
            self._task_group = None
            if group is not None:
                try:
                    await group.__aexit__(exc_type, exc, tb)
                except BaseException as raised:
                    inner = getattr(raised, "exceptions", None)
                    if exc is None or not inner or len(inner) != 1 or inner[0] is not exc:
                        raise
        return False

    async def run_forever(
        self,
        setup: Callable[[Context], Coroutine[Any, Any, None]],
        /,
        *options: ConnectOption,
        trap_signals: bool | tuple[signal.Signals, ...] = False,
        retry_on_failed_connect: bool = False,
    ) -> None:
        """Connect, run ``setup(ctx)``, then wait until cancelled; clean up on the way out.

        ``options`` and ``retry_on_failed_connect`` are those of :meth:`connect`: by
        default a server that cannot be reached fails the run within seconds.

        ``trap_signals``: ``True`` for SIGINT and SIGTERM, or a tuple of signals; they are
        installed before connecting.  Cancellation (by :meth:`cancel` or a signal) is not an
        error: this returns normally.  Errors of connecting or of ``setup`` propagate (after
        cleanup).  The context must not have been entered before.
        """
        signals = trap_signals if isinstance(trap_signals, tuple) else DEFAULT_STOP_SIGNALS
        async with self as ctx:
            if trap_signals:
                await ctx._require_entered("trap_signal()").start(ctx._watch_signals, signals)
            await ctx.connect(*options, retry_on_failed_connect=retry_on_failed_connect)
            if ctx.cancelled():
                return
            await ctx.wait_for(setup(ctx))
            if ctx.cancelled():
                return
            await ctx.wait()


def run(
    setup: Callable[[Context], Coroutine[Any, Any, None]],
    /,
    *options: ConnectOption,
    trap_signals: bool | tuple[signal.Signals, ...] = False,
    client: Transport | Any | None = None,
    backend: str = "asyncio",
    retry_on_failed_connect: bool = False,
    use_uvloop: bool | None = None,
) -> None:
    """Run ``Context(client).run_forever(setup, *options, trap_signals=...,
    retry_on_failed_connect=...)`` to completion.

    The synchronous entry point of a program: starts an event loop with
    ``anyio.run(..., backend=backend)`` (asyncio by default; ``"trio"`` works with
    transports that support it, e.g. ``memory://``).  A server that cannot be reached
    makes it raise within seconds (``ConnectFailedError``), unless
    ``retry_on_failed_connect=True`` (see :meth:`Context.connect`).  ``use_uvloop``
    (default: the ``MICRO_UVLOOP`` environment variable) runs asyncio on uvloop, see
    :mod:`micro.event_loop`.
    """
    context = Context(client=client)
    anyio.run(
        partial(
            context.run_forever,
            setup,
            *options,
            trap_signals=trap_signals,
            retry_on_failed_connect=retry_on_failed_connect,
        ),
        backend=backend,
        backend_options=backend_options(backend, use_uvloop=use_uvloop),
    )
