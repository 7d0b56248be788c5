"""``App``: the decorator-style API of the App Functions page, compiled onto the core.

An app is a connection (``transports.connect(url)`` or a given Transport), listeners
(``@app.listen`` / ``subscribe_new_subject``), tasks (``@app.task``) and middlewares.
With ``service_name`` and ``service_version`` it is also a :class:`~micro.service.Service`
on the same connection: every listener is one of its endpoints, so the app answers
``$SRV`` PING/INFO/STATS and its listeners get statistics -- nothing exists only here.

Life cycle: ``NEW -> STARTING -> RUNNING -> STOPPING -> STOPPED``; an app runs once.
Starting connects, subscribes every listener (live before any task runs), then starts the
tasks.  Stopping (``disconnect``, a stop signal, or a failure) cancels the tasks, drains
the listeners (bounded by ``shutdown_timeout``), stops the service and closes the
connection if the app opened it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from types import TracebackType
from typing import Any, TypeVar

import anyio

from micro._support import as_transport
from micro.app import blocking
from micro.app.calls import Calls, NatsFacade
from micro.app.config import config_from
from micro.app.core import AppCore, State
from micro.app.data_types import DataType, codec_for
from micro.app.errors import AppError, AppNotRunningError
from micro.app.middleware import Middleware, check_middleware_class
from micro.app.registry import OnError, make_listener_spec, make_task_spec
from micro.app.signals import DEFAULT_STOP_SIGNALS, SignalCatcher, watch_signals
from micro.app.tasks import Sleep
from micro.service import Service
from micro.validation import (
    validate_endpoint_name,
    validate_metadata,
    validate_service_name,
    validate_version,
)
from transports.base import Transport
from transports.subjects import validate_pattern, validate_queue

__all__ = ["DEFAULT_REQUEST_TIMEOUT", "App"]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_REQUEST_TIMEOUT = 5.0


class App(Calls):
    """A NATS application: listeners, tasks and middlewares on one connection.

    ``url`` (``"memory://"``, ``"nats://host:4222"``, ...) is connected with
    :func:`transports.connect` (``connect_options`` passed on) and closed by the app;
    alternatively ``transport`` is a connected Transport (or nats-py client) that the app
    uses but does not close.  ``service_name`` + ``service_version`` (+ description and
    metadata) make the app a discoverable service.  ``request_timeout`` is the default of
    :meth:`request`.  ``backend``/``backend_options`` choose the event loop of the app's
    own thread (blocking use, :meth:`start`).  ``sleep`` is how periodic tasks wait
    (inject a fake for tests).  ``stop_signals`` are handled by :meth:`run` and
    :meth:`start` in the main thread.  ``shutdown_timeout`` bounds draining at stop.

    Raises ``ValueError``/``ValidationError``/``TypeError`` naming any bad argument.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        transport: Transport | Any = None,
        service_name: str | None = None,
        service_version: str | None = None,
        service_description: str | None = None,
        service_metadata: Mapping[str, str] | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        connect_options: Mapping[str, Any] | None = None,
        backend: str = "asyncio",
        backend_options: Mapping[str, Any] | None = None,
        sleep: Sleep | None = None,
        stop_signals: Sequence[int] = DEFAULT_STOP_SIGNALS,
        shutdown_timeout: float = 30.0,
    ) -> None:
        if (url is None) == (transport is None):
            raise ValueError(
                "App needs exactly one of url (e.g. 'memory://' or 'nats://127.0.0.1:4222') "
                f"or transport=, got url={url!r} and transport={transport!r}"
            )
        if url is not None and not isinstance(url, str):
            raise TypeError(f"url must be a str, got {type(url).__name__}")
        if (service_name is None) != (service_version is None):
            raise ValueError(
                "service_name and service_version go together (a service needs both), got "
                f"service_name={service_name!r}, service_version={service_version!r}"
            )
        if service_name is not None and service_version is not None:
            validate_service_name(service_name)
            validate_version(service_version)
        config = config_from(
            url=url,
            given=None if transport is None else as_transport(transport),
            service_name=service_name,
            service_version=service_version,
            service_description=service_description,
            service_metadata=validate_metadata(service_metadata, "service metadata"),
            request_timeout=request_timeout,
            shutdown_timeout=shutdown_timeout,
            connect_options=connect_options,
            backend=backend,
            backend_options=backend_options,
            sleep=sleep,
            stop_signals=stop_signals,
        )
        self._core = AppCore(config)
        self._nats = NatsFacade(self, self._core)

    def __repr__(self) -> str:
        config = self._core.config
        target = config.url if config.url is not None else type(config.given).__name__
        return f"<App {config.label} {target} {self._core.state.value}>"

    # ------------------------------------------------------------------ read-only views

    @property
    def nats(self) -> NatsFacade:
        """The page's ``app.nats`` spelling of every call."""
        return self._nats

    @property
    def transport(self) -> Transport | None:
        """The connection (``None`` before an app with a URL has started)."""
        return self._core.transport or self._core.config.given

    @property
    def service(self) -> Service | None:
        """The core service, for a running app given a service name and version."""
        return self._core.service

    @property
    def middlewares(self) -> tuple[Middleware, ...]:
        """The middleware instances, first added (innermost) first."""
        return self._core.middlewares.items

    @property
    def subscriptions(self) -> dict[str, str]:
        """``{ssid: subject}`` of the listeners (registered or live)."""
        core = self._core
        if core.state is State.NEW:
            return {spec.ssid: spec.subject for spec in core.specs}
        return {ssid: active.spec.subject for ssid, active in core.listeners.items()}

    @property
    def is_running(self) -> bool:
        """True from a completed start until a stop begins."""
        return self._core.state is State.RUNNING

    # ------------------------------------------------------------------ decorators

    def _check_new(self, what: str, instead: str) -> None:
        if self._core.state is not State.NEW:
            raise AppError(f"app.{what}() registers before the app starts; {instead}")

    def listen(
        self,
        subject: str,
        *,
        queue: str | None = None,
        data_type: DataType = None,
        name: str | None = None,
    ) -> Callable[[F], F]:
        """Decorator: call the function for every message on ``subject`` (wildcards allowed).

        ``queue`` joins a queue group (one member gets each message); ``data_type``
        decodes the body (default: any JSON value); ``name`` is the endpoint name on a
        service app (default: the function's name).  For a request, a returned value
        other than ``None`` is the reply.  The function may be ``async def`` (run in the
        loop) or ``def`` (run in a worker thread).  Returns the function unchanged.
        """
        self._check_new("listen", "use 'await app.subscribe_new_subject(...)' while it runs")
        if callable(subject) and not isinstance(subject, str):
            raise TypeError(
                "listen() needs the subject: write @app.listen(subject='a.b') (with "
                f"parentheses), got the callable {subject!r}"
            )
        validate_pattern(subject)
        validate_queue(queue)
        codec_for(data_type)
        if name is not None:
            validate_endpoint_name(name)

        def register(callback: F) -> F:
            self._check_new("listen", "use 'await app.subscribe_new_subject(...)'")
            spec = make_listener_spec(
                self._core.new_ssid,
                subject,
                callback,
                queue=queue,
                data_type=data_type,
                name=name,
            )
            self._core.specs.append(spec)
            return callback

        return register

    def task(
        self, interval: float | None = None, *, on_error: OnError = "log", name: str | None = None
    ) -> Callable[[F], F]:
        """Decorator: run the function once when the app starts, or every ``interval`` s.

        Periodic runs never overlap: the next starts ``interval`` s after the previous
        finished.  ``on_error``: ``"log"`` (default; log and go on) or ``"stop"`` (log and
        stop the app, whose ``run``/``start`` then raise ``AppFailedError``).  The function
        takes no argument; ``async def`` runs in the loop, ``def`` in a worker thread.
        """
        self._check_new("task", "tasks are registered before the app starts")
        make_task_spec(_placeholder, interval=interval, on_error=on_error, name="check")

        def register(func: F) -> F:
            self._check_new("task", "tasks are registered before the app starts")
            self._core.task_specs.append(
                make_task_spec(func, interval=interval, on_error=on_error, name=name)
            )
            return func

        return register

    def add_middleware(self, cls: type[Middleware], *args: Any, **kwargs: Any) -> Middleware:
        """Create ``cls(*args, **kwargs)`` and add it as the outermost middleware.

        It applies to every later send and received message, for every listener (also
        those added before it).  Returns the instance.  ``TypeError`` unless ``cls`` is a
        :class:`~micro.app.Middleware` subclass.
        """
        middleware = check_middleware_class(cls)(*args, **kwargs)
        self._core.middlewares.add(middleware)
        return middleware

    # ------------------------------------------------------------------ life cycle: async

    async def __aenter__(self) -> App:
        """Start the app in the current event loop (listeners live, tasks started)."""
        self._core.home.bind_loop()
        await self._core.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the app (see :meth:`disconnect`); raise its failure if the block did not."""
        with anyio.CancelScope(shield=True):
            await self._core.disconnect(wait=True)
            await self._core.host.wait_closed()
        if exc is None:
            self._core.raise_failure()

    async def run(self, *, handle_signals: bool = True) -> None:
        """Start the app (if needed) and run it until it is stopped.

        Stops on :meth:`disconnect`, on a stop signal (``handle_signals``, main thread,
        through :func:`anyio.open_signal_receiver`) or on a failure.  Returns after a clean
        stop; raises :class:`~micro.app.errors.AppFailedError` (``__cause__``: the error)
        after a failure, and the start error if it could not start.  If the caller is
        cancelled, the app is stopped first.
        """
        core = self._core
        core.home.bind_loop()
        signals = core.config.stop_signals if handle_signals else ()
        start_error: Exception | None = None
        try:
            async with anyio.create_task_group() as group:
                await group.start(watch_signals, signals, core.request_stop_reason)
                try:
                    await core.start()
                except Exception as exc:
                    start_error = exc
                else:
                    await core.wait_stopped()
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await core.disconnect(wait=True)
                await core.host.wait_closed()
        if start_error is not None:
            raise start_error
        core.raise_failure()

    # ------------------------------------------------------------------ life cycle: blocking

    def start(self) -> None:
        """Run the app until it stops, blocking the calling thread (the page's ``start``).

        The app's loop runs in the app's own thread; stop signals received by the main
        thread stop it gracefully.  Raises like :meth:`run`.  Not from async code in the
        app's loop (``SyncCallInLoopError``), nor for an app entered with ``async with``.
        """
        core = self._core
        core.home.check_not_in_loop("start", "run")
        if core.home.kind == "loop":
            raise AppError(
                "app.start() blocks; this app already runs in an event loop: use 'await app.run()'"
            )
        if core.state is State.STOPPED:
            raise AppNotRunningError(f"app {core.label!r} has stopped; create a new App")
        with SignalCatcher(core.config.stop_signals) as signals:
            try:
                blocking.ensure_thread_home(core, start=False)
                portal = core.home.portal("start")
                try:
                    future = portal.start_task_soon(partial(self.run, handle_signals=False))
                except RuntimeError as exc:
                    raise AppNotRunningError(f"app {core.label!r} has stopped") from exc
                signals.wait(future, partial(blocking.stop_from_signal, core))
            finally:
                blocking.stop_thread_home(core)


def _placeholder() -> None:
    """Stands in for the function while ``task()`` checks its options eagerly."""
