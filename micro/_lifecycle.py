"""Start, stop and the events that stop a service (ADR-32, Design: ``stop()`` drains).

One :class:`Lifecycle` per service owns what its life cycle is made of: the state, the
task host running its loops, its subscriptions (control and endpoints, with the list of
endpoints), and the connection listener.  It is also the service's
:class:`~micro.group.EndpointSite`: groups add endpoints through it.  The service is
passed to it only as the argument of the done and error handlers, so this module does
not import ``micro.service``.

States: ``CREATED -> STARTING -> STARTED -> STOPPING -> STOPPED`` (``stop()`` before
``start()`` goes straight to ``STOPPED``; a failed start ends in ``STOPPED`` with the error).

Starting: one task per subscription (the control subscriptions -- one made by
``subscribe_many`` where the transport offers it, else nine -- and one per endpoint)
subscribes and then serves it, so the subscribes run concurrently (over NATS they share
one PING/PONG round trip) and no extra task is spent on them.  A loop serves as soon as
its subscription is live; a loop that ends before the service is ``STARTED`` is handled
once it is.  If any subscribe fails, the tasks are cancelled, what was subscribed is
removed and ``start()`` raises that error.

Stopping, whoever asks (``stop()``, the connection closing, a fatal subscription event):

1. the state becomes ``STOPPING`` at once (later ``add_endpoint`` calls fail);
2. every subscription -- control and endpoints -- is drained (concurrently: one in the
   stopping task, the others in a task each; one after another when the transport's
   subscribes never suspended, see ``_drain_all``), and the receive loops are awaited, so
   requests already received are answered;
3. the event listener is removed, endpoints are cleared, the state becomes ``STOPPED``;
4. ``done_handler`` is called once, then ``wait_stopped()`` waiters wake up;
5. the task host closes (awaited by an outside ``stop()`` caller).

A stop triggered from inside the service (a handler or callback calling ``stop()``, or an
event) runs as a task of the service's own host and closes the host without waiting for
itself.

A ``stop()`` whose ``grace_period`` runs out, or whose caller is cancelled (e.g. leaving
``async with service`` on Ctrl-C), stops *hard* instead of half-way: subscriptions are
removed, running handlers are cancelled, then steps 3-5 run (each step bounded).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable, Sequence

import anyio

from micro._support import (
    call_callback,
    drain_quietly,
    error_subject_matches,
    offers,
    unsubscribe_quietly,
)
from micro.endpoint import Endpoint
from micro.errors import ServiceStoppedError, ValidationError, last_error_text
from transports.base import (
    SlowConsumerError,
    Subscription,
    Transport,
    TransportEvent,
    TransportEventKind,
)
from transports.extensions import InProcessBroker, MultiSubscription
from transports.runtime import Event, new_event
from transports.runtime_tasks import TaskHost

__all__ = ["STOPPED_MESSAGE", "Lifecycle", "Loop", "State"]

_log = logging.getLogger("micro.service")

ABORT_LIMIT = 5.0
"""Seconds each step of a hard stop (unsubscribing, awaiting cancelled tasks) may take."""

STOPPED_MESSAGE = "Cannot add endpoint to a stopped service"

Subscribe = Callable[[], Awaitable[Subscription]]
Serve = Callable[[Subscription], Awaitable[BaseException | None]]
Loop = tuple[Subscribe, Serve]
"""How to subscribe, and the receive loop serving the subscription (it never raises, and
returns the error it failed with, if any)."""


class State(enum.Enum):
    CREATED = "created"
    STARTING = "starting"
    STARTED = "started"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Lifecycle:
    """The life cycle of one service: state, task host, subscriptions, endpoints, listener.

    ``owner`` (the service) is what the ``done_handler`` and ``error_handler`` receive and
    what messages name; ``name`` is the service name for logs, ``label`` names the task
    host, ``identity`` is the service's (name, version, instance id) for endpoint-bound
    middlewares.  ``clock`` and ``expose_exception_text`` are the settings the service's endpoints
    are built with (see :class:`~micro.group.EndpointSite`).
    """

    __slots__ = (
        "_control",
        "_done_handler",
        "_early_end",
        "_error_handler",
        "_finished",
        "_host",
        "_idle",
        "_inline_drains",
        "_loops",
        "_name",
        "_owner",
        "_remove_listener",
        "_settled",
        "_stopped",
        "clock",
        "endpoints",
        "error",
        "expose_exception_text",
        "identity",
        "state",
        "transport",
    )

    def __init__(
        self,
        owner: object,
        transport: Transport,
        *,
        name: str,
        label: str,
        clock: Callable[[], int],
        expose_exception_text: bool,
        error_handler: Callable[..., object] | None,
        done_handler: Callable[..., object] | None,
        identity: tuple[str, str, str] = ("", "", ""),
    ) -> None:
        self._owner = owner
        self.identity = identity
        self.transport = transport
        self._name = name
        self.clock = clock
        self.expose_exception_text = expose_exception_text
        self._error_handler = error_handler
        self._done_handler = done_handler
        self.state = State.CREATED
        self.error: BaseException | None = None
        self.endpoints: list[Endpoint] = []
        """The endpoints, in registration order (cleared once stopped)."""
        self._host = TaskHost(label, _log)
        self._control: list[Subscription] = []
        self._remove_listener: Callable[[], None] | None = None
        self._finished = False
        # a receive loop that ended while starting: handled once the service has started
        self._early_end: tuple[Subscription, BaseException | None] | None = None
        # the transport's broker runs in this process (``InProcessBroker``): stop() then
        # drains the subscriptions with nothing buffered inline instead of a task each
        self._inline_drains = False
        self._settled: Event | None = None
        self._stopped: Event | None = None
        self._idle: Event | None = None
        self._loops = 0

    @property
    def service_name(self) -> str:
        """The service's name (for the endpoints' log records)."""
        return self._name

    @property
    def is_ending(self) -> bool:
        return self.state is State.STOPPING or self.state is State.STOPPED

    @property
    def control(self) -> tuple[Subscription, ...]:
        """The live control subscriptions (empty before start and once stopped)."""
        return tuple(self._control)

    # ------------------------------------------------------------------ endpoints

    def check_open(self) -> None:
        """Raise :class:`ServiceStoppedError` once the service is stopping or stopped."""
        if self.is_ending:
            raise ServiceStoppedError(STOPPED_MESSAGE)

    async def attach(self, endpoint: Endpoint) -> None:
        """Add ``endpoint``: kept for ``start()`` before the service starts, otherwise
        subscribed (live on return) and served (see :class:`~micro.group.EndpointSite`)."""
        await self._wait_start_settled()
        self._check_new_name(endpoint)
        if self.state is State.CREATED:
            self.endpoints.append(endpoint)
            return
        self.check_open()
        subscription = await endpoint.subscribe()
        if self.is_ending:
            await drain_quietly(subscription)
            raise ServiceStoppedError(STOPPED_MESSAGE)
        try:
            self._check_new_name(endpoint)  # another add_endpoint may have won meanwhile
        except ValidationError:
            await drain_quietly(subscription)
            raise
        self.endpoints.append(endpoint)
        self._loops += 1
        self._host.start_soon(self._serve, endpoint.serve, subscription, endpoint)

    def _check_new_name(self, endpoint: Endpoint) -> None:
        """Raise :class:`ValidationError` when an endpoint named like ``endpoint`` exists."""
        for other in self.endpoints:
            if other.name == endpoint.name:
                raise ValidationError(
                    f"endpoint name {endpoint.name!r} is already used in service "
                    f"{self._name!r} (subject {other.subject!r}): endpoint names are unique "
                    "within a service"
                )

    async def remove(self, endpoint: Endpoint | str) -> None:
        """Remove an endpoint (or the endpoint with that name) and drain it; see
        ``Service.remove_endpoint``."""
        target = self._find(endpoint)
        self.endpoints.remove(target)
        subscription = target.subscription
        if subscription is None:
            return
        if self._host.is_current():
            self._host.start_soon(drain_quietly, subscription)
            return
        await drain_quietly(subscription)
        await target.wait_done()

    def _find(self, endpoint: Endpoint | str) -> Endpoint:
        if isinstance(endpoint, Endpoint):
            if not any(candidate is endpoint for candidate in self.endpoints):
                raise ValueError(
                    f"endpoint {endpoint.name!r} ({endpoint.subject}) is not in {self._owner!r}"
                )
            return endpoint
        for candidate in self.endpoints:
            if candidate.name == endpoint:
                return candidate
        names = sorted(candidate.name for candidate in self.endpoints)
        raise ValueError(f"no endpoint named {endpoint!r}; endpoints: {names}")

    # ------------------------------------------------------------------ receive loops

    def _loop_ended(self) -> None:
        self._loops -= 1
        if self._loops == 0 and self._idle is not None:
            self._idle.set()

    async def _wait_loops_done(self) -> None:
        while self._loops:
            self._idle = new_event()
            await self._idle.wait()

    async def _subscribe_then_serve(
        self,
        made: _Subscribed,
        index: int,
        subscribe: Subscribe,
        serve: Serve,
        endpoint: Endpoint | None,
    ) -> None:
        """A starting service's task for one subscription (a receive loop, counted):
        subscribe, report, serve.

        It serves at once (a request may be answered before ``start()`` returns); should the
        start fail, ``start()`` cancels it and removes the subscription."""
        try:
            subscription = await subscribe()
        except Exception as exc:
            made.report(index, None, exc)
            self._loop_ended()
            return
        except BaseException:
            made.report(index, None, RuntimeError("subscribing was cancelled"))
            self._loop_ended()
            raise
        made.report(index, subscription, None)
        await self._serve(serve, subscription, endpoint)

    async def _serve(
        self, serve: Serve, subscription: Subscription, endpoint: Endpoint | None
    ) -> None:
        """A receive loop (counted): serve ``subscription`` to its end, which counts
        (``_subscription_ended``) unless it is the end of a removed endpoint."""
        try:
            error = await serve(subscription)
            if endpoint is None or endpoint in self.endpoints:
                self._subscription_ended(subscription, error)
        finally:
            self._loop_ended()

    # ------------------------------------------------------------------ start

    async def start(self, control: Sequence[Loop]) -> None:
        """Subscribe the ``control`` loops and every endpoint, and serve them; see
        ``Service.start``."""
        if self.state is State.STARTING or self.state is State.STARTED:
            raise RuntimeError(f"{self._owner!r} is already started")
        if self.is_ending:
            raise ServiceStoppedError(f"cannot start {self._owner!r}: it has stopped")
        self.state = State.STARTING
        self._settled = new_event()
        endpoints = list(self.endpoints)
        made = _Subscribed(len(control) + len(endpoints))
        host = self._host
        transport = self.transport
        try:
            await host.open()
            self._remove_listener = transport.add_event_listener(self._on_event)
            # One task per subscription subscribes, then serves it: the subscribes run
            # concurrently (over NATS their barriers share one round trip).
            for index, (subscribe, serve) in enumerate(control):
                self._loops += 1  # control loops are library code only: no cancel scope
                host.start_internal(self._subscribe_then_serve, made, index, subscribe, serve, None)
            for index, endpoint in enumerate(endpoints, len(control)):
                self._loops += 1
                host.start_soon(
                    self._subscribe_then_serve,
                    made,
                    index,
                    endpoint.subscribe,
                    endpoint.serve,
                    endpoint,
                )
            self._inline_drains = offers(transport, InProcessBroker) and transport.in_process
            subscriptions = await made.wait_all()
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self._fail_start(exc, made)
            raise
        self._control = subscriptions[: len(control)]
        self.state = State.STARTED
        self._settle_start()
        if self._early_end is not None:  # a loop ended before we were started: now it counts
            self._subscription_ended(*self._early_end)

    def _settle_start(self) -> None:
        if self._settled is not None:
            self._settled.set()

    async def _wait_start_settled(self) -> None:
        """Wait while a ``start()`` is in progress."""
        if self.state is State.STARTING and self._settled is not None:
            await self._settled.wait()

    async def _fail_start(self, exc: BaseException, made: _Subscribed) -> None:
        await self._host.aclose(cancel=True)
        for subscription in made.subscriptions:  # all tasks are done: what they made goes
            if subscription is not None:
                await unsubscribe_quietly(subscription)
        self.error = exc if isinstance(exc, Exception) else None
        self._settle_start()
        await self._finish()

    # ------------------------------------------------------------------ stop

    async def stop(self, error: BaseException | None, grace_period: float | None) -> None:
        """Stop (idempotent); see ``Service.stop``."""
        host = self._host
        await self._wait_start_settled()
        if self.state is State.CREATED:
            self.error = error
            await self._finish()
            return
        if self.state is State.STOPPED:
            return
        if self.state is State.STOPPING:
            if not host.is_current():
                with anyio.move_on_after(grace_period):
                    await self.wait_stopped()
                if not self._finished:
                    await self._abort(f"still stopping after {grace_period} s")
            return
        self.state = State.STOPPING
        self.error = error
        if host.is_current():
            host.start_soon(self._stop_inside, None, False)
            return
        try:
            await self._shutdown(grace_period)
            await host.aclose()
        except BaseException:  # cancelled while stopping: stop hard, then let it propagate
            with anyio.CancelScope(shield=True):
                await self._abort("stop() was cancelled")
            raise

    async def wait_stopped(self) -> BaseException | None:
        """Wait until the service has stopped; returns the error it stopped with."""
        if self.state is not State.STOPPED:
            if self._stopped is None:
                self._stopped = new_event()
            await self._stopped.wait()
        return self.error

    def _schedule_stop(self, error: BaseException | None, *, notify: bool) -> None:
        """Stop in the background (from an event or a receive loop).

        With ``notify`` the error handler is told about ``error`` first.  Does nothing unless
        the service is serving.
        """
        if self.state is not State.STARTED or not self._host.is_open:
            return
        self.state = State.STOPPING
        self.error = error
        self._host.start_soon(self._stop_inside, error, notify)

    async def _stop_inside(self, error: BaseException | None, notify: bool) -> None:
        if notify and error is not None:
            _log.error("service %r stops: %s", self._name, error)
            await call_callback("error_handler", self._error_handler, self._owner, error)
        await self._shutdown(None)
        self._host.request_close()

    def _subscriptions(self) -> list[Subscription]:
        endpoints = [endpoint.subscription for endpoint in self.endpoints]
        return [*self._control, *(sub for sub in endpoints if sub is not None)]

    async def _shutdown(self, grace_period: float | None) -> None:
        """The graceful stop: drain everything concurrently, wait for the loops, finish.

        Each drain runs as a task of the host (over NATS their barriers share one round
        trip), or inline when that is cheaper (``_drain_all``); a loop ends once its
        subscription has drained, so waiting for the loops waits for the drains too (the
        host's close awaits what is left of the drain tasks)."""
        if grace_period is None:
            await self._drain_all()
            await self._wait_loops_done()
        else:
            with anyio.move_on_after(grace_period) as deadline:
                await self._drain_all()
                await self._wait_loops_done()
            if deadline.cancelled_caught:
                await self._abort(f"requests still running after {grace_period} s")
                return
        await self._finish()

    async def _drain_all(self) -> None:
        """Drain every subscription: the last one right here, the others each in a task of
        the host, started first so that they all stop their interest in the same event-loop
        turn (over NATS: one UNSUB batch and one PING).  Returns once the last one has
        drained; the loops end as their subscriptions do.  (If the host has failed: all of
        them in a task group here.)

        When the transport declares an in-process broker
        (``transports.extensions.InProcessBroker``), a subscription with nothing buffered is
        drained right here too, which costs less than a task: its drain has nothing to wait
        for.  (Were it to wait after all, the result would be the same, only later.)"""
        host = self._host
        subscriptions = self._subscriptions()
        if not host.is_open:
            async with anyio.create_task_group() as group:
                for subscription in subscriptions:
                    group.start_soon(drain_quietly, subscription)
            return
        if not subscriptions:
            return
        *others, last = subscriptions
        inline = self._inline_drains
        for subscription in others:
            if inline and not subscription.pending_msgs:
                await drain_quietly(subscription)
            else:
                host.start_internal(drain_quietly, subscription)
        await drain_quietly(last)

    async def _abort(self, reason: str) -> None:
        """The hard stop: unsubscribe everything, cancel every task of the host, finish.

        Each step is bounded by :data:`ABORT_LIMIT` seconds so that it cannot hang.
        """
        _log.warning(
            "service %r stops hard (running handlers are cancelled): %s", self._name, reason
        )
        with anyio.move_on_after(ABORT_LIMIT):
            for subscription in self._subscriptions():
                await unsubscribe_quietly(subscription)
        host = self._host
        host.request_close(cancel=True)
        if not host.is_current():
            with anyio.move_on_after(ABORT_LIMIT):
                await host.wait_closed()
        await self._finish()

    async def _finish(self) -> None:
        """Mark stopped (once): listener removed, endpoints cleared, done handler, waiters."""
        if self._finished:
            return
        self._finished = True
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        self._control = []
        self.endpoints.clear()
        self.state = State.STOPPED
        try:
            await call_callback("done_handler", self._done_handler, self._owner)
        finally:
            if self._stopped is not None:
                self._stopped.set()

    # ------------------------------------------------------------------ events

    def report_error(self, error: BaseException) -> None:
        """Tell the error handler about ``error`` without stopping (in the background)."""
        if self._host.is_open:
            self._host.start_soon(
                call_callback, "error_handler", self._error_handler, self._owner, error
            )
        else:
            _log.warning("service %r: %s", self._name, error)

    def _subscription_ended(self, subscription: Subscription, error: BaseException | None) -> None:
        """A receive loop ended.  Unless the service is stopping, that is fatal: with the
        connection gone it stops quietly, otherwise with ``required subscription <subject>
        stopped`` (the error handler is told first)."""
        if self.state is not State.STARTED:
            if self.state is State.STARTING and self._early_end is None:
                self._early_end = (subscription, error)
            return
        transport = self.transport
        if transport.is_closed or not transport.is_connected:
            self._schedule_stop(None, notify=False)
            return
        failure = ServiceStoppedError(f"required subscription {subscription.subject} stopped")
        if error is not None:
            failure.__cause__ = error
        self._schedule_stop(failure, notify=True)

    def _on_event(self, event: TransportEvent) -> None:
        """The connection listener: stop on CLOSED and on errors that concern our subjects."""
        if self.state is not State.STARTED:
            return
        if event.kind is TransportEventKind.CLOSED:
            self._schedule_stop(None, notify=False)
            return
        error = event.error
        if event.kind is not TransportEventKind.ERROR or error is None:
            return
        subject = getattr(error, "subject", None)
        if not isinstance(subject, str) or not subject:
            return
        concerned = False
        for endpoint in self.endpoints:
            if error_subject_matches(endpoint.subject, subject):
                endpoint.record_error(last_error_text(error))
                concerned = True
        if not concerned:
            concerned = any(
                error_subject_matches(control, subject)
                for sub in self._control
                for control in (
                    sub.subjects if isinstance(sub, MultiSubscription) else (sub.subject,)
                )
            )
        if not concerned:
            return
        if isinstance(error, SlowConsumerError):
            # Dropped messages are load, not a broken subscription: they are counted on the
            # endpoint (above) and reported to the error handler, and the service keeps
            # serving (nats.go stops the service here; ADR-32 only asks for counting).
            self.report_error(error)
            return
        self._schedule_stop(error, notify=True)


class _Subscribed:
    """The subscriptions of a starting service, made concurrently by the tasks that serve
    them; ``start()`` waits until every task has reported."""

    __slots__ = ("_all_reported", "_unreported", "errors", "subscriptions")

    def __init__(self, count: int) -> None:
        self.subscriptions: list[Subscription | None] = [None] * count
        self.errors: list[Exception] = []
        self._unreported = count
        self._all_reported = new_event()
        if not count:
            self._all_reported.set()

    def report(
        self, index: int, subscription: Subscription | None, error: Exception | None
    ) -> None:
        if subscription is not None:
            self.subscriptions[index] = subscription
        if error is not None:
            self.errors.append(error)
        self._unreported -= 1
        if self._unreported == 0:
            self._all_reported.set()

    async def wait_all(self) -> list[Subscription]:
        """All subscriptions, once every task reported; the first error if one failed."""
        await self._all_reported.wait()
        if self.errors:
            raise self.errors[0]
        return [sub for sub in self.subscriptions if sub is not None]
