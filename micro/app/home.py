"""The app's home: the event loop it runs in, and the one blocking portal into that loop.

Every blocking call of the App (``publish_sync``, ``request_from_another_thread``,
``disconnect_sync``, ...) is the ``async`` call of the same name run in the app's event
loop through one :class:`anyio.from_thread.BlockingPortal` -- there is no second
implementation of anything, no ``nest_asyncio``, no second event loop per call.

The home is one of two kinds, fixed by how the app is first driven:

* **thread** -- the app was first used through a blocking call or ``app.start()``: its
  event loop runs in a thread of its own, started by
  :func:`anyio.from_thread.start_blocking_portal` (daemon thread, so an app that was never
  disconnected does not hang interpreter exit).  The portal's loop *is* the app's loop.
* **loop** -- the app was first entered from async code (``async with app:`` or
  ``await app.run()``): its loop is the caller's, and a portal served by a task of the app
  lets other threads call into it while the app runs.

A blocking call from the home loop's own thread would wait for the loop it blocks; it
raises :class:`~micro.app.errors.SyncCallInLoopError` instead.  Blocking calls made after
the portal stopped raise :class:`~micro.app.errors.AppNotRunningError`.

Calls that do not wait (``publish_from_another_thread`` anywhere, ``publish_sync`` in the
loop's own thread) go through the app's :class:`Outbox`: handed over in one order, sent in
that order by one task in the loop, a failure logged (its caller is gone by then).
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any, Literal, TypeVar

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal

from micro.app.errors import AppError, AppNotRunningError, SyncCallInLoopError
from micro.event_loop import backend_options as resolve_backend_options

__all__ = ["Home", "Outbox"]

_log = logging.getLogger("micro.app")

T = TypeVar("T")

HomeKind = Literal["thread", "loop"]


class Home:
    """Where an app's event loop runs, and its portal.  Thread-safe."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._lock = threading.Lock()
        self._kind: HomeKind | None = None
        self._thread_id: int | None = None
        self._portal: BlockingPortal | None = None
        self._thread_cm: AbstractContextManager[BlockingPortal] | None = None

    @property
    def kind(self) -> HomeKind | None:
        """``"thread"``, ``"loop"`` or ``None`` (not chosen yet)."""
        return self._kind

    def in_loop_thread(self) -> bool:
        """True when called from the thread that runs the app's event loop."""
        return self._thread_id is not None and self._thread_id == threading.get_ident()

    # ------------------------------------------------------------------ choosing the home

    def bind_loop(self) -> None:
        """Make the calling thread's event loop the home, unless it already is (from async
        code in the loop that is to drive the app; the app then serves the portal with
        :meth:`serve_portal`).  Raises :class:`AppError` when the app lives elsewhere."""
        me = threading.get_ident()
        with self._lock:
            if self._kind is None:
                self._kind = "loop"
                self._thread_id = me
            if self._thread_id == me:
                return
        where = "its own thread (it was started by a blocking call or app.start())"
        if self._kind == "loop":
            where = "the event loop of another thread"
        raise AppError(
            f"app {self._label!r} already runs in {where}: drive it from one place only "
            "(use the *_sync / *_from_another_thread calls from other threads)"
        )

    def start_thread(self, backend: str, backend_options: dict[str, Any] | None) -> bool:
        """Make sure the home exists, starting a thread home when none was chosen.

        Returns ``True`` when this call started the thread.  Idempotent and thread-safe.
        """
        with self._lock:
            if self._kind is not None:
                return False
            options = resolve_backend_options(backend, backend_options)  # uvloop when asked
            cm = start_blocking_portal(backend, options, name=f"micro-app-{self._label}")
            portal = cm.__enter__()
            self._thread_cm = cm
            self._portal = portal
            self._thread_id = portal.call(threading.get_ident)
            self._kind = "thread"
            return True

    def close_thread(self) -> None:
        """Stop the thread home's portal and join its thread (idempotent).

        Does nothing for a loop home, or when called from the home thread itself.
        """
        if self.in_loop_thread():
            return
        with self._lock:
            cm, self._thread_cm = self._thread_cm, None
        if cm is not None:
            cm.__exit__(None, None, None)

    # ------------------------------------------------------------------ the loop home's portal

    async def serve_portal(self, ready: anyio.Event) -> None:
        """Serve a portal into the current loop until :meth:`stop_portal` (loop homes)."""
        async with BlockingPortal() as portal:
            self._portal = portal
            ready.set()
            await portal.sleep_until_stopped()

    async def stop_portal(self) -> None:
        """Stop accepting blocking calls (loop homes); calls in flight still finish."""
        if self._kind == "loop" and self._portal is not None:
            await self._portal.stop()

    # ------------------------------------------------------------------ calling in

    def portal(self, method: str) -> BlockingPortal:
        """The portal, or :class:`AppNotRunningError` naming ``method`` when there is none."""
        portal = self._portal
        if portal is None:
            raise AppNotRunningError(f"app.{method}(): the app {self._label!r} is not running")
        return portal

    def check_not_in_loop(self, method: str, async_method: str) -> None:
        if self.in_loop_thread():
            raise SyncCallInLoopError(method, async_method)

    def call(self, method: str, async_method: str, func: Callable[[], Awaitable[T]]) -> T:
        """Run ``await func()`` in the app's loop and return its result (or raise its error).

        Raises :class:`SyncCallInLoopError` from the loop's own thread and
        :class:`AppNotRunningError` when the portal is gone or the call was cancelled
        because the app shut down.  If the calling thread is interrupted while waiting
        (e.g. ``KeyboardInterrupt``), the call is cancelled in the loop.
        """
        self.check_not_in_loop(method, async_method)
        portal = self.portal(method)
        try:
            future = portal.start_task_soon(func)
        except RuntimeError as exc:
            raise AppNotRunningError(
                f"app.{method}(): the app {self._label!r} has been disconnected"
            ) from exc
        return wait_future(future, f"app.{method}()")


def wait_future(future: concurrent.futures.Future[T], what: str) -> T:
    """The result of a portal call; cancels the call if the waiting thread is interrupted."""
    try:
        return future.result()
    except concurrent.futures.CancelledError as exc:
        raise AppNotRunningError(f"{what} was cancelled: the app shut down") from exc
    except BaseException:
        if not future.done():
            future.cancel()
        raise


Send = Callable[[], Awaitable[object]]
Spawn = Callable[[Callable[[], Awaitable[None]]], object]


class Outbox:
    """Sends handed over without waiting, run in hand-over order in the app's loop.

    :meth:`put` (any thread) queues a send and, unless one is already running, starts the
    one task that runs the queue (through ``spawn``: the portal from another thread, the
    app's task host in the loop).  Each send is awaited in turn, so two publishes handed
    over one after the other reach the connection in that order; a send that fails is
    logged on ``micro.app`` with its description and the next one runs.
    """

    def __init__(self, label: str) -> None:
        self._label = label
        self._lock = threading.Lock()
        self._items: deque[tuple[str, Send]] = deque()
        self._running = False
        self._idle: anyio.Event | None = None  # loop thread only

    def put(self, what: str, send: Send, spawn: Spawn) -> None:
        """Queue ``send`` (described as ``what`` in a failure's log record).

        Raises what ``spawn`` raises when the queue's task cannot start (the send is then
        dropped from the queue, so the caller knows at once it was not handed over).
        """
        with self._lock:
            self._items.append((what, send))
            if self._running:
                return
            self._running = True
        try:
            spawn(self._run)
        except BaseException:
            with self._lock:
                self._running = False
                self._items.clear()
            raise

    async def _run(self) -> None:
        while True:
            with self._lock:
                if not self._items:
                    self._running = False
                    break
                what, send = self._items.popleft()
            try:
                await send()
            except Exception as exc:
                _log.error("app %r: %s failed: %r", self._label, what, exc, exc_info=exc)
        if self._idle is not None:
            self._idle.set()
            self._idle = None

    async def wait_empty(self) -> None:
        """Return once every send handed over so far has run (in the app's loop)."""
        while self._running:
            if self._idle is None:
                self._idle = anyio.Event()
            await self._idle.wait()
