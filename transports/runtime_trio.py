"""The trio half of ``transports.runtime``: imported only when code runs under trio.

Public trio API only (``trio.lowlevel`` included); this module imports nothing else of the
library, so ``transports.runtime`` can import it lazily without an import cycle.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import trio

__all__ = [
    "TrioTimer",
    "TrioWaiter",
    "call_later",
    "call_soon",
    "current_task",
    "now",
    "spawn_system_task",
    "task_is_alive",
]

_EMPTY, _SET, _FAILED = 0, 1, 2

Expire = Callable[[dict[Any, float], float], "float | None"]
"""``expire(waiting, now) -> earliest deadline left``: ``transports.runtime.expire_due``."""


class TrioWaiter:
    """A one-shot value cell with the Future methods ``transports.runtime`` uses; the
    awaiting task parks with ``trio.lowlevel`` and is rescheduled by ``set_result``."""

    __slots__ = ("_state", "_task", "_value")

    def __init__(self) -> None:
        self._state = _EMPTY
        self._task: trio.lowlevel.Task | None = None
        self._value: Any = None

    def done(self) -> bool:
        return self._state != _EMPTY

    def _finish(self, state: int, value: Any) -> None:
        if self._state != _EMPTY:
            raise RuntimeError("this waiter is already done")
        self._state = state
        self._value = value
        task = self._task
        if task is not None:
            self._task = None
            trio.lowlevel.reschedule(task)

    def set_result(self, result: Any, /) -> None:
        self._finish(_SET, result)

    def set_exception(self, exception: BaseException, /) -> None:
        self._finish(_FAILED, exception)

    def result(self) -> Any:
        if self._state == _FAILED:
            raise self._value
        if self._state == _EMPTY:
            raise RuntimeError("this waiter is not done yet")
        return self._value

    def _abort(self, _raise_cancel: Any) -> trio.lowlevel.Abort:
        self._task = None
        return trio.lowlevel.Abort.SUCCEEDED

    def __await__(self) -> Generator[Any, None, Any]:
        if self._state == _EMPTY:
            self._task = trio.lowlevel.current_task()
            parked = trio.lowlevel.wait_task_rescheduled(self._abort)  # noqa: ASYNC105
            yield from parked.__await__()  # awaited here; saves a coroutine frame
        return self.result()


class TrioTimer:
    """Expires the waiters of one ``transports.runtime.Expiry`` from one system task.

    The task sleeps until the earliest deadline in ``waiting`` (shared with the
    ``Expiry``), then calls ``expire(waiting, now)``; :meth:`add` wakes it early only when a
    new deadline is earlier than the one it sleeps until.  Bound to the trio run that
    created it (:meth:`is_current`).
    """

    def __init__(self, waiting: dict[Any, float], expire: Expire) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._waiting = waiting
        self._expire = expire
        self._when = math.inf
        self._poke: TrioWaiter | None = None
        self._scope = trio.CancelScope()
        trio.lowlevel.spawn_system_task(self._run, name="transports.runtime expiry timer")

    def is_current(self) -> bool:
        try:
            return trio.lowlevel.current_trio_token() is self._token
        except RuntimeError:
            return False

    def add(self, waiter: TrioWaiter, timeout: float) -> None:
        deadline = trio.current_time() + timeout
        self._waiting[waiter] = deadline
        if deadline < self._when:
            poke = self._poke
            if poke is not None and not poke.done():
                poke.set_result(None)

    def close(self) -> None:
        self._scope.cancel()

    async def _run(self) -> None:
        with self._scope:
            while True:
                earliest = self._expire(self._waiting, trio.current_time())
                self._when = math.inf if earliest is None else earliest
                self._poke = poke = TrioWaiter()
                with trio.move_on_at(self._when):
                    await poke
                self._poke = None


def call_soon(callback: Callable[[], object]) -> None:
    """Run ``callback`` soon from trio's run loop; at once when trio is not running."""
    try:
        token = trio.lowlevel.current_trio_token()
    except RuntimeError:
        callback()
        return
    token.run_sync_soon(callback)


def call_later(delay: float, callback: Callable[[], object]) -> None:
    """Run ``callback`` after ``delay`` seconds of trio's clock, from a system task (so it
    never runs inside the caller and survives the caller's cancellation).  A callback that
    raises is logged; a run that ends first cancels it."""
    trio.lowlevel.spawn_system_task(_later, delay, callback, name="transports.runtime call_later")


async def _later(delay: float, callback: Callable[[], object]) -> None:
    await trio.sleep(delay)
    try:
        callback()
    except Exception:  # a system task must not raise: it would crash the whole run
        logging.getLogger("transports.runtime").exception("delayed callback %r failed", callback)


def spawn_system_task(func: Callable[..., Awaitable[object]], *args: Any, name: str) -> None:
    """Run ``await func(*args)`` as a trio system task: outside every user nursery, so it
    outlives its caller, and cancelled only when the run ends.  An exception escaping it
    aborts the whole run, so ``func`` must handle its own."""
    trio.lowlevel.spawn_system_task(func, *args, name=name)


def current_task() -> object:
    """The running trio task, or ``None`` outside a trio run."""
    try:
        return trio.lowlevel.current_task()
    except RuntimeError:
        return None


def now() -> float:
    """trio's clock inside a run, else ``time.monotonic()``."""
    try:
        return trio.current_time()
    except RuntimeError:
        return time.monotonic()


def task_is_alive(task: Any) -> bool:
    """False once the ``trio.lowlevel.Task`` has finished (its coroutine is closed)."""
    coro = getattr(task, "coro", None)
    return coro is None or inspect.getcoroutinestate(coro) != inspect.CORO_CLOSED
