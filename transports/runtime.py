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
* **task hosting**: :class:`TaskHost`, tasks that outlive the call that started them (a
  service's receive loops), owned until the host closes;
* **idle detection** for test brokers: :func:`all_tasks_blocked`, :func:`task_is_alive`.

The trio half lives in ``transports.runtime_trio`` (public trio API only) and is imported
only when code runs under trio, so trio is never imported under asyncio.

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
  without it gets a generous number of yields instead.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
import time
from asyncio import AbstractEventLoop, Future, TimerHandle
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Protocol, TypeVar, cast

import anyio

__all__ = [
    "TIMED_OUT",
    "Event",
    "Expiry",
    "TaskHost",
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

_log = logging.getLogger("transports.runtime")

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


# --------------------------------------------------------------------------- task hosting

_current_host: contextvars.ContextVar[TaskHost | None] = contextvars.ContextVar(
    "transports_runtime_current_task_host", default=None
)


class TaskHost:
    """Tasks that outlive the call that started them, owned until :meth:`aclose`.

    ``await service.start()`` must return while the service keeps serving, on asyncio and
    on trio alike, yet nothing it runs may be orphaned: the host owns every task it starts
    until :meth:`aclose` has awaited them all.  Backend-specific, because a service
    start/stop spawns 10-20 tasks and anyio's task group costs 22 µs per task on asyncio,
    33 µs on trio (``bench/service_bench.py``):

    * asyncio: every child is a native ``asyncio.Task`` (~3 µs) held by the host.  A child
      started with :meth:`start_soon` runs inside its own ``anyio.CancelScope``, so
      cancelling the host is anyio cancellation (level-triggered, shields respected) for
      the user code it runs; :meth:`start_internal` skips that scope for the library's own
      loops, which never shield (they are cancelled with ``Task.cancel()``).
    * trio: one system task holds a trio nursery open; children are nursery tasks (~11 µs)
      with trio's own cancellation semantics.

    Life cycle: ``await open()`` (once) -> any number of ``start_soon()`` /
    ``start_internal()`` -> ``request_close()`` / ``await aclose()``.  Closing waits for
    every task to finish (``cancel=True`` cancels them first).  After close, starting a task
    raises ``RuntimeError``.

    Failure policy: the tasks started here must handle their own errors.  An exception that
    still escapes one of them is logged with its traceback (logger ``logger``) and cancels
    the host, as a task group would; it never reaches the event loop (on trio an escaping
    system-task error would abort the whole run).
    """

    def __init__(self, name: str, logger: logging.Logger = _log) -> None:
        self._name = name
        self._log = logger
        self._opened = False
        self._close_requested = False
        self._cancel = False
        self._finished = False
        self._closed: Any = None  # asyncio.Event or trio.Event, set once every task finished
        # asyncio: the running children, with the cancel scope of the ones that have one
        self._tasks: dict[asyncio.Task[None], anyio.CancelScope | None] = {}
        self._loop: AbstractEventLoop | None = None
        # trio: the nursery held open by the root system task, and what the root waits on
        self._nursery: Any = None
        self._wake_root: Any = None

    @property
    def is_open(self) -> bool:
        """True from a completed ``open()`` until a close was requested (or a task failed)."""
        return self._opened and not self._close_requested and not self._finished

    def is_current(self) -> bool:
        """True when the calling task was started by this host (directly or via a child)."""
        return _current_host.get() is self

    async def open(self) -> None:
        """Make the host accept work.

        Raises ``RuntimeError`` when called twice or outside an asyncio/trio loop.
        """
        if self._opened:
            raise RuntimeError(f"task host {self._name!r} was already opened")
        if current_async_library() == "trio":
            await self._open_trio()
        else:
            self._loop = asyncio.get_running_loop()
            self._closed = asyncio.Event()
        self._opened = True

    def start_soon(self, func: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``await func(*args)`` in the host, with anyio cancellation semantics.

        Raises ``RuntimeError`` when the host is not open (never opened, or closing).
        """
        self._start(func, args, scoped=True)

    def start_internal(self, func: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Like :meth:`start_soon`, for library code that never shields itself from
        cancellation: on asyncio it runs without a cancel scope of its own (cheaper) and is
        cancelled with ``Task.cancel()``.  Never use it for user code."""
        self._start(func, args, scoped=False)

    def _start(
        self, func: Callable[..., Awaitable[Any]], args: tuple[Any, ...], scoped: bool
    ) -> None:
        if not self.is_open:
            raise RuntimeError(f"task host {self._name!r} is not running")
        loop = self._loop
        if loop is None:  # trio: an error escaping the child cancels the nursery
            self._nursery.start_soon(self._run_trio_child, func, args, name=self._name)
            return
        scope = anyio.CancelScope() if scoped else None
        task = loop.create_task(self._run_task(func, args, scope), name=self._name)
        self._tasks[task] = scope

    async def _run_trio_child(
        self, func: Callable[..., Awaitable[Any]], args: tuple[Any, ...]
    ) -> None:
        _current_host.set(self)
        await func(*args)

    async def _run_task(
        self,
        func: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        scope: anyio.CancelScope | None,
    ) -> None:
        """asyncio: one child.  Its bookkeeping runs at its end, in its own last step (no
        done callback: one event-loop handle less per task)."""
        _current_host.set(self)
        try:
            if scope is None:
                await func(*args)
            else:
                with scope:
                    await func(*args)
        except Exception as error:
            self._log.error(
                "background task of %s failed; its tasks were cancelled",
                self._name,
                exc_info=error,
            )
            self.request_close(cancel=True)
        finally:
            task = asyncio.current_task()
            if task is not None:
                self._forget(task)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        """asyncio: ``task`` has finished (or was cancelled before it started)."""
        self._tasks.pop(task, None)
        if self._close_requested and not self._tasks:
            self._finish()

    def request_close(self, *, cancel: bool = False) -> None:
        """Ask the host to close without waiting (safe from inside one of its tasks).

        With ``cancel=True`` the running tasks are cancelled; otherwise the host closes
        once they have all returned.
        """
        if cancel:
            self._cancel = True
        if not self._opened:
            return
        self._close_requested = True
        if self._loop is None:  # trio: the root task closes the nursery
            if self._wake_root is not None:
                self._wake_root.set()
            if cancel and self._nursery is not None:
                self._nursery.cancel_scope.cancel()
            return
        if cancel:
            for task, scope in list(self._tasks.items()):
                if scope is not None:
                    scope.cancel()
                else:  # a task cancelled before its first step never runs its `finally`
                    task.cancel()
                    task.add_done_callback(self._forget)
        if not self._tasks:
            self._finish()

    def _finish(self) -> None:
        if not self._finished:
            self._finished = True
            self._closed.set()

    async def wait_closed(self) -> None:
        """Return once every task has finished after a close (immediately if never opened)."""
        if self._closed is not None:
            await self._closed.wait()

    async def aclose(self, *, cancel: bool = False) -> None:
        """Close and wait until every task has finished.

        Must not be awaited from inside one of the host's own tasks (that would wait for
        itself): use :meth:`request_close` there.  Raises ``RuntimeError`` if so.
        """
        if self.is_current():
            raise RuntimeError("aclose() awaited from inside the task host; use request_close()")
        self.request_close(cancel=cancel)
        await self.wait_closed()

    async def _open_trio(self) -> None:
        import trio

        ready = trio.Event()
        self._closed = trio.Event()
        self._wake_root = trio.Event()
        trio.lowlevel.spawn_system_task(self._root, ready, name=self._name)
        await ready.wait()

    async def _root(self, ready: Any) -> None:
        import trio

        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                ready.set()
                await self._wake_root.wait()
                if self._cancel:
                    nursery.cancel_scope.cancel()
        except Exception:
            self._log.exception(
                "background task of %s failed; its tasks were cancelled", self._name
            )
        finally:
            self._nursery = None
            ready.set()
            self._finished = True
            self._closed.set()
