"""One-shot waiters for the in-memory broker's hot paths, per async backend.

anyio's portable primitives cost several microseconds per hand-off on asyncio (see
``shared/bench/ANCHORS.md``); a request round trip through the memory broker needs two
hand-offs and should cost little more than the event loop's own task switches.  So a
:class:`Waiter` is the cheapest wait point each backend offers:

* asyncio: a bare ``asyncio.Future`` from the running loop (no wrapper object);
* trio: :class:`transports._wakeup_trio.TrioWaiter`, parking the task with
  ``trio.lowlevel`` and giving the same five methods as a Future.

The backend is detected per call from the running asyncio loop, so trio is never
imported under asyncio.  Producers call :func:`wake` / :func:`fail` (no effect once
the waiter is done, e.g. cancelled); one consumer awaits the waiter itself (no
timeout) or :func:`wait` (timeout).  On asyncio timeouts go through an
:class:`Expiry` owned by the caller (one per connection) that keeps one
``loop.call_at`` timer for many waits instead of a timer per wait.
"""

from __future__ import annotations

import sys
import time
from asyncio import AbstractEventLoop, Future, TimerHandle, _get_running_loop
from asyncio import current_task as _asyncio_current_task
from collections.abc import Callable, Generator
from typing import Any, Protocol, TypeVar, cast

__all__ = [
    "TIMED_OUT",
    "Expiry",
    "Waiter",
    "call_later",
    "call_soon",
    "current_task",
    "now",
    "expire_due",
    "fail",
    "new_waiter",
    "wait",
    "wake",
]

T = TypeVar("T")

TIMED_OUT: Any = object()
"""The value an expired waiter is given; ``wait`` turns it into ``TimeoutError``."""


class Waiter(Protocol[T]):
    """What ``asyncio.Future`` and ``TrioWaiter`` share; awaiting it returns the value."""

    def done(self) -> bool: ...

    def set_result(self, result: T, /) -> None: ...

    def set_exception(self, exception: BaseException, /) -> None: ...

    def result(self) -> T: ...

    def __await__(self) -> Generator[Any, None, T]: ...


def new_waiter() -> Waiter[Any]:
    """A fresh waiter for the running backend (asyncio, else trio)."""
    loop = _get_running_loop()
    if loop is not None:
        return loop.create_future()
    return cast(Waiter[Any], _trio_module().TrioWaiter())


def wake(waiter: Waiter[T], value: T) -> None:
    """Hand ``value`` to the waiter; no effect once it is done.

    A waiter left behind by an event loop that has since finished (a connection to a
    long-lived broker that was never closed) cannot be woken; it is ignored.
    """
    if not waiter.done():
        try:  # (not contextlib.suppress: this is the hot path)
            waiter.set_result(value)
        except RuntimeError:  # its event loop is closed / its trio run is over
            return


def fail(waiter: Waiter[Any], error: BaseException) -> None:
    """Make the waiter raise ``error``; no effect once it is done (see :func:`wake`)."""
    if not waiter.done():
        try:
            waiter.set_exception(error)
        except RuntimeError:
            return


async def wait(waiter: Waiter[T], timeout: float, expiry: Expiry) -> T:
    """The waiter's value, or builtin :class:`TimeoutError` after ``timeout`` seconds
    (``<= 0``: only a value that is already there)."""
    if waiter.done():
        return waiter.result()
    if timeout <= 0:
        raise TimeoutError
    expiry.add(waiter, timeout)
    try:
        result = await waiter
    finally:
        expiry.discard(waiter)
    if result is TIMED_OUT:
        raise TimeoutError
    return result


class Expiry:
    """Times out many waiters with one timer (one ``Expiry`` per owner, e.g. a connection).

    :meth:`add` gives a waiter a deadline: unless it is done or discarded first, it is
    then set to :data:`TIMED_OUT`.  asyncio: one ``loop.call_at`` handle, re-armed only
    when a new deadline is earlier than the armed one; when it fires it expires what is
    due and re-arms for the rest.  trio: one system task
    (``transports._wakeup_trio.TrioTimer``) doing the same, since a cancel scope per
    wait costs more than a whole request here.  Sequential waits with equal timeouts
    thus cost a dict insert and delete each.  :meth:`close` stops the timer.
    """

    __slots__ = ("_handle", "_loop", "_trio_timer", "_waiting", "_when")

    def __init__(self) -> None:
        self._loop: AbstractEventLoop | None = None
        self._handle: TimerHandle | None = None
        self._when = 0.0
        self._waiting: dict[Waiter[Any], float] = {}
        self._trio_timer: Any = None

    def add(self, waiter: Waiter[Any], timeout: float) -> None:
        """Set ``waiter`` to :data:`TIMED_OUT` after ``timeout`` (> 0) seconds."""
        if isinstance(waiter, Future):
            self._add_future(waiter, timeout)
            return
        timer = self._trio_timer
        if timer is None or not timer.is_current():
            self._waiting.clear()
            timer = self._trio_timer = _trio_module().TrioTimer(self._waiting)
        timer.add(waiter, timeout)

    def discard(self, waiter: Waiter[Any]) -> None:
        """Forget ``waiter``'s deadline (call it when the waiter is done otherwise)."""
        self._waiting.pop(waiter, None)

    def close(self) -> None:
        """Stop the timers; waiters still pending no longer time out."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._waiting.clear()
        if self._trio_timer is not None:
            self._trio_timer.close()
            self._trio_timer = None

    def _add_future(self, future: Future[Any], timeout: float) -> None:
        loop = future.get_loop()
        if loop is not self._loop:  # first use, or a new event loop: start afresh
            if self._handle is not None:
                self._handle.cancel()
            self._loop, self._handle = loop, None
            self._waiting.clear()
        deadline = loop.time() + timeout
        self._waiting[future] = deadline
        if self._handle is None or deadline < self._when:
            self._arm(loop, deadline)

    def _arm(self, loop: AbstractEventLoop, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._when = when
        self._handle = loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        loop = self._loop
        if loop is not None:
            remaining = expire_due(self._waiting, loop.time())
            if remaining is not None:
                self._arm(loop, remaining)


def expire_due(waiting: dict[Waiter[Any], float], now: float) -> float | None:
    """Set every waiter whose deadline has passed to :data:`TIMED_OUT` and forget it;
    return the earliest deadline left, if any."""
    for waiter in [waiter for waiter, deadline in waiting.items() if deadline <= now]:
        del waiting[waiter]
        if not waiter.done():
            waiter.set_result(TIMED_OUT)
    return min(waiting.values()) if waiting else None


def _trio_module() -> Any:
    module = sys.modules.get("transports._wakeup_trio")
    if module is None:
        from transports import _wakeup_trio as module
    return module


def call_soon(callback: Callable[[], object]) -> None:
    """Run ``callback`` soon, from the running event loop, outside the caller's frame.

    Falls back to calling it at once when no event loop is running.
    """
    loop = _get_running_loop()
    if loop is not None:
        loop.call_soon(callback)
    elif "trio" in sys.modules:
        _trio_module().call_soon(callback)
    else:
        callback()


def call_later(delay: float, callback: Callable[[], object]) -> None:
    """Run ``callback`` after ``delay`` seconds of the running backend's clock (so a trio
    ``MockClock`` makes it virtual).  Requires a running event loop (asyncio or trio)."""
    loop = _get_running_loop()
    if loop is not None:
        loop.call_later(delay, callback)
    else:
        _trio_module().call_later(delay, callback)


def current_task() -> object:
    """The running task (an ``asyncio.Task`` or a ``trio.lowlevel.Task``), ``None`` outside."""
    loop = _get_running_loop()
    if loop is not None:
        return _asyncio_current_task(loop)
    if "trio" in sys.modules:
        return _trio_module().current_task()
    return None


def now() -> float:
    """The running backend's clock (``loop.time()`` / ``trio.current_time()``: virtual under
    a trio ``MockClock``); ``time.monotonic()`` outside an event loop."""
    loop = _get_running_loop()
    if loop is not None:
        return loop.time()
    if "trio" in sys.modules:
        return float(_trio_module().now())
    return time.monotonic()
