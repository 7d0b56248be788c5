"""Running until told to stop: what :class:`~micro.context.Context` and :class:`~micro.app.App`
share.

* :class:`RunState` -- the life cycle of one run, ``NEW -> STARTING -> RUNNING -> STOPPING
  -> STOPPED``, each state at most once (a run is never restarted).  A stop asked for before
  the run is ``RUNNING`` is remembered, and the run stops as soon as it is.
* :func:`watch_signals` -- stop signals in async code, through
  :func:`anyio.open_signal_receiver` (asyncio and trio): ``Context.trap_signal``,
  ``Context.run_forever(trap_signals=...)`` and ``await App.run()``.
* :class:`SignalCatcher` -- stop signals for a thread that runs no event loop but blocks on
  a portal future (``App.start()``, whose app runs in a thread of its own).

Python delivers signals to the main thread only: elsewhere neither installs anything and
the process' default handling applies.  Where the platform cannot install a handler, a
warning is logged and the run goes on without it.  Several runs of one process may watch
the same signal at once (an App run inside a Context, two Apps): each receives it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import enum
import logging
import select
import signal
import socket
import threading
from collections import deque
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, TypeVar

import anyio
import anyio.abc

from transports.runtime import Event, new_event

__all__ = [
    "DEFAULT_STOP_SIGNALS",
    "Phase",
    "RunState",
    "SignalCatcher",
    "signal_reason",
    "watch_signals",
]

T = TypeVar("T")

_log = logging.getLogger("micro")

DEFAULT_STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name)
)


class Phase(enum.Enum):
    """The states of a :class:`RunState`, in the order a run goes through them."""

    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


_ORDER = {phase: rank for rank, phase in enumerate(Phase)}


class RunState:
    """The life cycle of one run (see the module docstring).

    The transitions say nothing about what starting or stopping does: the owner (a
    Context, an App) does that and records where it is.  Call everything from the run's
    event loop thread, except :meth:`begin` and :meth:`abandon`, which are thread-safe.
    Waiters (:meth:`wait_until`, :meth:`wait_stop_requested`) wake on every change.
    """

    def __init__(self) -> None:
        self.phase = Phase.NEW
        self.stop_requested = False
        """True once :meth:`request_stop` was called (in any state)."""
        self._lock = threading.Lock()
        self._changed: Event | None = None

    def begin(self) -> bool:
        """``NEW -> STARTING``; returns False, changing nothing, in any other state."""
        with self._lock:
            if self.phase is not Phase.NEW:
                return False
            self.phase = Phase.STARTING
        return True

    def abandon(self) -> bool:
        """``NEW -> STOPPED``: a run that never started is over.  Returns False, changing
        nothing, in any other state.  (Nobody waits on a run that never started, so no
        waiter is woken: this may be called from any thread.)"""
        with self._lock:
            if self.phase is not Phase.NEW:
                return False
            self.phase = Phase.STOPPED
        return True

    def started(self) -> bool:
        """``STARTING -> RUNNING``; returns :attr:`stop_requested`: when True, a stop was
        asked for while starting and the owner stops the run now."""
        self._move(Phase.RUNNING)
        return self.stop_requested

    def request_stop(self) -> bool:
        """Record that a stop is wanted; a ``RUNNING`` run becomes ``STOPPING``.

        Returns True when this call began the stop (the owner then stops the run), False
        when the stop is remembered for later (``NEW``, ``STARTING``) or already under way.
        """
        self.stop_requested = True
        if self.phase is Phase.RUNNING:
            self._move(Phase.STOPPING)
            return True
        self._notify()
        return False

    def finish(self) -> None:
        """``-> STOPPED`` from any state (a run that failed to start ends here too)."""
        self._move(Phase.STOPPED)

    async def wait_until(self, phase: Phase) -> Phase:
        """Return once the run has reached ``phase`` or a later state; returns the state."""
        rank = _ORDER[phase]
        while _ORDER[self.phase] < rank:
            await self._next_change()
        return self.phase

    async def wait_stop_requested(self) -> None:
        """Return once :meth:`request_stop` has been called."""
        while not self.stop_requested:
            await self._next_change()

    def _move(self, phase: Phase) -> None:
        self.phase = phase
        self._notify()

    def _notify(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    async def _next_change(self) -> None:
        if self._changed is None:
            self._changed = new_event()
        await self._changed.wait()


def _name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


def signal_reason(signum: int) -> str:
    """``"signal SIGTERM"``: how a stop caused by ``signum`` is described in logs."""
    return f"signal {_name(signum)}"


_watching: list[tuple[frozenset[int], Callable[[str], None]]] = []
"""The :func:`watch_signals` calls in progress (main thread only).  A signal goes to the
receiver opened last (asyncio and trio keep one handler per signal), which passes it on
to every watcher of that signal."""


def in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


async def watch_signals(
    signals: Sequence[int],
    on_signal: Callable[[str], None],
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Call ``on_signal(reason)`` (e.g. ``"signal SIGTERM"``) for each of ``signals``
    received, until cancelled; the handlers are removed when it ends.

    Every watcher of a signal is called when it arrives, also when several watch it at
    once.  Reports started (``task_status``) once the handlers are installed.  Outside the
    main thread, or where the platform cannot install them (logged as a warning), it
    installs nothing, reports started and waits to be cancelled.  Never raises an
    ``Exception``.
    """
    if not signals or not in_main_thread():
        task_status.started()
        await anyio.sleep_forever()
    try:
        receiver_cm = anyio.open_signal_receiver(*(signal.Signals(s) for s in signals))
        receiver = receiver_cm.__enter__()
    except (NotImplementedError, RuntimeError, ValueError) as exc:
        _log.warning("cannot handle signals %s here: %s", [_name(s) for s in signals], exc)
        task_status.started()
        await anyio.sleep_forever()
        return
    watcher = (frozenset(signals), on_signal)
    _watching.append(watcher)
    try:
        task_status.started()
        async for signum in receiver:
            for wanted, callback in list(_watching):
                if signum in wanted:
                    callback(signal_reason(signum))
    finally:
        _watching.remove(watcher)
        receiver_cm.__exit__(None, None, None)


class SignalCatcher:
    """Stop signals for a thread that blocks on a portal future (``app.start()``).

    Used as a context manager in the main thread, it installs ``signal.signal`` handlers
    for ``signals`` that only record the signal and write one byte to a socket pair --
    no lock, no exception raised at an arbitrary point -- and restores the previous
    handlers on exit.  :meth:`wait` blocks in ``select`` until the future is done, calling
    ``on_signal(signum)`` (in the waiting thread) for each signal received meanwhile,
    including those received before the wait began.  Outside the main thread it installs
    nothing and :meth:`wait` is ``future.result()``.
    """

    def __init__(self, signals: Sequence[int]) -> None:
        self._signals = tuple(signals) if in_main_thread() else ()
        self._pending: deque[int] = deque()
        self._previous: dict[int, Any] = {}
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (already awake) or closed
            self._writer.send(b"\0")

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self._pending.append(signum)
        self._wake()

    def __enter__(self) -> SignalCatcher:
        for signum in self._signals:
            self._previous[signum] = signal.signal(signum, self._handler)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
        self._reader.close()
        self._writer.close()

    def wait(self, future: concurrent.futures.Future[T], on_signal: Callable[[int], None]) -> T:
        """Block until ``future`` is done and return its result (or raise its error)."""
        if not self._signals:
            return future.result()
        future.add_done_callback(lambda _: self._wake())
        while True:
            while self._pending:
                on_signal(self._pending.popleft())
            if future.done():
                return future.result()
            select.select([self._reader], [], [])
            with contextlib.suppress(BlockingIOError):
                while self._reader.recv(512):
                    pass
