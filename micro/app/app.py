"""``App``: the decorator-style API of the App Functions page, compiled onto the core.

An app is a connection (``transports.connect(url)`` or a given Transport), listeners
(``@app.listen`` / ``subscribe_new_subject``), tasks (``@app.task``) and middlewares.
Every listener is an endpoint of a core :class:`~micro.service.Service` on that
connection; with ``service_name`` and ``service_version`` that service is discoverable
(the app answers ``$SRV`` PING/INFO/STATS), without them it is not -- nothing exists only
here.

Life cycle (``micro.app.core``): ``NEW -> STARTING -> RUNNING -> STOPPING -> STOPPED``; an
app runs once.  Starting connects, subscribes every listener (live before any task runs),
then starts the tasks.  Stopping (``disconnect``, a stop signal, or a failure) cancels the
tasks, drains the listeners (bounded by ``shutdown_timeout``), stops the service and
closes the connection if the app opened it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from types import TracebackType
from typing import Any, TypeVar

import anyio

from micro._running import DEFAULT_STOP_SIGNALS, Phase, SignalCatcher, watch_signals
from micro._support import as_transport
from micro.app.calls import Calls
from micro.app.config import AppConfig, positive_seconds
from micro.app.core import AppCore
from micro.app.data_types import DataType
from micro.app.errors import AppError, AppNotRunningError
from micro.app.middleware import Middleware, check_middleware_class
from micro.app.registry import (
    SERVICE_QUEUE,
    OnError,
    Queue,
    check_listener_options,
    check_task_options,
    make_task_spec,
)
from micro.app.tasks import Sleep
from micro.service import Service
from micro.validation import validate_metadata, validate_service_name, validate_version
from transports.base import Transport
from transports.urls import redact_url

__all__ = ["DEFAULT_MAX_CONCURRENCY", "DEFAULT_REQUEST_TIMEOUT", "App", "NatsFacade"]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_REQUEST_TIMEOUT = 5.0

DEFAULT_MAX_CONCURRENCY = 1000
"""How many messages an app's listeners handle at once, together, unless told otherwise."""


def _shown(url: object) -> object:
    """``url`` as it may appear in a message (credentials redacted)."""
    return redact_url(url) if isinstance(url, str) else url


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
    ``max_concurrency`` bounds how many messages the listeners handle at once, all
    together (each message is its own task; more wait, buffered, in their subscriptions);
    it is also each listener's own bound unless ``@app.listen`` says otherwise.

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
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    ) -> None:
        if (url is None) == (transport is None):
            raise ValueError(
                "App needs exactly one of url (e.g. 'memory://' or 'nats://127.0.0.1:4222') "
                f"or transport=, got url={_shown(url)!r} and transport={transport!r}"
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
        if (
            isinstance(max_concurrency, bool)
            or not isinstance(max_concurrency, int)
            or max_concurrency < 1
        ):
            raise ValueError(f"invalid max_concurrency {max_concurrency!r}: must be an int >= 1")
        if sleep is not None and not callable(sleep):
            raise TypeError(f"sleep must be an async callable, got {sleep!r}")
        config = AppConfig(
            label=service_name or "app",
            url=url,
            given=None if transport is None else as_transport(transport),
            service_name=service_name,
            service_version=service_version,
            service_description=service_description,
            service_metadata=validate_metadata(service_metadata, "service metadata"),
            request_timeout=positive_seconds("request_timeout", request_timeout),
            shutdown_timeout=positive_seconds("shutdown_timeout", shutdown_timeout),
            connect_options=dict(connect_options or {}),
            backend=backend,
            backend_options=dict(backend_options) if backend_options else None,
            sleep=sleep or anyio.sleep,
            stop_signals=tuple(stop_signals),
            max_concurrency=max_concurrency,
        )
        self._core = AppCore(config)
        self._nats = NatsFacade(self, self._core)

    def __repr__(self) -> str:
        config = self._core.config
        given = type(config.given).__name__
        target = redact_url(config.url) if config.url is not None else given
        return f"<App {config.label} {target} {self._core.life.phase.value}>"

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
        """The core service, for a running app given a service name and version (an app
        without them serves its listeners through a service that is not discoverable, and
        not offered here)."""
        core = self._core
        return core.service if core.config.service_name is not None else None

    @property
    def middlewares(self) -> tuple[Middleware, ...]:
        """The middleware instances, first added (innermost) first."""
        return self._core.middlewares.items

    @property
    def subscriptions(self) -> dict[str, str]:
        """``{ssid: subject}`` of the listeners (registered or live)."""
        core = self._core
        if core.life.phase is Phase.NEW:
            return {spec.ssid: spec.subject for spec in core.specs}
        return {ssid: endpoint.subject for ssid, endpoint in core.listeners.items()}

    @property
    def is_running(self) -> bool:
        """True from a completed start until a stop begins."""
        return self._core.life.phase is Phase.RUNNING

    # ------------------------------------------------------------------ decorators

    def _check_new(self, what: str, instead: str) -> None:
        if self._core.life.phase is not Phase.NEW:
            raise AppError(f"app.{what}() registers before the app starts; {instead}")

    def listen(
        self,
        subject: str | Sequence[str],
        *,
        queue: Queue = SERVICE_QUEUE,
        data_type: DataType = None,
        name: str | None = None,
        max_concurrency: int | None = None,
        ordered: bool = False,
    ) -> Callable[[F], F]:
        """Decorator: call the function for every message on ``subject`` (wildcards
        allowed), or on each subject of a list (one endpoint per subject).

        ``queue``: by default the service's queue group when the app has a
        ``service_name`` (replicas share the messages, as ADR-32 endpoints do) and none
        otherwise; ``None`` for a plain subscription, or a queue group name.
        ``data_type`` decodes the body (default: any JSON value); ``name`` is the endpoint
        name (default: the function's name, made unique in the app).  Messages are handled
        concurrently, each in its own task, up to ``max_concurrency`` at once (default:
        the app's); ``ordered=True`` handles them one at a time, in order.  For a request,
        a returned value other than ``None`` is the reply, encoded by its type.  The
        function may be ``async def`` (run in the loop) or ``def`` (run in a worker
        thread).  Returns the function unchanged.
        """
        self._check_new("listen", "use 'await app.subscribe_new_subject(...)' while it runs")
        subjects, codec, own_bound = check_listener_options(
            subject, queue, data_type, name, max_concurrency, ordered
        )

        def register(callback: F) -> F:
            self._check_new("listen", "use 'await app.subscribe_new_subject(...)'")
            core = self._core
            core.specs.extend(
                core.listener_specs(
                    subjects,
                    callback,
                    queue=queue,
                    codec=codec,
                    name=name,
                    max_concurrency=own_bound,
                )
            )
            return callback

        return register

    def task(
        self, interval: float | None = None, *, on_error: OnError = "log", name: str | None = None
    ) -> Callable[[F], F]:
        """Decorator: run the function once when the app starts, or every ``interval`` s.

        The interval is measured from the start of each run; runs never overlap (a run
        longer than the interval is followed by the next at once).  ``on_error``:
        ``"log"`` (default; log and go on) or ``"stop"`` (log and stop the app, whose
        ``run``/``start`` then raise ``AppFailedError``).  The function takes no argument;
        ``async def`` runs in the loop, ``def`` in a worker thread.
        """
        self._check_new("task", "tasks are registered before the app starts")
        seconds = check_task_options(interval, on_error, name)

        def register(func: F) -> F:
            self._check_new("task", "tasks are registered before the app starts")
            self._core.task_specs.append(
                make_task_spec(func, interval=seconds, on_error=on_error, name=name)
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
            await self._core.disconnect()
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
                    await core.life.wait_until(Phase.STOPPED)
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await core.disconnect()
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
        if core.life.phase is Phase.STOPPED:
            raise AppNotRunningError(f"app {core.label!r} has stopped; create a new App")
        with SignalCatcher(core.config.stop_signals) as signals:
            core.ensure_thread_home(start=False)
            try:
                portal = core.home.portal("start")
                try:
                    future = portal.start_task_soon(partial(self.run, handle_signals=False))
                except RuntimeError as exc:
                    raise AppNotRunningError(f"app {core.label!r} has stopped") from exc
                signals.wait(future, core.stop_from_signal)
            finally:
                core.stop_blocking(core.disconnect)  # stopped already, unless interrupted


class NatsFacade(Calls):
    """``app.nats``: the same calls under the page's other spelling (``app.nats.publish``,
    ``app.nats.publish_from_another_thread``, ...)."""

    def __init__(self, app: App, core: AppCore) -> None:
        self._app = app
        self._core = core

    @property
    def app(self) -> App:
        return self._app

    def __repr__(self) -> str:
        return f"<app.nats of {self._app!r}>"
