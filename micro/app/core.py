"""The state of one App and its life cycle: start, stop, failures, and its own thread.

The life cycle is :class:`micro._running.RunState`, shared with ``Context``:
``NEW -> STARTING -> RUNNING -> STOPPING -> STOPPED``; an app runs once.

Starting connects (``transports.connect(url)``, or the given Transport), adds every
listener as an endpoint of the app's core :class:`~micro.service.Service` and starts it,
and only then starts the tasks, so a task can use the app's own listeners at once.  With
a service name that service registers on ``$SRV`` (PING/INFO/STATS); without one it is
made with ``add_service(..., discoverable=False)``: the same endpoints, error replies,
statistics and strict-broker reporting, but nothing to discover.  There is one way a
listener is served.

Stopping, whoever asks (``disconnect``, a stop signal, a task with ``on_error="stop"``,
the connection closing, the service stopping by itself):

1. the state becomes ``STOPPING`` and every task is cancelled at once;
2. in the background: wait for the tasks to end, then stop the service -- its endpoints
   drain, so messages already received are handled (bounded by ``shutdown_timeout``,
   after which the handlers still busy are cancelled);
3. close the connection if the app opened it (drain, then close), else flush it;
4. ``STOPPED``; waiters wake; the loop home's portal stops; the task host closes.

An error that stopped the app is kept and raised by ``run()``/``start()`` (and on leaving
``async with``) as :class:`~micro.app.errors.AppFailedError`.

Blocking use: every blocking call reaches the app's loop through :meth:`AppCore.call_blocking`
(the portal of the app's :class:`~micro.app.home.Home`); the first one on an app that has
not started starts it in a thread of its own.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio

import transports
from micro._running import Phase, RunState, signal_reason
from micro.app.config import AppConfig
from micro.app.data_types import Codec
from micro.app.errors import AppError, AppFailedError, AppNotRunningError
from micro.app.home import Home, Outbox, Send
from micro.app.listeners import INSIDE_APP, make_handler
from micro.app.message import Message
from micro.app.middleware import MiddlewareStack
from micro.app.registry import (
    SERVICE_QUEUE,
    ListenerSpec,
    Queue,
    TaskSpec,
    endpoint_name,
    make_listener_spec,
)
from micro.app.tasks import run_tasks
from micro.endpoint import Endpoint
from micro.errors import ServiceStoppedError
from micro.service import Service, add_service
from transports.base import ConnectionClosedError, Transport, TransportEvent, TransportEventKind
from transports.runtime_tasks import TaskHost

__all__ = ["AppCore"]

_log = logging.getLogger("micro.app")

T = TypeVar("T")

PLUMBING_VERSION = "0.0.0"
"""The version of the non-discoverable service of an app without a service name."""


@dataclass(eq=False)
class AppCore:
    """Everything an App holds; the App and its ``app.nats`` facade share one.

    ``listeners`` maps each live listener's ssid to its endpoint.
    """

    config: AppConfig
    life: RunState = field(default_factory=RunState)
    middlewares: MiddlewareStack = field(default_factory=MiddlewareStack)
    specs: list[ListenerSpec] = field(default_factory=list)
    task_specs: list[TaskSpec] = field(default_factory=list)
    listeners: dict[str, Endpoint] = field(default_factory=dict)
    transport: Transport | None = None
    service: Service | None = None
    failure: BaseException | None = None
    pool: anyio.Semaphore | None = None
    """Bounds the messages the app's listeners handle at once (``max_concurrency``)."""

    def __post_init__(self) -> None:
        label = self.config.label
        self.home = Home(label)
        self.outbox = Outbox(label)
        self.host = TaskHost(f"micro app {label}", _log)
        self._at_exit: Callable[[], None] | None = None  # registered while a thread home exists
        self._ssids = itertools.count(1)
        self._remove_event_listener: Callable[[], None] | None = None
        self._tasks_scope: anyio.CancelScope | None = None  # set while the tasks may run
        self._tasks_done: anyio.Event | None = None

    @property
    def label(self) -> str:
        return self.config.label

    def new_ssid(self) -> str:
        return str(next(self._ssids))

    def listener_specs(
        self,
        subjects: list[str],
        callback: Callable[[Message], Any],
        *,
        queue: Queue,
        codec: Codec,
        name: str | None,
        max_concurrency: int | None,
    ) -> list[ListenerSpec]:
        """One spec per subject for ``callback`` (``TypeError`` unless callable).

        Endpoint names: an explicit ``name`` for one subject is used as given (a name the
        service already has is then an error from the service); otherwise the name (the
        callback's ``__name__`` by default) gets ``_2``, ``_3``... when this app already
        has a listener of that name, so a list of subjects makes one endpoint each.
        """
        base = name if name is not None else endpoint_name(callback)
        taken = {spec.name for spec in self.specs}
        taken.update(endpoint.name for endpoint in self.listeners.values())
        specs = []
        for subject in subjects:
            own = base
            if name is None or len(subjects) > 1:
                number = 1
                while own in taken:
                    number += 1
                    own = f"{base}_{number}"
            taken.add(own)
            specs.append(
                make_listener_spec(
                    self.new_ssid,
                    subject,
                    callback,
                    queue=queue,
                    codec=codec,
                    name=own,
                    max_concurrency=max_concurrency,
                )
            )
        return specs

    # ------------------------------------------------------------------ checks

    def check_loop(self, what: str) -> None:
        if not self.home.in_loop_thread():
            raise AppError(
                f"'await app.{what}()' must run in the app's event loop (thread); from another "
                f"thread use app.{what}_sync()"
            )

    def check_running(self, what: str) -> Transport:
        """The transport, if the app can serve ``app.<what>()`` here; raises otherwise."""
        transport = self.transport
        phase = self.life.phase
        if transport is None or phase is Phase.STOPPED or phase is Phase.NEW:
            if phase is Phase.STOPPED:
                because = f" because {self.failure!r}" if self.failure is not None else ""
                raise AppNotRunningError(
                    f"app.{what}(): the app {self.label!r} has stopped{because}"
                ) from self.failure
            raise AppNotRunningError(
                f"app.{what}(): the app {self.label!r} is not running; start it with "
                "'async with app:', 'await app.run()', app.start(), or use the blocking "
                f"app.{what}_sync()"
            )
        self.check_loop(what)
        return transport

    # ------------------------------------------------------------------ starting

    async def start(self) -> None:
        """Start (idempotent; concurrent callers wait for the first)."""
        life = self.life
        if not life.begin():
            if life.phase is Phase.STARTING:
                if await life.wait_until(Phase.RUNNING) is Phase.STOPPED:
                    raise AppNotRunningError(f"app {self.label!r} failed to start")
            elif life.phase is not Phase.RUNNING:
                raise AppNotRunningError(f"app {self.label!r} has stopped; create a new App")
            return
        try:
            await self.host.open()
            if self.home.kind == "loop":
                ready = anyio.Event()
                self.host.start_soon(self.home.serve_portal, ready)
                await ready.wait()
            await self._connect_and_serve()
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self._fail_start(exc)
            raise
        if life.started():  # a stop was asked for while starting
            self.request_stop(None)
        elif self.task_specs:
            self._tasks_scope = anyio.CancelScope()
            self._tasks_done = anyio.Event()
            self.host.start_soon(self._run_tasks, self._tasks_scope, self._tasks_done)

    async def _connect_and_serve(self) -> None:
        config = self.config
        self.transport = transport = config.given or await transports.connect(
            config.url or "", **config.connect_options
        )
        self._remove_event_listener = transport.add_event_listener(self._on_event)
        self.pool = anyio.Semaphore(config.max_concurrency)
        self.service = add_service(
            transport,
            config.service_name or config.label,
            config.service_version or PLUMBING_VERSION,
            config.service_description,
            config.service_metadata,
            done_handler=self._service_done,
            error_handler=self._service_error,
            discoverable=config.service_name is not None,
        )
        for spec in self.specs:
            await self.add_listener(spec)
        await self.service.start()

    async def add_listener(self, spec: ListenerSpec) -> None:
        """Add ``spec`` as an endpoint of the app's service (live on return once started)."""
        assert self.service is not None
        assert self.pool is not None
        queue = spec.queue
        if queue is SERVICE_QUEUE:  # the service's queue group, if the app is a service
            queue_group, plain = None, self.config.service_name is None
        else:
            queue_group, plain = queue, queue is None
        self.listeners[spec.ssid] = await self.service.add_endpoint(
            spec.name,
            make_handler(spec, self.middlewares, self),
            subject=spec.subject,
            queue_group=queue_group,
            disable_queue_group=plain,
            max_concurrency=spec.max_concurrency or self.config.max_concurrency,
            concurrency_pool=self.pool,
        )

    async def _fail_start(self, exc: BaseException) -> None:
        _log.error("app %r failed to start: %r", self.label, exc)
        if self.service is not None:
            await self.service.stop()
        self.listeners.clear()
        await self._close_transport()
        self.life.finish()
        await self.home.stop_portal()
        await self.host.aclose(cancel=True)

    # ------------------------------------------------------------------ tasks

    async def _run_tasks(self, scope: anyio.CancelScope, done: anyio.Event) -> None:
        """Run the tasks until each is over or ``scope`` is cancelled (the app stopping)."""
        INSIDE_APP.set(self)
        try:
            with scope:
                if self.life.phase is Phase.RUNNING:
                    await run_tasks(
                        self.task_specs, sleep=self.config.sleep, stop_app=self._task_failed
                    )
        finally:
            done.set()

    def _task_failed(self, spec: TaskSpec, exc: Exception) -> None:
        self.request_stop(exc)

    # ------------------------------------------------------------------ stopping

    def request_stop_reason(self, reason: str) -> None:
        _log.info("app %r stopping: %s", self.label, reason)
        self.request_stop(None)

    def request_stop(self, failure: BaseException | None) -> None:
        """Begin the stop (loop thread only); idempotent.

        The tasks are cancelled at once (a task that asked for the stop ends at its next
        ``await``); the rest of the shutdown runs in the background.  Asked for before
        the app runs, the stop happens as soon as it does.
        """
        if failure is not None and self.failure is None and self.life.phase is not Phase.STOPPED:
            self.failure = failure
        if self.life.request_stop():
            if self._tasks_scope is not None:
                self._tasks_scope.cancel()
            self.host.start_soon(self._shutdown)

    async def disconnect(self) -> None:
        """Stop, and return once stopped -- or, called from one of the app's own listeners
        or tasks (:data:`INSIDE_APP`), only begin the stop (it would wait for itself)."""
        life = self.life
        if life.abandon() or life.phase is Phase.STOPPED:
            return
        self.check_loop("disconnect")
        wait = INSIDE_APP.get() is not self
        if wait and life.phase is Phase.STARTING:
            await life.wait_until(Phase.RUNNING)
        self.request_stop(None)
        if wait:
            await life.wait_until(Phase.STOPPED)

    async def _shutdown(self) -> None:
        try:
            if self._tasks_done is not None:
                await self._tasks_done.wait()
            with anyio.move_on_after(self.config.shutdown_timeout):
                await self.outbox.wait_empty()  # what was handed over goes out first
            if self.service is not None:
                await self.service.stop(grace_period=self.config.shutdown_timeout)
            self.listeners.clear()
            await self._close_transport()
        except Exception:
            _log.exception("app %r: error while stopping", self.label)
        finally:
            self.life.finish()
            await self.home.stop_portal()
            self.host.request_close()

    async def _close_transport(self) -> None:
        if self._remove_event_listener is not None:
            self._remove_event_listener()
            self._remove_event_listener = None
        transport = self.transport
        if transport is None or transport.is_closed:
            return
        owned = self.config.given is None
        try:
            with anyio.move_on_after(self.config.shutdown_timeout):
                if owned:
                    await transport.drain()
                else:
                    await transport.flush()
        except Exception as exc:
            _log.warning("app %r: closing the connection: %r", self.label, exc)
        if owned and not transport.is_closed:
            await transport.close()

    def raise_failure(self) -> None:
        failure = self.failure
        if failure is not None:
            raise AppFailedError(f"app {self.label!r} stopped: {failure!r}") from failure

    # ------------------------------------------------------------------ notifications

    def _on_event(self, event: TransportEvent) -> None:
        if event.kind is TransportEventKind.CLOSED:
            if self.life.phase is Phase.RUNNING:
                self.request_stop(ConnectionClosedError("the connection closed while the app ran"))
        elif event.kind is TransportEventKind.ERROR and event.error is not None:
            _log.warning("app %r: connection error: %s", self.label, event.error)

    def _service_done(self, service: Service) -> None:
        if self.life.phase is Phase.RUNNING:
            self.request_stop(service.stop_error or ServiceStoppedError("the service stopped"))

    def _service_error(self, service: Service, error: BaseException) -> None:
        _log.error("app %r: service error: %s", self.label, error)

    # ------------------------------------------------------------------ blocking use

    def call_blocking(self, method: str, async_method: str, func: Callable[[], Awaitable[T]]) -> T:
        """``app.<method>(...)``: run ``await func()`` in the app's loop and return its result.

        An app that has not started (and is not run by an event loop) is first started in
        a thread of its own.  Raises :class:`~micro.app.errors.SyncCallInLoopError` in the
        loop's own thread, :class:`~micro.app.errors.AppNotRunningError` once the app is gone.
        """
        self.home.check_not_in_loop(method, async_method)
        if self.life.phase in (Phase.NEW, Phase.STARTING) and self.home.kind != "loop":
            self.ensure_thread_home()
        return self._call_in_loop(method, async_method, func)

    def _call_in_loop(self, method: str, async_method: str, func: Callable[[], Awaitable[T]]) -> T:
        """Run ``await func()`` through the portal as the calling thread would: the caller's
        :data:`INSIDE_APP` goes along, so a listener's worker thread never waits for itself."""
        inside = INSIDE_APP.get()

        async def as_the_caller() -> T:
            INSIDE_APP.set(inside)
            return await func()

        return self.home.call(method, async_method, as_the_caller)

    def hand_over(self, method: str, what: str, send: Send) -> None:
        """``app.<method>(...)`` that does not wait: queue ``send`` in the app's outbox
        (run in the app's loop, in hand-over order; a failure is logged as ``what``).

        From the loop's own thread the send is started by the app's task host; from any
        other thread through the portal (an app that has not started is first started in
        a thread of its own, as by a blocking call).  Raises
        :class:`~micro.app.errors.AppNotRunningError` at once when the app is stopping or
        gone.
        """
        phase = self.life.phase
        if phase is Phase.STOPPING or phase is Phase.STOPPED:
            raise AppNotRunningError(f"app.{method}(): the app {self.label!r} is {phase.value}")
        if self.home.in_loop_thread():
            self.outbox.put(what, send, self.host.start_soon)
            return
        if phase in (Phase.NEW, Phase.STARTING) and self.home.kind != "loop":
            self.ensure_thread_home()
        portal = self.home.portal(method)
        try:
            self.outbox.put(what, send, portal.start_task_soon)
        except RuntimeError as exc:
            raise AppNotRunningError(
                f"app.{method}(): the app {self.label!r} has been disconnected"
            ) from exc

    def stop_blocking(self, disconnect: Callable[[], Awaitable[None]]) -> None:
        """``app.disconnect_sync()``: ``await disconnect()`` in the app's loop, then end the
        app's own thread (if it has one).

        An app that never started is simply over (no thread is started for it).  From a
        worker thread of one of the app's listeners or tasks, or from the app's loop itself
        (where waiting would block the loop), the stop is only begun.
        """
        if self.home.in_loop_thread():
            if not self.life.abandon() and self.life.phase is not Phase.STOPPED:
                self.request_stop(None)
            return
        if self.home.kind is None and self.life.abandon():
            return
        if self.life.phase is not Phase.STOPPED:
            with contextlib.suppress(AppNotRunningError):
                self._call_in_loop("disconnect_sync", "disconnect", disconnect)
        if INSIDE_APP.get() is not self:
            self._close_thread_home()

    def ensure_thread_home(self, *, start: bool = True) -> None:
        """Give an app that has no home one in its own thread (and start it there)."""
        if self.home.kind is None:
            if self.config.given is not None:
                raise AppError(
                    "this App was given a transport, which belongs to the event loop that "
                    "created it: run the app there first ('async with app:' or 'await "
                    "app.run()'); blocking calls then work from other threads"
                )
            if self.home.start_thread(self.config.backend, self.config.backend_options):
                self._at_exit = self._stop_at_exit
                atexit.register(self._at_exit)
        if start and self.home.kind == "thread" and self.life.phase in (Phase.NEW, Phase.STARTING):
            self.home.call("start", "run", self.start)

    def _close_thread_home(self) -> None:
        self.home.close_thread()
        if self._at_exit is not None and not self.home.in_loop_thread():
            atexit.unregister(self._at_exit)
            self._at_exit = None

    def _stop_at_exit(self) -> None:
        """At interpreter exit: stop an app still running in its own thread, so that what
        it published is flushed and its connection closed (nothing lost silently)."""
        try:
            self.stop_blocking(self.disconnect)
        except Exception as exc:
            _log.warning("app %r: stopping at exit failed: %r", self.label, exc)

    def stop_from_signal(self, signum: int) -> None:
        """In the thread blocked in ``start()``: ask the app's loop to stop (not waiting)."""
        reason = signal_reason(signum)
        _log.info("app %r: %s received", self.label, reason)
        with contextlib.suppress(AppError, RuntimeError):
            self.home.portal("start").start_task_soon(self.request_stop_reason, reason)
