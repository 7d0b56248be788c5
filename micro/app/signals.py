"""Stop signals: how ``await app.run()`` and ``app.start()`` turn SIGINT/SIGTERM into a stop.

Python delivers signals to the main thread only, so:

* ``await app.run()`` in the main thread watches them with
  :func:`anyio.open_signal_receiver` (asyncio and trio) for as long as it runs;
* ``app.start()`` runs the app's loop in the app's thread and blocks the calling thread;
  when that is the main thread, :class:`SignalCatcher` installs plain ``signal.signal``
  handlers there for as long as ``start()`` runs, and ``start()`` asks the app to stop
  through its portal.

The first signal asks for a graceful stop (drain listeners, cancel tasks, close); a
signal received while stopping is logged and otherwise ignored (the stop is bounded by
the app's ``shutdown_timeout``).  Elsewhere than in the main thread no handler is
installed and the process' default handling applies.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
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

__all__ = ["DEFAULT_STOP_SIGNALS", "SignalCatcher", "signal_reason", "watch_signals"]

T = TypeVar("T")

_log = logging.getLogger("micro.app")

DEFAULT_STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name)
)


def _name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


def in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


async def watch_signals(
    signals: Sequence[int],
    request_stop: Callable[[str], None],
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Call ``request_stop(reason)`` for each of ``signals`` received until cancelled.

    Reports started (``task_status``) once the handlers are installed.  Outside the main
    thread, or where the platform cannot install them, it only reports started.
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
    try:
        task_status.started()
        async for signum in receiver:
            request_stop(f"signal {_name(signum)}")
    finally:
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


def signal_reason(signum: int) -> str:
    return f"signal {_name(signum)}"
