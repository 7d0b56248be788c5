"""Scatter/gather that ends when every receiver is done: ``MemoryTransport.gather_replies``
(the ``transports.extensions.ReplyGatherer`` extension).

Over a network, a gatherer waits (ADR-32: ``max_wait``, and a stall interval after the last
reply), because it cannot know who received its request.  This broker knows.  Right after
routing the request, :func:`publish_tracked` notes every subscription it reached (on any
connection; for a queue group the one member chosen; a copy dropped as a slow consumer is
done at once) and the position of the request in that subscription's buffer.  The request
is *complete* once, all at the same time:

1. every one of those subscriptions has finished with it: it was discarded unread, or the
   consumer loop that took it (``async for``, as service endpoints, control loops and App
   listeners iterate) came back for its next message -- so it has answered, or returned
   without answering;
2. no service handler runs in a task of its own (``max_concurrency > 1``: the consumer
   comes back at once, the handler finishes later);
3. no task is runnable (``runtime.all_tasks_blocked``): a reply sent by a task the handler
   spawned, or by another connection it asked, has been published by then -- unless that
   task waits on *time* (a sleep), which is not waited for;
4. every reply that arrived was handed out.

Then :meth:`MemoryReplies.next_reply` returns ``None``.  When the broker cannot tell --
a receiver read with ``next_msg`` (a test's own probe), the broker shared by several event
loops or threads, a request that no subscription took at once although some matched (a
fault rule dropped, delayed or held it), a connection disconnected by
``force_disconnect`` -- it never returns ``None``, and the caller's time limits apply, as
over a network.
"""

from __future__ import annotations

from typing import Protocol

from transports.base import Msg, SubscriptionClosedError
from transports.memory.routing import Router
from transports.memory.subscription import MemorySubscription
from transports.runtime import all_tasks_blocked, current_task, now

__all__ = ["HandlerCount", "MemoryReplies", "publish_tracked"]

_POLL_START = 0.0005
_POLL_MAX = 0.02

Watched = list[tuple[MemorySubscription, int]]
"""Receivers still to finish, each with the request's position in its buffer."""


class HandlerCount(Protocol):
    """The broker's count of service handlers running in tasks of their own."""

    @property
    def handlers_running(self) -> int: ...


def publish_tracked(
    router: Router,
    origin: object,
    inbox: MemorySubscription,
    msg: Msg,
    handlers: HandlerCount,
    route: bool = True,
) -> MemoryReplies:
    """Route ``msg`` (its reply subject is ``inbox``'s) from ``origin`` and return its
    replies, noting which subscriptions it reached (see the module docstring).
    ``route=False``: the message was held (the connection is disconnected), not routed."""
    if not route or router.is_shared:  # on other loops: delivered later, their own state
        if route:
            router.dispatch(origin, msg)
        return MemoryReplies(inbox, None, handlers)
    candidates = router.receivers(msg.subject)
    before = [getattr(receiver, "routed", None) for receiver in candidates]
    router.dispatch(origin, msg)  # synchronous: runs no consumer code
    watched: Watched = []
    for receiver, mark in zip(candidates, before, strict=True):
        if not isinstance(receiver, MemorySubscription) or mark is None:
            # a connection's request inbox matched: not a responder we know
            return MemoryReplies(inbox, None, handlers)
        received, dropped = receiver.routed
        if received == mark[0] or received - mark[0] == dropped - mark[1]:
            continue  # not routed here (another queue member), or dropped on arrival
        watched.append((receiver, receiver.last_position))
    if candidates and not watched and not inbox.pending_msgs:
        # matched, yet nobody took it nor got a status: a fault rule dropped or holds it
        return MemoryReplies(inbox, None, handlers)
    return MemoryReplies(inbox, watched, handlers)


class MemoryReplies:
    """The replies to one tracked request: a ``transports.extensions.ReplyStream``.

    ``watched`` is ``None`` when completion cannot be known (then :meth:`next_reply` never
    returns ``None``).
    """

    __slots__ = ("_handlers", "_inbox", "_watched")

    def __init__(
        self,
        inbox: MemorySubscription,
        watched: Watched | None,
        handlers: HandlerCount,
    ) -> None:
        self._inbox = inbox
        self._watched = watched
        self._handlers = handlers

    @property
    def inbox(self) -> str:
        """The reply subject of the request."""
        return self._inbox.subject

    @property
    def tracked(self) -> bool:
        """Whether completion can (still) be known for this request."""
        return self._watched is not None

    def _receivers_done(self, caller: object) -> bool:
        """Conditions 1-2 of the module docstring; forgets receivers found finished, and
        stops tracking when one of them cannot be known."""
        watched = self._watched
        if watched is None:
            return False
        left: Watched = []
        for sub, position in watched:
            finished = sub.finished_with(position, caller)
            if finished is None:
                self._watched = None
                return False
            if not finished:
                left.append((sub, position))
        self._watched = left
        return not left and not self._handlers.handlers_running

    async def next_reply(self, timeout: float) -> Msg | None:
        """See ``transports.extensions.ReplyStream.next_reply``."""
        inbox = self._inbox
        deadline = now() + timeout
        caller = current_task()
        poll = _POLL_START
        while True:
            if inbox.pending_msgs:
                return await inbox.next_msg(0)
            if not inbox.is_active:
                raise SubscriptionClosedError(inbox.subject)
            if self._watched is not None:
                # Let every runnable task run first: handlers answer, spawned tasks reply.
                await all_tasks_blocked(deadline)
                if inbox.pending_msgs:
                    continue
                if self._receivers_done(caller):
                    return None
            remaining = deadline - now()
            if remaining <= 0:
                raise TimeoutError
            wait = remaining if self._watched is None else min(remaining, poll)
            try:
                return await inbox.next_msg(wait)
            except TimeoutError:
                if self._watched is None or now() >= deadline:
                    raise
            # a receiver waits on time, or a handler task runs: look again soon
            poll = min(poll * 2, _POLL_MAX)

    async def aclose(self) -> None:
        """Remove the inbox (idempotent; never raises)."""
        self._watched = None
        if self._inbox.is_active:
            await self._inbox.unsubscribe()
