"""Running the app's tasks: once at start, or periodically without overlap.

A periodic task runs at start, then every ``interval`` seconds measured from the start
of each run (as Panini's interval tasks do): a 0.2 s interval with a 0.15 s body runs every
0.2 s.  Runs never overlap: a run that takes longer than the interval is followed by the
next one at once (no wait), and the ticks it overran are not made up -- the schedule goes
on from that run's start, so a slow run delays the schedule instead of piling runs up.
Time is the event loop's clock (``anyio.current_time()``); the wait goes through an
injectable ``sleep`` (default ``anyio.sleep``), so tests drive time without waiting
(trio's ``MockClock`` or a fake sleep).

Failure policy -- never a silent death:

* ``on_error="log"`` (default): the exception is logged with its traceback at ``ERROR``
  on the ``micro.app`` logger; a periodic task goes on with its next run, a one-shot task
  is over.
* ``on_error="stop"``: the exception is logged and the app is stopped with it
  (``App.run()``/``App.start()`` raise :class:`~micro.app.errors.AppFailedError` whose
  ``__cause__`` is the task's exception).

Cancellation (the app shutting down) ends a task at its current ``await``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

import anyio
import anyio.lowlevel

from micro.app.registry import TaskSpec, call_user

__all__ = ["FailureReporter", "Sleep", "run_task", "run_tasks"]

_log = logging.getLogger("micro.app")

Sleep = Callable[[float], Awaitable[object]]
"""``async sleep(seconds)``: how a periodic task waits between runs."""

FailureReporter = Callable[[TaskSpec, Exception], None]
"""Called (in the event loop) when a task with ``on_error="stop"`` failed."""


async def run_task(spec: TaskSpec, *, sleep: Sleep, stop_app: FailureReporter) -> None:
    """Run ``spec`` by its schedule until it is over or cancelled; never raises an
    ``Exception`` (failures follow the policy in the module docstring)."""
    run = 0
    while True:
        run += 1
        started = anyio.current_time()
        try:
            await call_user(spec.func, spec.is_async)
        except Exception as exc:
            if spec.on_error == "stop":
                _log.error(
                    "task %s failed (run %d); on_error='stop': stopping the app",
                    spec.name,
                    run,
                    exc_info=exc,
                )
                stop_app(spec, exc)
                return
            then = (
                f"next run in {spec.interval:g} s" if spec.interval is not None else "not retried"
            )
            _log.error("task %s failed (run %d); %s", spec.name, run, then, exc_info=exc)
        if spec.interval is None:
            return
        wait = spec.interval - (anyio.current_time() - started)
        if wait > 0:
            await sleep(wait)
        else:
            await anyio.lowlevel.checkpoint()  # an overrun: the next run at once, cancellable


async def run_tasks(specs: Sequence[TaskSpec], *, sleep: Sleep, stop_app: FailureReporter) -> None:
    """Run every task of ``specs`` at once, each as :func:`run_task`, until all are over."""
    async with anyio.create_task_group() as group:
        for spec in specs:
            group.start_soon(partial(run_task, spec, sleep=sleep, stop_app=stop_app))
