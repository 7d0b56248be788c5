"""Blocking use of an App: its own thread, blocking calls, stopping it from outside.

Every function here ends in :meth:`micro.app.sync.Home.call`: the async operation run in
the app's event loop through the app's one portal (see ``micro.app.sync``).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar

from micro.app.core import AppCore, State
from micro.app.errors import AppError, AppNotRunningError
from micro.app.listeners import INSIDE_APP
from micro.app.signals import signal_reason

__all__ = [
    "call_sync",
    "close_thread_home",
    "disconnect_at_exit",
    "disconnect_sync",
    "ensure_thread_home",
    "stop_from_signal",
    "stop_thread_home",
]

_log = logging.getLogger("micro.app")

T = TypeVar("T")


def ensure_thread_home(core: AppCore, *, start: bool = True) -> None:
    """Give an app that has no home one in its own thread (and start it there)."""
    if core.home.kind is None:
        if core.config.given is not None:
            raise AppError(
                "this App was given a transport, which belongs to the event loop that "
                "created it: run the app there first ('async with app:' or 'await "
                "app.run()'); blocking calls then work from other threads"
            )
        if core.home.start_thread(core.config.backend, core.config.backend_options):
            core.at_exit = partial(disconnect_at_exit, core)
            atexit.register(core.at_exit)
    if start and core.home.kind == "thread" and core.state in (State.NEW, State.STARTING):
        core.home.call("start", "run", core.start)


def call_sync(core: AppCore, method: str, async_method: str, work: Callable[[], Awaitable[T]]) -> T:
    """Run ``await work()`` in the app's loop through the portal (starting the app in
    its own thread if it has not started)."""
    core.home.check_not_in_loop(method, async_method)
    if core.state in (State.NEW, State.STARTING) and core.home.kind != "loop":
        ensure_thread_home(core)
    return core.home.call(method, async_method, work)


def disconnect_sync(core: AppCore) -> None:
    """``disconnect()`` from outside the loop; then end the app's own thread (if any).

    From a worker thread of one of the app's listeners or tasks it only starts the stop.
    """
    core.home.check_not_in_loop("disconnect_sync", "disconnect")
    with core.state_lock:
        if core.state is State.NEW and core.home.kind is None:
            core.state = State.STOPPED
            return
    inside = INSIDE_APP.get() is core
    if core.state is not State.STOPPED:
        with contextlib.suppress(AppNotRunningError):
            core.home.call("disconnect_sync", "disconnect", partial(core.disconnect, not inside))
    if not inside:
        close_thread_home(core)


def stop_thread_home(core: AppCore) -> None:
    """After ``start()``: make sure the app stopped, then end its thread."""
    if core.state is not State.STOPPED and core.home.kind == "thread":
        with contextlib.suppress(AppNotRunningError):
            core.home.call("start", "run", partial(core.disconnect, True))
    close_thread_home(core)


def close_thread_home(core: AppCore) -> None:
    core.home.close_thread()
    if core.at_exit is not None and not core.home.in_loop_thread():
        atexit.unregister(core.at_exit)
        core.at_exit = None


def disconnect_at_exit(core: AppCore) -> None:
    """At interpreter exit: stop an app still running in its own thread, so that what
    it published is flushed and its connection closed (nothing lost silently)."""
    try:
        disconnect_sync(core)
    except Exception as exc:
        _log.warning("app %r: stopping at exit failed: %r", core.label, exc)


def stop_from_signal(core: AppCore, signum: int) -> None:
    """In the thread blocked in ``start()``: ask the app's loop to stop (not waiting)."""
    _log.info("app %r: %s received", core.label, signal_reason(signum))
    with contextlib.suppress(AppError, RuntimeError):
        portal = core.home.portal("start")
        portal.start_task_soon(core.request_stop_reason, signal_reason(signum))
