"""The async runtime under ``transports`` and ``micro``: the running backend, waiters, timers
and task hosting, on asyncio and on trio.

The library runs on both backends through anyio, except where anyio's portable primitives
cost too much for a per-message path (2-12x their asyncio equivalents here, see
``bench/RESULTS.md``; ``bench/`` measures the paths that use this module).  Those
paths use what this module offers instead, the cheapest primitive of each backend:

* **backend**: :func:`running_loop` (the running asyncio loop, or ``None`` under trio or
  outside an event loop), :func:`current_async_library`, :func:`current_task`,
  :func:`task_of`, :func:`now`, :func:`call_soon`, :func:`call_later`;
* **waiters**: a :class:`Waiter` is a one-shot value cell one task awaits -- a bare
  ``asyncio.Future`` on asyncio, ``transports.runtime_trio.TrioWaiter`` on trio.  Producers
  call :func:`wake` / :func:`fail` (no effect once it is done, e.g. cancelled); the consumer
  awaits the waiter itself (no timeout) or :func:`wait` (timeout);
* **timers**: an :class:`Expiry` times out many waiters with one timer;
* **events**: :func:`new_event` (``asyncio.Event`` on asyncio, ``anyio.Event`` on trio);
* **idle detection** for test brokers: :func:`all_tasks_blocked`, :func:`task_is_alive`.

The trio half lives in ``transports.runtime_trio`` (public trio API only) and is imported
only when code runs under trio, so trio is never imported under asyncio.  Task hosting
(tasks that outlive the call that started them, such as a service's receive loops) is
``transports.runtime_tasks.TaskHost``, built on this module.

**Private APIs.**  Every use of a private asyncio or trio attribute in this library is in
this module, and each is pinned by ``tests/test_runtime.py``, which fails loudly when a
Python release changes it (a test also checks that no other module uses one):

* ``asyncio._get_running_loop`` (:func:`running_loop`): the running loop or ``None``, where
  the public ``asyncio.get_running_loop`` raises instead -- a ``try``/``except`` on every
  message costs more than the call;
* ``asyncio.tasks._current_tasks`` (:func:`task_of`): the running task of a loop, as a dict
  lookup instead of a call (per message in the memory broker's consumer);
* ``BaseEventLoop._ready`` (:func:`all_tasks_blocked`): CPython's queue of runnable
  callbacks; empty twice in a row means no task is runnable.  Another loop implementation
  without it gets a generous number of yields instead;
* ``Handle._callback`` (:func:`all_tasks_blocked`): the callback of a ready handle, whose
  ``__self__`` is the task when it is a task's next step -- so that waiters there do not
  count each other's wake-ups as runnable work (a callback without it counts as runnable).
"""

from __future__ import annotations

import asyncio
import sys
import time
from asyncio import AbstractEventLoop, Future, TimerHandle
from collections.abc import Callable, Generator
from typing import Any, Protocol, TypeVar, cast

import anyio

__all__ = [
    "TIMED_OUT",
    "Event",
    "Expiry",
    "Waiter",
    "all_tasks_blocked",
    "call_later",
    "call_soon",
    "call_soon_in",
    "current_async_library",
    "current_home",
    "current_task",
    "expire_due",
    "fail",
    "new_event",
    "new_waiter",
    "now",
    "running_loop",
    "task_is_alive",
    "task_of",
    "wait",
    "wake",
]

T = TypeVar("T")

# --------------------------------------------------------------------------- the backend

running_loop: Callable[[], AbstractEventLoop | None] = asyncio._get_running_loop
"""The running asyncio event loop, or ``None`` (under trio, or outside any event loop)."""

try:  # CPython's {loop: running task}
    from asyncio.tasks import _current_tasks  # type: ignore[attr-defined]

    task_of: Callable[[AbstractEventLoop], object] = _current_tasks.get
    """The task ``loop`` is running right now (``None`` between tasks)."""
except ImportError:  # pragma: no cover - an interpreter without it: the public call
    task_of = asyncio.current_task


def current_async_library() -> str:
    """``"asyncio"`` or ``"trio"``: the event loop running the calling task.

    Raises ``RuntimeError`` outside of a running asyncio or trio event loop.
    """
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_trio_token()
        except RuntimeError:
            pass
        else:
            return "trio"
    if running_loop() is None:
        raise RuntimeError("this needs a running asyncio or trio event loop")
    return "asyncio"


def _trio() -> Any:
    """``transports.runtime_trio``, imported on first use (only ever under trio)."""
    module = sys.modules.get("transports.runtime_trio")
    if module is None:
        from transports import runtime_trio as module
    return module


def current_home() -> object:
    """The event loop running the calling code, as :func:`call_soon_in` takes it: the
    running asyncio loop, or the trio run's token; ``None`` outside any event loop."""
    loop = running_loop()
    if loop is not None:
        return loop
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            return trio.lowlevel.current_trio_token()
        except RuntimeError:
            return None
    return None


def call_soon_in(home: object, callback: Callable[..., object], *args: Any) -> bool:
    """Run ``callback(*args)`` soon on the event loop ``home`` (from :func:`current_home`),
    from any thread, in the order of the calls.  ``False`` when that loop has finished (the
    callback is dropped, as a message to a process that exited)."""
    try:
        if isinstance(home, AbstractEventLoop):
            home.call_soon_threadsafe(callback, *args)
        else:
            home.run_sync_soon(callback, *args)  # type: ignore[attr-defined]
    except RuntimeError:  # asyncio: loop closed; trio: RunFinishedError
        return False
    return True


def call_soon(callback: Callable[[], object]) -> None:
    """Run ``callback`` soon, from the running event loop, outside the caller's frame.

    Falls back to calling it at once when no event loop is running.
    """
    loop = running_loop()
    if loop is not None:
        loop.call_soon(callback)
    elif "trio" in sys.modules:
        _trio().call_soon(callback)
    else:
        callback()


def call_later(delay: float, callback: Callable[[], object]) -> None:
    """Run ``callback`` after ``delay`` seconds of the running backend's clock (so a trio
    ``MockClock`` makes it virtual).  Requires a running event loop (asyncio or trio)."""
    loop = running_loop()
    if loop is not None:
        loop.call_later(delay, callback)
    else:
        _trio().call_later(delay, callback)


def current_task() -> object:
    """The running task (an ``asyncio.Task`` or a ``trio.lowlevel.Task``), ``None`` outside."""
    loop = running_loop()
    if loop is not None:
        return task_of(loop)
    if "trio" in sys.modules:
        return _trio().current_task()
    return None


def now() -> float:
    """The running backend's clock (``loop.time()`` / ``trio.current_time()``: virtual under
    a trio ``MockClock``); ``time.monotonic()`` outside an event loop."""
    loop = running_loop()
    if loop is not None:
        return loop.time()
    if "trio" in sys.modules:
        return float(_trio().now())
    return time.monotonic()


# --------------------------------------------------------------------------- waiters

TIMED_OUT: Any = object()
"""The value an expired waiter is given; :func:`wait` turns it into ``TimeoutError``."""


class Waiter(Protocol[T]):
    """What ``asyncio.Future`` and ``TrioWaiter`` share; awaiting it returns the value."""

    def done(self) -> bool: ...

    def set_result(self, result: T, /) -> None: ...

    def set_exception(self, exception: BaseException, /) -> None: ...

    def result(self) -> T: ...

    def __await__(self) -> Generator[Any, None, T]: ...


def new_waiter() -> Waiter[Any]:
    """A fresh waiter for the running backend (asyncio, else trio)."""
    loop = running_loop()
    if loop is not None:
        return loop.create_future()
    return cast(Waiter[Any], _trio().TrioWaiter())


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


async def wait(waiter: Waiter[T], timeout: float, expiry: Expiry) -> T:  # noqa: ASYNC109
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


def expire_due(waiting: dict[Waiter[Any], float], at: float) -> float | None:
    """Set every waiter whose deadline is ``at`` or earlier to :data:`TIMED_OUT` and forget
    it; return the earliest deadline left, if any."""
    for waiter in [waiter for waiter, deadline in waiting.items() if deadline <= at]:
        del waiting[waiter]
        if not waiter.done():
            waiter.set_result(TIMED_OUT)
    return min(waiting.values()) if waiting else None


class Expiry:
    """Times out many waiters with one timer (one ``Expiry`` per owner, e.g. a connection).

    :meth:`add` gives a waiter a deadline: unless it is done or discarded first, it is
    then set to :data:`TIMED_OUT`.  asyncio: one ``loop.call_at`` handle, re-armed only
    when a new deadline is earlier than the armed one; when it fires it expires what is
    due and re-arms for the rest.  trio: one system task (``runtime_trio.TrioTimer``)
    doing the same, since a cancel scope per wait costs more than a whole request here.
    Sequential waits with equal timeouts thus cost a dict insert and delete each.
    :meth:`close` stops the timer.
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
            timer = self._trio_timer = _trio().TrioTimer(self._waiting, expire_due)
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


# --------------------------------------------------------------------------- events


class Event(Protocol):
    """What :func:`new_event` returns: ``anyio.Event``'s interface."""

    def set(self) -> None: ...

    def is_set(self) -> bool: ...

    async def wait(self) -> Any: ...


def new_event() -> Event:
    """An event for the running backend: ``asyncio.Event`` on asyncio (creating, setting and
    waiting on it costs ~0.7 µs; an ``anyio.Event`` ~6 µs), else an ``anyio.Event``."""
    if running_loop() is not None:
        return asyncio.Event()
    return anyio.Event()


# --------------------------------------------------------------------------- idle detection


_blocked_waiters: set[object] = set()
"""The asyncio tasks inside :func:`all_tasks_blocked` right now (across loops: tasks are
unique).  Their own wake-ups do not count as runnable work for each other; without this,
two waiters would each see the other runnable and spin until their deadlines."""


def _runnable_other_than_waiters(ready: Any) -> bool:
    """Whether the asyncio ready queue holds a callback that is not the step of a task
    waiting in :func:`all_tasks_blocked` (a callback of unknown kind counts as runnable)."""
    for handle in ready:
        owner = getattr(getattr(handle, "_callback", None), "__self__", None)
        if owner is None or owner not in _blocked_waiters:
            return True
    return False


async def all_tasks_blocked(deadline: float) -> None:
    """Return once no other task is runnable, or once :func:`now` reaches ``deadline``.

    trio: ``trio.testing.wait_all_tasks_blocked``.  asyncio: yield until the loop's queue
    of runnable callbacks is empty twice in a row, not counting the wake-ups of other tasks
    waiting here (so several waiters return together instead of keeping each other busy).
    """
    if running_loop() is None and "trio" in sys.modules:
        import trio.testing

        with anyio.move_on_after(max(0.0, deadline - now())):
            await trio.testing.wait_all_tasks_blocked()
        return
    loop = asyncio.get_running_loop()
    ready = getattr(loop, "_ready", None)
    if ready is None:  # another loop implementation: yield generously instead
        for _ in range(100):
            await asyncio.sleep(0)
        return
    me = asyncio.current_task()
    _blocked_waiters.add(me)
    try:
        quiet = 0
        spins = 0
        while quiet < 2:
            await asyncio.sleep(0)
            busy = bool(ready) and (
                len(_blocked_waiters) == 1 or _runnable_other_than_waiters(ready)
            )
            quiet = 0 if busy else quiet + 1
            spins += 1
            if spins % 1000 == 0 and now() >= deadline:
                return
    finally:
        _blocked_waiters.discard(me)


def task_is_alive(task: object) -> bool:
    """False once ``task`` (an ``asyncio.Task`` or a ``trio.lowlevel.Task``) has finished."""
    if isinstance(task, asyncio.Task):
        return not task.done()
    return bool(_trio().task_is_alive(task))
