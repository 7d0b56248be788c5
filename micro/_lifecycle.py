"""Start, stop and the events that stop a service (PROTOCOL §8).

States: ``CREATED -> STARTING -> STARTED -> STOPPING -> STOPPED`` (``stop()`` before
``start()`` goes straight to ``STOPPED``; a failed start ends in ``STOPPED`` with the error).

Stopping, whoever asks (``stop()``, the connection closing, a fatal subscription event):

1. the state becomes ``STOPPING`` at once (later ``add_endpoint`` calls fail);
2. every subscription -- control and endpoints -- is drained concurrently, and the
   receive loops are awaited, so requests already received are answered;
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
from functools import partial
from typing import TYPE_CHECKING

import anyio

from micro._support import (
    call_callback,
    drain_quietly,
    error_subject_matches,
    subscribe_all,
    unsubscribe_quietly,
)
from micro.errors import ServiceStoppedError
from transports.base import Subscription, TransportEvent, TransportEventKind

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

    __slots__ = ("_idle", "_loops", "_settled", "_stopped", "error", "finished", "state")

    def __init__(self) -> None:
        self.state = State.CREATED
        self.error: BaseException | None = None
        self.finished = False
        self._settled: anyio.Event | None = None
        self._stopped: anyio.Event | None = None
        self._idle: anyio.Event | None = None
        self._loops = 0

    @property
    def is_ending(self) -> bool:
        return self.state is State.STOPPING or self.state is State.STOPPED

    def begin_start(self) -> None:
        self.state = State.STARTING
        self._settled = anyio.Event()

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
            self._idle = anyio.Event()
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
            self._stopped = anyio.Event()
        await self._stopped.wait()


async def start(service: Service) -> None:
    life = service._life
    if life.state is State.STARTING or life.state is State.STARTED:
        raise RuntimeError(f"{service!r} is already started")
    if life.is_ending:
        raise ServiceStoppedError(f"cannot start {service!r}: it has stopped")
    life.begin_start()
    control = service._control_makers()
    endpoints = list(service._endpoints)
    try:
        await service._host.open()
        service._remove_listener = service._transport.add_event_listener(
            partial(_on_event, service)
        )
        subscriptions = await subscribe_all(
            [maker for _, maker in control] + [endpoint.subscribe for endpoint in endpoints]
        )
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            await _fail_start(service, exc)
        raise
    service._control = subscriptions[: len(control)]
    service._started = service._now()
    life.state = State.STARTED
    for (verb, _), subscription in zip(control, service._control, strict=True):
        service._serve_control(verb, subscription)
    for endpoint, subscription in zip(endpoints, subscriptions[len(control) :], strict=True):
        service._spawn_loop(endpoint.serve, subscription)
    life.settle_start()


async def _fail_start(service: Service, exc: BaseException) -> None:
    await service._host.aclose(cancel=True)
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
    """The graceful stop: drain everything concurrently, wait for the loops, finish."""
    with anyio.move_on_after(grace_period) as deadline:
        async with anyio.create_task_group() as group:
            for subscription in _subscriptions(service):
                group.start_soon(drain_quietly, subscription)
        await service._life.wait_loops_done()
    if deadline.cancelled_caught:
        await _abort(service, f"requests still running after {grace_period} s")
        return
    await _finish(service)


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
    if service._life.state is not State.STARTED:
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
        concerned = any(error_subject_matches(sub.subject, subject) for sub in service._control)
    if concerned:
        schedule_stop(service, error, notify=True)
