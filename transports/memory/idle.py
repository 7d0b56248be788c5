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

from collections.abc import Callable, Iterable

import anyio

from transports.memory.connection import MemoryTransport
from transports.runtime import all_tasks_blocked, current_task, now

__all__ = ["busy_report", "wait_idle"]

_POLL_START = 0.0005
_POLL_MAX = 0.02


async def wait_idle(report: Callable[[object], list[str]], timeout: float) -> None:  # noqa: ASYNC109
    """Return once the broker is idle (see the module docstring): once no task is runnable
    and ``report(calling task)`` (the broker's :func:`busy_report`) finds nothing busy.

    Raises builtin :class:`TimeoutError` naming what is still busy when it is not idle
    after ``timeout`` seconds of the backend's clock.
    """
    caller = current_task()
    deadline = now() + timeout
    poll = _POLL_START
    while True:
        await all_tasks_blocked(deadline)
        busy = report(caller)
        if not busy:
            return
        if now() >= deadline:
            raise TimeoutError(
                f"the memory broker is not idle after {timeout:g} s: " + "; ".join(busy)
            )
        # Something waits on time or on a consumer that is not running: look again soon.
        await anyio.sleep(min(poll, max(0.0, deadline - now())))
        poll = min(poll * 2, _POLL_MAX)


def busy_report(
    handlers_running: int,
    delayed: int,
    connections: Iterable[MemoryTransport],
    caller: object = None,
) -> list[str]:
    """What keeps a broker from being idle (conditions 2 and 3); empty when idle.

    ``handlers_running``: service handlers running in a task of their own; ``delayed``:
    messages a fault rule delays; ``connections``: the broker's open connections;
    ``caller``: the task waiting for idle (it is not waited for).
    """
    busy: list[str] = []
    if handlers_running:
        busy.append(f"{handlers_running} service handler(s) running in their own task")
    if delayed:
        busy.append(f"{delayed} delayed message(s) on their way")
    for conn in connections:
        for sub in conn.subscriptions:
            waiting, handling = sub.idle_state(caller)
            if waiting:
                busy.append(
                    f"{waiting} message(s) not yet taken by the consumer of {sub!r} of {conn!r}"
                )
            if handling:
                busy.append(f"the consumer of {sub!r} of {conn!r} is still handling a message")
    return busy
