"""The state of one App and its life cycle: start, stop, failures, and the blocking plumbing.

States: ``NEW -> STARTING -> RUNNING -> STOPPING -> STOPPED``; an app runs once.

Starting connects (``transports.connect(url)``, or the given Transport), subscribes every
listener -- as endpoints of a core :class:`~micro.service.Service` when the app has a
service name, on plain subscriptions otherwise -- and only then starts the tasks, so a
task can use the app's own listeners at once.

Stopping, whoever asks (``disconnect``, a stop signal, a task with ``on_error="stop"``,
the connection closing, the service stopping by itself):

1. the state becomes ``STOPPING`` and every task is cancelled at once;
2. in the background: wait for the tasks to end; drain the listeners concurrently --
   messages already received are handled (bounded by ``shutdown_timeout``, after which
   the listeners still busy are cancelled) -- and stop the service;
3. close the connection if the app opened it (drain, then close), else flush it;
4. ``STOPPED``; waiters wake; the loop home's portal stops; the task host closes.

An error that stopped the app is kept and raised by ``run()``/``start()`` (and on leaving
``async with``) as :class:`~micro.app.errors.AppFailedError`.
"""

from __future__ import annotations

import enum
import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

import anyio

import transports
from micro._support import drain_quietly, subscribe_all, unsubscribe_quietly
from micro.app.config import AppConfig
from micro.app.errors import AppError, AppFailedError, AppNotRunningError
from micro.app.listeners import INSIDE_APP, ActiveListener, make_handler, serve_plain
from micro.app.middleware import MiddlewareStack, SendFunc
from micro.app.registry import ListenerSpec, TaskSpec
from micro.app.sync import Home
from micro.app.tasks import run_task
from micro.endpoint import Endpoint
from micro.errors import ServiceStoppedError
from micro.request import Handler
from micro.service import Service, add_service
from transports.base import (
    ConnectionClosedError,
    Subscription,
    SubscriptionClosedError,
    Transport,
    TransportEvent,
    TransportEventKind,
)
from transports.runtime import TaskHost

__all__ = ["AppCore", "State"]

_log = logging.getLogger("micro.app")

T = TypeVar("T")


class State(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(eq=False)
class AppCore:
    """Everything an App holds; the App, ``app.nats`` and the operations share one."""

    config: AppConfig
    state: State = State.NEW
    middlewares: MiddlewareStack = field(default_factory=MiddlewareStack)
    specs: list[ListenerSpec] = field(default_factory=list)
    task_specs: list[TaskSpec] = field(default_factory=list)
    listeners: dict[str, ActiveListener] = field(default_factory=dict)
    transport: Transport | None = None
    service: Service | None = None
    failure: BaseException | None = None
    finals: tuple[SendFunc, SendFunc] | None = None

    def __post_init__(self) -> None:
        label = self.config.label
        self.home = Home(label)
        self.host = TaskHost(f"micro app {label}", _log)
        self.state_lock = threading.Lock()
        self.at_exit: Callable[[], None] | None = None  # set while a thread home exists
        self._ssids = itertools.count(1)
        self._remove_event_listener: Callable[[], None] | None = None
        self._started: anyio.Event | None = None
        self._stopped: anyio.Event | None = None
        self._stop_pending = False
        self._task_scopes: set[anyio.CancelScope] = set()
        self._tasks_running = 0
        self._tasks_idle: anyio.Event | None = None

    @property
    def label(self) -> str:
        return self.config.label

    def state_now(self) -> State:
        """The state, re-read (for checks after an ``await``)."""
        return self.state

    def new_ssid(self) -> str:
        return str(next(self._ssids))

    def handler_for(self, spec: ListenerSpec) -> Handler:
        return make_handler(spec, self.middlewares, self)

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
        state = self.state
        if transport is None or state is State.STOPPED or state is State.NEW:
            if state is State.STOPPED:
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
        if self.state is State.STARTING or self.state is State.RUNNING:
            assert self._started is not None
            await self._started.wait()
            if self.state_now() is State.STOPPED:
                raise AppNotRunningError(f"app {self.label!r} failed to start")
            return
        if self.state is State.STOPPED:
            raise AppNotRunningError(f"app {self.label!r} has stopped; create a new App")
        self.state = State.STARTING
        self._started = anyio.Event()
        self._stopped = anyio.Event()
        self._tasks_idle = anyio.Event()
        config = self.config
        try:
            await self.host.open()
            if self.home.kind == "loop":
                ready = anyio.Event()
                self.host.start_soon(self.home.serve_portal, ready)
                await ready.wait()
            transport = config.given or await transports.connect(
                config.url or "", **config.connect_options
            )
            self.transport = transport
            self._remove_event_listener = transport.add_event_listener(self._on_event)
            await self._subscribe_listeners(transport)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self._fail_start(exc)
            raise
        self.state = State.RUNNING
        self._started.set()
        for spec in self.task_specs:
            self._spawn_task(spec)
        if self._stop_pending:
            self.request_stop(self.failure)

    async def _subscribe_listeners(self, transport: Transport) -> None:
        config = self.config
        actives = [ActiveListener(spec, self.handler_for(spec)) for spec in self.specs]
        if config.service_name is not None and config.service_version is not None:
            service = add_service(
                transport,
                config.service_name,
                config.service_version,
                config.service_description,
                config.service_metadata,
                done_handler=self._service_done,
                error_handler=self._service_error,
            )
            self.service = service
            for active in actives:
                active.endpoint = await self.add_endpoint(service, active)
            await service.start()
        else:
            makers = [partial(self.plain_subscribe, active.spec) for active in actives]
            subscriptions = await subscribe_all(makers)
            for active, subscription in zip(actives, subscriptions, strict=True):
                self.spawn_plain(active, subscription)
        for active in actives:
            self.listeners[active.spec.ssid] = active

    async def _fail_start(self, exc: BaseException) -> None:
        _log.error("app %r failed to start: %r", self.label, exc)
        if self.service is not None:
            await self.service.stop()
        await self._close_transport()
        self.state = State.STOPPED
        await self.home.stop_portal()
        await self.host.aclose(cancel=True)
        assert self._started is not None
        assert self._stopped is not None
        self._started.set()
        self._stopped.set()

    async def add_endpoint(self, service: Service, active: ActiveListener) -> Endpoint:
        spec = active.spec
        return await service.add_endpoint(
            spec.name,
            active.handler,
            subject=spec.subject,
            queue_group=spec.queue,
            disable_queue_group=spec.queue is None,
        )

    async def plain_subscribe(self, spec: ListenerSpec) -> Subscription:
        assert self.transport is not None
        return await self.transport.subscribe(spec.subject, queue=spec.queue)

    def spawn_plain(self, active: ActiveListener, subscription: Subscription) -> None:
        active.subscription = subscription
        self.host.start_soon(self._plain_main, active, subscription)

    async def _plain_main(self, active: ActiveListener, subscription: Subscription) -> None:
        assert self.transport is not None
        error = await serve_plain(active, subscription, self.transport)
        if not active.removed and self.state is State.RUNNING:
            self.request_stop(error or SubscriptionClosedError(subscription.subject))

    # ------------------------------------------------------------------ tasks

    def _spawn_task(self, spec: TaskSpec) -> None:
        self._tasks_running += 1
        self.host.start_soon(self._task_main, spec)

    async def _task_main(self, spec: TaskSpec) -> None:
        INSIDE_APP.set(self)
        scope = anyio.CancelScope()
        try:
            if self.state is State.RUNNING:
                self._task_scopes.add(scope)
                with scope:
                    await run_task(spec, sleep=self.config.sleep, stop_app=self._task_failed)
        finally:
            self._task_scopes.discard(scope)
            self._tasks_running -= 1
            if self._tasks_running == 0 and self._tasks_idle is not None:
                self._tasks_idle.set()

    def _task_failed(self, spec: TaskSpec, exc: Exception) -> None:
        self.request_stop(exc)

    # ------------------------------------------------------------------ stopping

    def request_stop_reason(self, reason: str) -> None:
        _log.info("app %r stopping: %s", self.label, reason)
        self.request_stop(None)

    def request_stop(self, failure: BaseException | None) -> None:
        """Begin the stop (loop thread only); idempotent.

        The tasks are cancelled at once (a task that asked for the stop ends at its next
        ``await``); the rest of the shutdown runs in the background.
        """
        if failure is not None and self.failure is None and self.state is not State.STOPPED:
            self.failure = failure
        if self.state is State.NEW or self.state is State.STARTING:
            self._stop_pending = True
        elif self.state is State.RUNNING:
            self.state = State.STOPPING
            for scope in self._task_scopes:
                scope.cancel()
            self.host.start_soon(self._shutdown)

    async def disconnect(self, wait: bool) -> None:
        """Stop; with ``wait`` return once stopped (else only start the stop)."""
        with self.state_lock:
            if self.state is State.NEW:
                self.state = State.STOPPED
                return
        if self.state is State.STOPPED:
            return
        self.check_loop("disconnect")
        if self.state is State.STARTING and wait:
            assert self._started is not None
            await self._started.wait()
        self.request_stop(None)
        if wait and self._stopped is not None:
            await self._stopped.wait()

    async def wait_stopped(self) -> None:
        if self._stopped is not None:
            await self._stopped.wait()

    async def _shutdown(self) -> None:
        try:
            if self._tasks_running and self._tasks_idle is not None:
                await self._tasks_idle.wait()
            await self._drain_listeners()
            await self._close_transport()
        except Exception:
            _log.exception("app %r: error while stopping", self.label)
        finally:
            self.state = State.STOPPED
            assert self._stopped is not None
            self._stopped.set()
            await self.home.stop_portal()
            self.host.request_close()

    async def _drain_listeners(self) -> None:
        plain = [a for a in self.listeners.values() if a.subscription is not None]
        async with anyio.create_task_group() as group:
            if self.service is not None:
                group.start_soon(
                    partial(self.service.stop, grace_period=self.config.shutdown_timeout)
                )
            if plain:
                group.start_soon(self._drain_plain, plain)
        self.listeners.clear()

    async def _drain_plain(self, plain: list[ActiveListener]) -> None:
        timeout = self.config.shutdown_timeout
        with anyio.move_on_after(timeout) as deadline:
            async with anyio.create_task_group() as group:
                for active in plain:
                    assert active.subscription is not None
                    group.start_soon(drain_quietly, active.subscription)
            for active in plain:
                await active.done.wait()
        if deadline.cancelled_caught:
            _log.warning(
                "app %r: listeners still busy after %g s were cancelled", self.label, timeout
            )
            for active in plain:
                if active.subscription is not None:
                    await unsubscribe_quietly(active.subscription)
                if active.scope is not None:
                    active.scope.cancel()

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
            if self.state is State.RUNNING:
                self.request_stop(ConnectionClosedError("the connection closed while the app ran"))
        elif event.kind is TransportEventKind.ERROR and event.error is not None:
            _log.warning("app %r: connection error: %s", self.label, event.error)

    def _service_done(self, service: Service) -> None:
        if self.state is State.RUNNING:
            self.request_stop(service.stop_error or ServiceStoppedError("the service stopped"))

    def _service_error(self, service: Service, error: BaseException) -> None:
        _log.error("app %r: service error: %s", self.label, error)
