"""Task hosting: :class:`TaskHost`, tasks that outlive the call that started them (a
service's receive loops, an App's listeners), owned until the host closes, on asyncio and
on trio.

Part of the runtime under ``transports`` and ``micro`` (see ``transports.runtime``): it
uses no private asyncio or trio API; what it needs of trio's run loop beyond the public
``trio`` namespace (a system task) comes from ``transports.runtime_trio``, imported only
under trio.  Errors of hosted tasks are logged by ``transports.runtime`` unless the host is
given its own logger.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from asyncio import AbstractEventLoop
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from transports.runtime import current_async_library

__all__ = ["TaskHost"]

_log = logging.getLogger("transports.runtime")

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
        self._event_loop: AbstractEventLoop | None = None
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
            self._event_loop = asyncio.get_running_loop()
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
        loop = self._event_loop
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
        if self._event_loop is None:  # trio: the root task closes the nursery
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

        from transports import runtime_trio

        ready = trio.Event()
        self._closed = trio.Event()
        self._wake_root = trio.Event()
        runtime_trio.spawn_system_task(self._root, ready, name=self._name)
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
