"""``MemoryBroker.wait_idle()``: wait until everything published so far has been handled.

The broker is *idle* when, all at once:

1. no task is runnable (every task waits on something: a message, an event, a timer);
2. no message is buffered in a subscription consumed by a loop (``async for msg in sub`` or
   ``__anext__``, as service endpoints, App listeners and consumer loops do: a consumer that
   has waited there, or holds a message from there): every such message was taken by its
   consumer; and no message delayed by a fault rule is still on its way.  Subscriptions
   only ever read with ``next_msg`` (or not read at all) are the test's own probes: what
   they buffer is not waited for;
3. every consumer iterating a subscription has come back for the next message, i.e. has
   finished with the one it took (a consumer that is the task calling ``wait_idle``, or a
   task that has ended, does not count); and every service handler running in a task of
   its own (an endpoint with ``max_concurrency > 1``, reported through
   ``transports.extensions.HandlerTracker``) has finished.

Condition 1 covers work the broker cannot see, as long as it does not wait on time (a
task a handler spawned, listeners being called).  It is checked with
``trio.testing.wait_all_tasks_blocked`` on trio; on asyncio, by yielding until the event
loop's ready queue is empty twice in a row.  Work that waits on *time* (a sleep) counts as
blocked, not busy, unless conditions 2-3 see it -- a handler sleeping while it handles a
message is waited for; with trio's ``MockClock(autojump_threshold=0)`` time-based work runs
instantly anyway.  Messages a disconnected connection buffered (not yet published) and
messages a ``reorder`` rule holds (waiting for more) are not waited for.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from typing import TYPE_CHECKING, Any

import anyio

from transports._wakeup import current_task, now

if TYPE_CHECKING:
    from transports.memory import MemoryBroker

__all__ = ["busy_report", "wait_idle"]

_POLL_START = 0.0005
_POLL_MAX = 0.02


async def wait_idle(broker: MemoryBroker, timeout: float) -> None:  # noqa: ASYNC109
    """Return once ``broker`` is idle (see the module docstring).

    Raises builtin :class:`TimeoutError` naming what is still busy when it is not idle
    after ``timeout`` seconds of the backend's clock.
    """
    caller = current_task()
    deadline = now() + timeout
    poll = _POLL_START
    while True:
        await _all_tasks_blocked(deadline)
        busy = busy_report(broker, caller)
        if not busy:
            return
        if now() >= deadline:
            raise TimeoutError(
                f"the memory broker is not idle after {timeout:g} s: " + "; ".join(busy)
            )
        # Something waits on time or on a consumer that is not running: look again soon.
        await anyio.sleep(min(poll, max(0.0, deadline - now())))
        poll = min(poll * 2, _POLL_MAX)


def busy_report(broker: MemoryBroker, caller: object = None) -> list[str]:
    """What keeps ``broker`` from being idle (conditions 2 and 3); empty when idle."""
    busy: list[str] = []
    if broker._handlers_running:
        busy.append(f"{broker._handlers_running} service handler(s) running in their own task")
    hooks = broker._hooks_object
    if hooks is not None and hooks.delayed:
        busy.append(f"{hooks.delayed} delayed message(s) on their way")
    for conn in broker.connections:
        for sub in list(conn._subs.values()):
            holder = sub._holder
            handling = (
                holder is not None and holder is not caller and sub.is_active and _alive(holder)
            )
            if sub.pending_msgs and (sub._iterated or handling):
                busy.append(
                    f"{sub.pending_msgs} message(s) not yet taken by the consumer of {sub!r} "
                    f"of {conn!r}"
                )
            if handling:
                busy.append(f"the consumer of {sub!r} of {conn!r} is still handling a message")
    return busy


def _alive(task: Any) -> bool:
    if isinstance(task, asyncio.Task):
        return not task.done()
    coro = getattr(task, "coro", None)  # a trio.lowlevel.Task
    return coro is None or inspect.getcoroutinestate(coro) != inspect.CORO_CLOSED


async def _all_tasks_blocked(deadline: float) -> None:
    """Return once no other task is runnable (or ``deadline`` has passed)."""
    if asyncio._get_running_loop() is None and "trio" in sys.modules:
        import trio.testing

        with anyio.move_on_after(max(0.0, deadline - now())):
            await trio.testing.wait_all_tasks_blocked()
        return
    loop = asyncio.get_running_loop()
    ready = getattr(loop, "_ready", None)  # CPython's queue of runnable callbacks
    if ready is None:  # another loop implementation: yield generously instead
        for _ in range(100):
            await asyncio.sleep(0)
        return
    quiet = 0
    spins = 0
    while quiet < 2:
        await asyncio.sleep(0)
        quiet = 0 if ready else quiet + 1
        spins += 1
        if spins % 1000 == 0 and now() >= deadline:
            return
