"""Start, stop and the events that stop a service (PROTOCOL §8).

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
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING

import anyio

from micro._monitoring import control_subscribes, serve_control
from micro._support import (
    call_callback,
    drain_quietly,
    error_subject_matches,
    offers,
    unsubscribe_quietly,
)
from micro.errors import ServiceStoppedError
from transports.base import (
    SlowConsumerError,
    Subscription,
    TransportEvent,
    TransportEventKind,
)
from transports.extensions import InProcessBroker, MultiSubscription
from transports.runtime import Event, new_event

if TYPE_CHECKING:
    from micro.service import Service

__all__ = [
    "Lifecycle",
    "State",
    "schedule_stop",
    "start",
    "stop",
    "subscription_ended",
    "wait_stopped",
]

_log = logging.getLogger("micro.service")

ABORT_LIMIT = 5.0
"""Seconds each step of a hard stop (unsubscribing, awaiting cancelled tasks) may take."""


class State(enum.Enum):
    CREATED = "created"
    STARTING = "starting"
    STARTED = "started"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Lifecycle:
    """State, stop error, and the events a service's life cycle waits on."""

    __slots__ = (
        "_idle",
        "_loops",
        "_settled",
        "_stopped",
        "early_end",
        "error",
        "finished",
        "inline_drains",
        "state",
    )

    def __init__(self) -> None:
        self.state = State.CREATED
        self.error: BaseException | None = None
        self.finished = False
        # a receive loop that ended while starting: handled once the service has started
        self.early_end: tuple[Subscription, BaseException | None] | None = None
        # the transport's broker runs in this process (``InProcessBroker``): stop() then
        # drains the subscriptions with nothing buffered inline instead of a task each
        self.inline_drains = False
        self._settled: Event | None = None
        self._stopped: Event | None = None
        self._idle: Event | None = None
        self._loops = 0

    @property
    def is_ending(self) -> bool:
        return self.state is State.STOPPING or self.state is State.STOPPED

    def begin_start(self) -> None:
        self.state = State.STARTING
        self._settled = new_event()

    def settle_start(self) -> None:
        if self._settled is not None:
            self._settled.set()

    async def wait_start_settled(self) -> None:
        """Wait while a ``start()`` is in progress."""
        if self.state is State.STARTING and self._settled is not None:
            await self._settled.wait()

    def loop_started(self) -> None:
        self._loops += 1

    def loop_ended(self) -> None:
        self._loops -= 1
        if self._loops == 0 and self._idle is not None:
            self._idle.set()

    async def wait_loops_done(self) -> None:
        while self._loops:
            self._idle = new_event()
            await self._idle.wait()

    def mark_stopped(self) -> None:
        self.state = State.STOPPED

    def wake_stop_waiters(self) -> None:
        if self._stopped is not None:
            self._stopped.set()

    async def wait_stopped(self) -> None:
        if self.state is State.STOPPED:
            return
        if self._stopped is None:
            self._stopped = new_event()
        await self._stopped.wait()


async def start(service: Service) -> None:
    life = service._life
    if life.state is State.STARTING or life.state is State.STARTED:
        raise RuntimeError(f"{service!r} is already started")
    if life.is_ending:
        raise ServiceStoppedError(f"cannot start {service!r}: it has stopped")
    life.begin_start()
    control = control_subscribes(service)
    endpoints = list(service._endpoints)
    made = _Subscribed(len(control) + len(endpoints))
    try:
        await service._host.open()
        service._remove_listener = service._transport.add_event_listener(
            partial(_on_event, service)
        )
        # One task per subscription subscribes, then serves it: the subscribes run
        # concurrently (over NATS their barriers share one round trip).
        host = service._host
        transport = service._transport
        for index, (verbs, maker) in enumerate(control):
            serve = partial(serve_control, service, transport, verbs)
            life.loop_started()  # control loops are library code only: no cancel scope
            host.start_internal(_subscribe_then_serve, life, made, index, maker, serve)
        for index, endpoint in enumerate(endpoints, len(control)):
            life.loop_started()
            host.start_soon(
                _subscribe_then_serve, life, made, index, endpoint.subscribe, endpoint.serve
            )
        life.inline_drains = offers(transport, InProcessBroker) and transport.in_process
        subscriptions = await made.wait_all()
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            await _fail_start(service, exc, made)
        raise
    service._control = subscriptions[: len(control)]
    service._started = service._now()
    life.state = State.STARTED
    life.settle_start()
    if life.early_end is not None:  # a loop ended before we were started: now it counts
        subscription_ended(service, *life.early_end)


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


async def _subscribe_then_serve(
    life: Lifecycle,
    made: _Subscribed,
    index: int,
    subscribe: Callable[[], Awaitable[Subscription]],
    serve: Callable[[Subscription], Awaitable[None]],
) -> None:
    """A starting service's task for one subscription (a receive loop, counted in ``life``):
    subscribe, report, serve.

    It serves at once (a request may be answered before ``start()`` returns); should the
    start fail, ``start()`` cancels it and removes the subscription."""
    try:
        try:
            subscription = await subscribe()
        except Exception as exc:
            made.report(index, None, exc)
            return
        except BaseException:
            made.report(index, None, RuntimeError("subscribing was cancelled"))
            raise
        made.report(index, subscription, None)
        await serve(subscription)
    finally:
        life.loop_ended()


async def _fail_start(service: Service, exc: BaseException, made: _Subscribed) -> None:
    await service._host.aclose(cancel=True)
    for subscription in made.subscriptions:  # all tasks are done: what they made goes
        if subscription is not None:
            await unsubscribe_quietly(subscription)
    service._life.error = exc if isinstance(exc, Exception) else None
    service._life.settle_start()
    await _finish(service)


async def stop(service: Service, error: BaseException | None, grace_period: float | None) -> None:
    life = service._life
    host = service._host
    await life.wait_start_settled()
    if life.state is State.CREATED:
        life.error = error
        await _finish(service)
        return
    if life.state is State.STOPPED:
        return
    if life.state is State.STOPPING:
        if not host.is_current():
            with anyio.move_on_after(grace_period):
                await life.wait_stopped()
            if not life.finished:
                await _abort(service, f"still stopping after {grace_period} s")
        return
    life.state = State.STOPPING
    life.error = error
    if host.is_current():
        host.start_soon(_stop_inside, service, None, False)
        return
    try:
        await _shutdown(service, grace_period)
        await host.aclose()
    except BaseException:  # cancelled while stopping: stop hard, then let it propagate
        with anyio.CancelScope(shield=True):
            await _abort(service, "stop() was cancelled")
        raise


def schedule_stop(service: Service, error: BaseException | None, *, notify: bool) -> None:
    """Stop ``service`` in the background (from an event or a receive loop).

    With ``notify`` the error handler is told about ``error`` first.  Does nothing unless
    the service is serving.
    """
    life = service._life
    if life.state is not State.STARTED or not service._host.is_open:
        return
    life.state = State.STOPPING
    life.error = error
    service._host.start_soon(_stop_inside, service, error, notify)


async def wait_stopped(service: Service) -> BaseException | None:
    await service._life.wait_stopped()
    return service._life.error


async def _stop_inside(service: Service, error: BaseException | None, notify: bool) -> None:
    if notify and error is not None:
        _log.error("service %r stops: %s", service.name, error)
        await call_callback("error_handler", service._error_handler, service, error)
    await _shutdown(service, None)
    service._host.request_close()


def _subscriptions(service: Service) -> list[Subscription]:
    endpoints = [endpoint.subscription for endpoint in service._endpoints]
    return [*service._control, *(sub for sub in endpoints if sub is not None)]


async def _shutdown(service: Service, grace_period: float | None) -> None:
    """The graceful stop: drain everything concurrently, wait for the loops, finish.

    Each drain runs as a task of the service's host (over NATS their barriers share one
    round trip), or inline when that is cheaper (``_drain_all``); a loop ends once its
    subscription has drained, so waiting for the loops waits for the drains too (the
    host's close awaits what is left of the drain tasks)."""
    if grace_period is None:
        await _drain_all(service)
        await service._life.wait_loops_done()
    else:
        with anyio.move_on_after(grace_period) as deadline:
            await _drain_all(service)
            await service._life.wait_loops_done()
        if deadline.cancelled_caught:
            await _abort(service, f"requests still running after {grace_period} s")
            return
    await _finish(service)


async def _drain_all(service: Service) -> None:
    """Drain every subscription of ``service``: the last one right here, the others each
    in a task of its host, started first so that they all stop their interest in the same
    event-loop turn (over NATS: one UNSUB batch and one PING).  Returns once the last one
    has drained; the loops end as their subscriptions do.  (If the host has failed: all
    of them in a task group here.)

    When the transport declares an in-process broker (``transports.extensions.InProcessBroker``),
    a subscription with nothing buffered is drained right here too, which costs less than a
    task: its drain has nothing to wait for.  (Were it to wait after all, the result would be
    the same, only later.)"""
    host = service._host
    subscriptions = _subscriptions(service)
    if not host.is_open:
        async with anyio.create_task_group() as group:
            for subscription in subscriptions:
                group.start_soon(drain_quietly, subscription)
        return
    if not subscriptions:
        return
    *others, last = subscriptions
    inline = service._life.inline_drains
    for subscription in others:
        if inline and not subscription.pending_msgs:
            await drain_quietly(subscription)
        else:
            host.start_internal(drain_quietly, subscription)
    await drain_quietly(last)


async def _abort(service: Service, reason: str) -> None:
    """The hard stop: unsubscribe everything, cancel every task of the host, finish.

    Each step is bounded by :data:`ABORT_LIMIT` seconds so that it cannot hang.
    """
    _log.warning("service %r stops hard (running handlers are cancelled): %s", service.name, reason)
    with anyio.move_on_after(ABORT_LIMIT):
        for subscription in _subscriptions(service):
            await unsubscribe_quietly(subscription)
    host = service._host
    host.request_close(cancel=True)
    if not host.is_current():
        with anyio.move_on_after(ABORT_LIMIT):
            await host.wait_closed()
    await _finish(service)


async def _finish(service: Service) -> None:
    """Mark stopped (once): listener removed, endpoints cleared, done handler, waiters."""
    life = service._life
    if life.finished:
        return
    life.finished = True
    if service._remove_listener is not None:
        service._remove_listener()
        service._remove_listener = None
    service._control = []
    service._endpoints.clear()
    life.mark_stopped()
    try:
        await call_callback("done_handler", service._done_handler, service)
    finally:
        life.wake_stop_waiters()


def subscription_ended(
    service: Service, subscription: Subscription, error: BaseException | None
) -> None:
    """A receive loop ended.  Unless the service is stopping, that is fatal: with the
    connection gone it stops quietly, otherwise with ``required subscription <subject>
    stopped`` (the error handler is told first)."""
    life = service._life
    if life.state is not State.STARTED:
        if life.state is State.STARTING and life.early_end is None:
            life.early_end = (subscription, error)
        return
    transport = service._transport
    if transport.is_closed or not transport.is_connected:
        schedule_stop(service, None, notify=False)
        return
    failure = ServiceStoppedError(f"required subscription {subscription.subject} stopped")
    if error is not None:
        failure.__cause__ = error
    schedule_stop(service, failure, notify=True)


def _on_event(service: Service, event: TransportEvent) -> None:
    """The connection listener: stop on CLOSED and on errors that concern our subjects."""
    if service._life.state is not State.STARTED:
        return
    if event.kind is TransportEventKind.CLOSED:
        schedule_stop(service, None, notify=False)
        return
    error = event.error
    if event.kind is not TransportEventKind.ERROR or error is None:
        return
    subject = getattr(error, "subject", None)
    if not isinstance(subject, str) or not subject:
        return
    concerned = False
    for endpoint in service._endpoints:
        if error_subject_matches(endpoint.subject, subject):
            endpoint.record_error(str(error))
            concerned = True
    if not concerned:
        concerned = any(
            error_subject_matches(control, subject)
            for sub in service._control
            for control in (sub.subjects if isinstance(sub, MultiSubscription) else (sub.subject,))
        )
    if not concerned:
        return
    if isinstance(error, SlowConsumerError):
        # Dropped messages are load, not a broken subscription: they are counted on the
        # endpoint (above) and reported to the error handler, and the service keeps serving
        # (nats.go stops the service here; PROTOCOL §7.2 only requires counting).
        service._report_error(error)
        return
    schedule_stop(service, error, notify=True)
