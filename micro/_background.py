"""A task host that outlives the call that opened it: the home of a service's background work.

``await service.start()`` must return while the service keeps serving, on asyncio and on
trio alike, yet nothing it runs may be orphaned.  :class:`TaskHost` squares that circle with
one backend-specific *root task* (asyncio: ``loop.create_task`` with a strong reference;
trio: ``trio.lowlevel.spawn_system_task``) whose only job is to hold an
``anyio.create_task_group()`` open.  Everything the service runs is started in that task
group through :meth:`TaskHost.start_soon`; :meth:`TaskHost.aclose` closes the group and
awaits every task in it.

Failure policy: the tasks started here must handle their own errors.  An exception that
still escapes one of them is logged with its traceback and cancels the host (anyio task
group semantics); it never reaches the event loop (on trio an escaping system-task error
would abort the whole run).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc

__all__ = ["TaskHost", "current_async_library"]

_log = logging.getLogger("micro.service")

_current_host: contextvars.ContextVar[TaskHost | None] = contextvars.ContextVar(
    "micro_current_task_host", default=None
)

# Strong references to running asyncio root tasks (the event loop keeps only weak ones).
_asyncio_roots: set[asyncio.Task[None]] = set()


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
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError("micro services need a running asyncio or trio event loop") from None
    return "asyncio"


class TaskHost:
    """One root task holding one anyio task group open until :meth:`aclose`.

    Life cycle: ``await open()`` (once) -> any number of ``start_soon()`` ->
    ``request_close()`` / ``await aclose()``.  Closing waits for every task to finish
    (``cancel=True`` cancels them first).  After close, ``start_soon`` raises
    ``RuntimeError``.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._group: anyio.abc.TaskGroup | None = None
        self._ready: anyio.Event | None = None
        self._close_requested: anyio.Event | None = None
        self._closed: anyio.Event | None = None
        self._cancel = False
        self._opened = False

    @property
    def is_open(self) -> bool:
        """True from a completed ``open()`` until a close was requested."""
        return (
            self._group is not None
            and self._close_requested is not None
            and not self._close_requested.is_set()
        )

    def is_current(self) -> bool:
        """True when the calling task was started by this host (directly or via a child)."""
        return _current_host.get() is self

    async def open(self) -> None:
        """Spawn the root task and return once its task group accepts work.

        Raises ``RuntimeError`` when called twice or outside an asyncio/trio loop.
        """
        if self._opened:
            raise RuntimeError(f"task host {self._name!r} was already opened")
        self._opened = True
        library = current_async_library()
        self._ready = anyio.Event()
        self._close_requested = anyio.Event()
        self._closed = anyio.Event()
        if library == "trio":
            import trio

            trio.lowlevel.spawn_system_task(self._root, name=self._name)
        else:
            task = asyncio.get_running_loop().create_task(self._root(), name=self._name)
            _asyncio_roots.add(task)
            task.add_done_callback(_asyncio_roots.discard)
        await self._ready.wait()

    async def _root(self) -> None:
        assert self._ready is not None
        assert self._close_requested is not None
        assert self._closed is not None
        try:
            async with anyio.create_task_group() as group:
                self._group = group
                self._ready.set()
                await self._close_requested.wait()
                if self._cancel:
                    group.cancel_scope.cancel()
        except Exception:
            _log.exception("background task of %s failed; its tasks were cancelled", self._name)
        finally:
            self._group = None
            self._ready.set()
            self._closed.set()

    def start_soon(self, func: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``await func(*args)`` in the host's task group.

        Raises ``RuntimeError`` when the host is not open (never opened, or closing).
        """
        group = self._group
        if group is None or not self.is_open:
            raise RuntimeError(f"task host {self._name!r} is not running")
        group.start_soon(self._run_child, func, args)

    async def _run_child(self, func: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        _current_host.set(self)
        await func(*args)

    def request_close(self, *, cancel: bool = False) -> None:
        """Ask the host to close without waiting (safe from inside one of its tasks).

        With ``cancel=True`` the running tasks are cancelled; otherwise the host closes
        once they have all returned.
        """
        if cancel:
            self._cancel = True
        if self._close_requested is not None:
            self._close_requested.set()
            group = self._group
            if cancel and group is not None:
                group.cancel_scope.cancel()

    async def wait_closed(self) -> None:
        """Return once the root task has finished (immediately if never opened)."""
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
