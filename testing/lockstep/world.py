"""One side of a lockstep run: its connections, subscriptions and what they observed.

A :class:`World` lives on its side's event loop (its own thread, see ``machine``).  Every
operation returns an *outcome* (``("ok", value)`` or ``("error", type name, attributes)``)
and :meth:`World.observe` returns everything else that can be seen: each connection's state
and events, each subscription's counters and messages.  Two worlds that were handed the
same operations must return equal outcomes and observations; a difference is a bug in one
of the two transports.

What makes that comparison exact on a real server:

* **Barrier** (:meth:`World.barrier`): every open connection flushes, then every open
  connection flushes again.  After the first pass the broker has routed everything
  published so far; a connection's second flush is answered after the messages routed to
  it, so they are buffered in its subscriptions when the flush returns.  Answering
  subscriptions (below) may publish in turn, so the barrier repeats until a pass in which
  no reader handled anything.
* **Readers.** Queue-group members and *answering* subscriptions are read by a task as
  messages arrive (which member of a group gets a message is the broker's choice, so only
  the group's combined messages are compared, as a multiset).  An answering subscription
  replies ``answer`` to every message that has a reply subject, so requests get answered.
  Every other subscription is read only by ``take``, in order, and compared exactly.
* **Names.** Reply subjects the transport makes (request inboxes) differ between sides and
  read as ``<inbox>``.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from transports.base import Msg, Subscription, Transport, TransportError, TransportEvent

__all__ = ["ANSWER", "Connector", "Outcome", "World"]

ANSWER = b"answer"
"""What an answering subscription replies."""

INBOX = "<inbox>"

STEP_LIMIT = 20.0
"""Seconds any one operation, barrier or settling may take before the run fails."""

Connector = Callable[[], Awaitable[Transport]]
"""``async connect() -> Transport``: one more connection to the side's broker."""

Outcome = tuple[Any, ...]

_ERROR_FIELDS = ("subject", "rule", "queue", "name", "size", "max_payload", "limit", "length")


def outcome_of_error(exc: BaseException) -> Outcome:
    """An exception as comparable data: its type and the attributes that name the problem."""
    fields = tuple((name, repr(getattr(exc, name))) for name in _ERROR_FIELDS if hasattr(exc, name))
    return ("error", type(exc).__name__, fields)


@dataclass(eq=False)
class Sub:
    """One subscription of the run, as the world tracks it."""

    index: int
    connection: int
    pattern: object
    queue: str | None
    answering: bool
    read_by_task: bool
    subscription: Subscription
    taken: list[Outcome] = field(default_factory=list)
    busy: bool = False
    reader_done: bool = False
    progress: anyio.Event = field(default_factory=anyio.Event)

    def notify(self) -> None:
        self.progress.set()
        self.progress = anyio.Event()


class World:
    """One side's connections and subscriptions; every method runs on the side's loop."""

    def __init__(self, connect: Connector, *, connections: int) -> None:
        self._connect = connect
        self._wanted = connections
        self.connections: list[Transport] = []
        self.events: list[list[Outcome]] = []
        self.subs: list[Sub | None] = []  # None: the subscribe call failed
        self.known_subjects: set[str] = set()
        self._handled = 0
        self._stop = anyio.Event()
        self._tasks: TaskGroup | None = None

    # ------------------------------------------------------------------ life

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Open the connections, serve the readers until :meth:`stop`, then close everything."""
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            with anyio.fail_after(STEP_LIMIT):
                for _ in range(self._wanted):
                    await self.add_connection()
            task_status.started()
            await self._stop.wait()
            with anyio.move_on_after(STEP_LIMIT, shield=True):
                for connection in self.connections:
                    with contextlib.suppress(TransportError):
                        await connection.close()
            tasks.cancel_scope.cancel()

    async def stop(self) -> None:
        self._stop.set()

    async def add_connection(self) -> Outcome:
        index = len(self.connections)
        connection = await self._connect()
        self.connections.append(connection)
        self.events.append([])
        connection.add_event_listener(lambda event: self._record_event(index, event))
        return ("ok", index)

    def _record_event(self, index: int, event: TransportEvent) -> None:
        error = event.error
        detail = (type(error).__name__, getattr(error, "subject", None)) if error else None
        self.events[index].append((event.kind.value, detail))

    # ------------------------------------------------------------------ operations

    async def call(self, operation: Callable[[], Awaitable[Any]]) -> Outcome:
        """Run one transport call; its result or exception as an outcome."""
        try:
            with anyio.fail_after(STEP_LIMIT):
                value = await operation()
        except TimeoutError as exc:
            return outcome_of_error(exc)
        except Exception as exc:  # every exception is an observation to compare
            return outcome_of_error(exc)
        return ("ok", value)

    async def publish(
        self, connection: int, subject: Any, data: Any, reply: Any, headers: Any
    ) -> Outcome:
        self._learn(subject, reply)
        conn = self.connections[connection]
        return await self.call(lambda: conn.publish(subject, data, reply=reply, headers=headers))

    async def subscribe(
        self,
        connection: int,
        pattern: Any,
        queue: Any,
        answering: bool,
        pending_msgs_limit: int | None,
        pending_bytes_limit: int | None,
    ) -> Outcome:
        conn = self.connections[connection]

        async def subscribe() -> Subscription:
            return await conn.subscribe(
                pattern,
                queue=queue,
                pending_msgs_limit=pending_msgs_limit,
                pending_bytes_limit=pending_bytes_limit,
            )

        outcome = await self.call(subscribe)
        if outcome[0] != "ok":
            self.subs.append(None)
            return outcome
        read_by_task = answering or queue is not None
        sub = Sub(
            index=len(self.subs),
            connection=connection,
            pattern=pattern,
            queue=queue,
            answering=answering,
            read_by_task=read_by_task,
            subscription=outcome[1],
        )
        self.subs.append(sub)
        if read_by_task:
            assert self._tasks is not None
            self._tasks.start_soon(self._read, sub)
        return ("ok", sub.index)

    async def request(
        self,
        connection: int,
        subject: Any,
        data: Any,
        headers: Any,
        timeout: float,  # noqa: ASYNC109 (the value under test, passed to Transport.request)
    ) -> Outcome:
        self._learn(subject)
        conn = self.connections[connection]
        outcome = await self.call(
            lambda: conn.request(subject, data, headers=headers, timeout=timeout)
        )
        if outcome[0] == "ok":
            return ("ok", self._normal(outcome[1]))
        return outcome

    async def take(self, index: int, count: int) -> Outcome:
        """Read ``count`` messages with ``next_msg``; one more read than is buffered shows
        whether the subscription reports a timeout or its end."""
        sub = self._sub(index)
        results: list[Outcome] = []
        for _ in range(count):
            buffered = sub.subscription.pending_msgs > 0
            outcome = await self.call(
                lambda buffered=buffered: sub.subscription.next_msg(  # type: ignore[misc]
                    timeout=STEP_LIMIT if buffered else 0.01
                )
            )
            if outcome[0] == "ok":
                sub.taken.append(self._normal(outcome[1]))
                results.append(("ok", "message"))
            else:
                results.append(outcome)
                break
        return ("ok", tuple(results))

    async def unsubscribe(self, index: int, limit: int) -> Outcome:
        sub = self._sub(index)
        return await self.call(lambda: sub.subscription.unsubscribe(limit))

    async def drain_subscription(self, index: int) -> Outcome:
        """``Subscription.drain()`` while the consumer reads what it buffered."""
        sub = self._sub(index)
        return await self._while_reading([sub], sub.subscription.drain)

    async def drain_connection(self, connection: int) -> Outcome:
        """``Transport.drain()`` while every subscription of the connection is read."""
        conn = self.connections[connection]
        mine = [s for s in self.subs if s is not None and s.connection == connection]
        return await self._while_reading(mine, conn.drain)

    async def flush(self, connection: int) -> Outcome:
        conn = self.connections[connection]
        return await self.call(lambda: conn.flush(timeout=STEP_LIMIT))

    async def close(self, connection: int) -> Outcome:
        return await self.call(self.connections[connection].close)

    async def _while_reading(
        self, subs: Iterable[Sub], operation: Callable[[], Awaitable[None]]
    ) -> Outcome:
        result: list[Outcome] = []

        async def run() -> None:
            result.append(await self.call(operation))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(run)
            for sub in subs:
                if not sub.read_by_task:
                    tasks.start_soon(self._read_to_end, sub)
        return result[0]

    async def _read_to_end(self, sub: Sub) -> None:
        with anyio.fail_after(STEP_LIMIT):
            async for msg in sub.subscription:
                sub.taken.append(self._normal(msg))

    # ------------------------------------------------------------------ readers

    async def _read(self, sub: Sub) -> None:
        conn = self.connections[sub.connection]
        try:
            async for msg in sub.subscription:
                sub.busy = True
                sub.taken.append(self._normal(msg))
                if sub.answering and msg.reply is not None:
                    try:
                        await conn.publish(msg.reply, ANSWER)
                    except TransportError as exc:
                        sub.taken.append(("answer failed", type(exc).__name__))
                sub.busy = False
                self._handled += 1
                sub.notify()
        finally:
            sub.reader_done = True
            sub.notify()

    async def _settle(self) -> None:
        for sub in self.subs:
            if sub is None or not sub.read_by_task:
                continue
            while not sub.reader_done and (sub.busy or sub.subscription.pending_msgs > 0):
                await sub.progress.wait()

    async def barrier(self) -> None:
        """Wait until everything published so far is buffered or read (see the module doc)."""
        with anyio.fail_after(STEP_LIMIT):
            for _ in range(8):
                handled = self._handled
                for _pass in range(2):
                    for conn in self.connections:
                        if not conn.is_closed:
                            with contextlib.suppress(TransportError):
                                await conn.flush(timeout=STEP_LIMIT)
                await self._settle()
                if self._handled == handled:
                    return

    # ------------------------------------------------------------------ observing

    async def observe(self) -> dict[str, Any]:
        """Barrier, then everything observable, as plain comparable data."""
        await self.barrier()
        connections = [
            (conn.is_connected, conn.is_closed, tuple(self.events[i]))
            for i, conn in enumerate(self.connections)
        ]
        subs: list[Outcome] = []
        groups: dict[str, Counter[Outcome]] = {}
        for sub in self.subs:
            if sub is None:
                subs.append(("failed",))
                continue
            s = sub.subscription
            if sub.queue is not None:
                groups.setdefault(sub.queue, Counter()).update(sub.taken)
                subs.append(("member", sub.queue, s.is_active, s.pending_msgs, s.dropped))
            else:
                counters = (s.is_active, s.pending_msgs, s.pending_bytes, s.delivered, s.dropped)
                subs.append(("plain", counters, tuple(sub.taken)))
        return {
            "connections": connections,
            "subscriptions": subs,
            "queue groups": {name: sorted(c.items(), key=repr) for name, c in groups.items()},
        }

    def live_subscriptions(self) -> list[tuple[int, object, str | None, bool]]:
        """``(connection, pattern, queue, answering)`` of every subscription live on an open
        connection."""
        return [
            (sub.connection, sub.pattern, sub.queue, sub.answering)
            for sub in self.subs
            if sub is not None
            and sub.subscription.is_active
            and not self.connections[sub.connection].is_closed
        ]

    def subscription_kinds(self) -> list[tuple[bool, bool]]:
        """``(exists, read_by_task)`` per subscription index."""
        return [(sub is not None, sub is not None and sub.read_by_task) for sub in self.subs]

    # ------------------------------------------------------------------ helpers

    def _sub(self, index: int) -> Sub:
        sub = self.subs[index]
        assert sub is not None
        return sub

    def _learn(self, *subjects: object) -> None:
        for subject in subjects:
            if isinstance(subject, str):
                self.known_subjects.add(subject)

    def _name(self, subject: str | None) -> str | None:
        if subject is None or subject in self.known_subjects:
            return subject
        return INBOX

    def _normal(self, msg: Msg) -> Outcome:
        headers = None if msg.headers is None else tuple(sorted(msg.headers.items()))
        return (self._name(msg.subject), bytes(msg.data), headers, self._name(msg.reply))
