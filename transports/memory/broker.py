"""``MemoryBroker``: the in-process server and its test conveniences (read the package
docstring, ``transports.memory``, first).

The broker owns the connections (``connection.MemoryTransport``) and the
:class:`~transports.memory.routing.Router` they publish through.  Its test conveniences
are hooks in front of that router or queries of the broker's state -- no monkeypatching,
and nothing costs anything while unused:

* :meth:`~MemoryBroker.record`: record all traffic, query it by subject pattern
  (:mod:`transports.memory.recording`);
* :meth:`~MemoryBroker.wait_idle`: wait until every message published so far has been
  taken by its consumer and every handler has finished (:mod:`transports.memory.idle`);
* strict mode (:attr:`~MemoryBroker.strict`): a service handler's exception is kept and
  re-raised in the test (:meth:`~MemoryBroker.raise_handler_errors`, called by
  ``wait_idle`` and by the pytest fixture ``micro_broker`` at teardown);
* fault rules by subject pattern: :meth:`~MemoryBroker.drop`, ``delay``, ``duplicate``,
  ``reorder``, ``no_responders``, ``slow_consumer`` (:mod:`transports.memory.faults`);
  forced disconnects are per connection (``MemoryTransport.force_disconnect``).
"""

from __future__ import annotations

import random

from transports.memory.connection import DEFAULT_PENDING_SIZE, MemoryTransport
from transports.memory.faults import BrokerHooks, FaultRule
from transports.memory.idle import busy_report
from transports.memory.idle import wait_idle as _wait_idle
from transports.memory.inbox import Nuid
from transports.memory.recording import Recording
from transports.memory.routing import Router
from transports.memory.seeding import new_rng, track
from transports.runtime import current_home
from transports.subjects import positive_number

__all__ = ["HandlerFailure", "MemoryBroker"]


class HandlerFailure:
    """A handler exception reported in strict mode: the ``error`` itself, the request
    ``subject`` and the ``connection`` the service used."""

    __slots__ = ("connection", "error", "subject")

    def __init__(self, connection: MemoryTransport, subject: str, error: Exception) -> None:
        self.connection = connection
        self.subject = subject
        self.error = error

    def __repr__(self) -> str:
        return f"<HandlerFailure on {self.subject!r}: {self.error!r}>"


class MemoryBroker:
    """The in-process server: connections, routing (its :class:`Router`), test hooks.

    ``max_payload`` is the largest message accepted (payload plus encoded headers, like
    the server's setting); ``rng`` (or a ``random.Random(seed)``) picks queue-group
    members and inbox ids, so a seeded broker replays the same choices for the same
    sequence of operations; ``strict`` keeps service handler exceptions to re-raise them
    in the test (see :attr:`strict`).
    Raises ``ValueError`` for a non-positive ``max_payload`` or both ``seed`` and ``rng``.
    """

    def __init__(
        self,
        *,
        max_payload: int = 1024 * 1024,
        seed: int | None = None,
        rng: random.Random | None = None,
        strict: bool = False,
    ) -> None:
        if not isinstance(max_payload, int) or isinstance(max_payload, bool) or max_payload <= 0:
            raise ValueError(f"invalid max_payload {max_payload!r}: must be a positive int")
        if seed is not None and rng is not None:
            raise ValueError("pass either seed or rng, not both")
        self._max_payload = max_payload
        routing_rng = rng if rng is not None else new_rng(seed)
        self._id_rng = random.Random(routing_rng.getrandbits(64))
        self._router = Router(routing_rng)
        self._connections: dict[int, MemoryTransport] = {}
        self._next_cid = 0
        self._handlers_running = 0  # endpoint handlers running in tasks (HandlerTracker)
        self._hooks: BrokerHooks | None = None  # recordings and fault rules, made on first use
        self._strict = bool(strict)
        self._handler_failures: list[HandlerFailure] = []
        track(routing_rng)  # replayable choices inside hypothesis tests

    @property
    def max_payload(self) -> int:
        """Largest message (payload plus encoded headers, in bytes) connections may publish."""
        return self._max_payload

    @property
    def in_flight(self) -> int:
        """Messages buffered in subscriptions and not yet taken by their consumers."""
        return sum(sub.pending_msgs for conn in self.connections for sub in conn.subscriptions)

    @property
    def subscription_count(self) -> int:
        """Interest entries in the sublist (subscriptions plus request inboxes)."""
        return len(self._router)

    @property
    def connections(self) -> list[MemoryTransport]:
        """Open connections, oldest first."""
        return list(self._connections.values())

    async def connect(
        self,
        *,
        name: str | None = None,
        drain_timeout: float = 30.0,
        pending_size: int = DEFAULT_PENDING_SIZE,
    ) -> MemoryTransport:
        """Open a new connection to this broker.

        ``name`` labels the connection; ``drain_timeout`` bounds ``drain()`` (after it the
        connection closes anyway, reporting an ``ERROR`` event); ``pending_size`` bounds
        the bytes buffered by publishes while disconnected (``0``: publishing while
        disconnected raises, see ``MemoryTransport.force_disconnect``).  Raises
        ``ValueError`` for a non-str ``name``, a non-positive ``drain_timeout`` or a
        negative ``pending_size``.
        """
        if name is not None and not isinstance(name, str):
            raise ValueError(f"invalid connection name {name!r}: must be a str or None")
        positive_number("drain_timeout", drain_timeout)
        if not isinstance(pending_size, int) or isinstance(pending_size, bool) or pending_size < 0:
            raise ValueError(f"invalid pending_size {pending_size!r}: must be an int >= 0")
        self._next_cid += 1
        nuid = Nuid(random.Random(self._id_rng.getrandbits(64)))
        self._router.note_home(current_home())
        conn = MemoryTransport(
            self, self._router, nuid, self._next_cid, name, drain_timeout, pending_size
        )
        self._connections[conn.cid] = conn
        return conn

    # ------------------------------------------------------------------ for connections

    def report_handler_failure(
        self, connection: MemoryTransport, subject: str, error: Exception
    ) -> None:
        """For ``MemoryTransport.handler_failed``: keep ``error`` when strict."""
        if self._strict:
            self._handler_failures.append(HandlerFailure(connection, subject, error))

    def handler_started(self) -> None:
        """For ``MemoryTransport.handler_started``: :meth:`wait_idle` waits for the handler."""
        self._handlers_running += 1

    def handler_finished(self) -> None:
        """For ``MemoryTransport.handler_finished``."""
        self._handlers_running -= 1

    @property
    def handlers_running(self) -> int:
        """Service handlers running in a task of their own (``max_concurrency > 1``) now."""
        return self._handlers_running

    def connection_closed(self, connection: MemoryTransport) -> None:
        """For ``MemoryTransport.close``: forget ``connection``."""
        self._connections.pop(connection.cid, None)

    # ------------------------------------------------------------------ recording

    def record(self) -> Recording:
        """Start recording every message published to this broker (``$SRV`` discovery and
        replies to inboxes included), as published, in broker order.

        Returns the live :class:`~transports.memory.recording.Recording` (a list of
        ``RecordedMessage`` with ``connection``, ``subject``, ``data``, ``headers``,
        ``reply`` and ``seq``; query it with ``.matching("orders.>")``, ``.requests()``,
        ``.unanswered()``...).  Use it as a context manager or call ``stop()``; several
        recordings may run at once.
        """
        hooks = self._fault_hooks()
        return hooks.add_recording(Recording(hooks.remove_recording))

    # ------------------------------------------------------------------ idle

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Return once "after the publish, all handlers ran": every message published so far
        was taken by its consumer loop (service endpoints, App listeners, any ``async for``),
        every such loop has finished with its message, every service handler running in a
        task of its own (``max_concurrency > 1``) has finished, delayed messages have
        arrived, and no task is runnable.  Then re-raises a handler exception kept in
        strict mode.

        Subscriptions only read with ``next_msg`` are the test's own probes and are not
        waited for.  Raises builtin ``TimeoutError`` naming what is still busy after
        ``timeout`` seconds (of the backend's clock), ``ValueError`` for a non-positive
        ``timeout``.  The exact rule is in ``transports.memory.idle``.
        """
        positive_number("timeout", timeout)
        await _wait_idle(self._busy_report, timeout)
        self.raise_handler_errors()

    @property
    def is_idle(self) -> bool:
        """True when nothing is buffered, delayed or held by a consumer right now (the
        broker half of :meth:`wait_idle`, without waiting for runnable tasks)."""
        return not self._busy_report(None)

    def _busy_report(self, caller: object) -> list[str]:
        hooks = self._hooks
        delayed = 0 if hooks is None else hooks.delayed
        return busy_report(self._handlers_running, delayed, self.connections, caller)

    # ------------------------------------------------------------------ strict mode

    @property
    def strict(self) -> bool:
        """Whether service handler exceptions are kept to be re-raised in the test.

        A handler exception (anything but a ``micro.ServiceError``) still produces its
        ``500`` error reply, log record and stats entry; in strict mode it is also kept
        (:attr:`handler_failures`) and :meth:`raise_handler_errors` re-raises it -- as
        :meth:`wait_idle` and the ``micro_broker`` fixture's teardown do.  Assignable.
        """
        return self._strict

    @strict.setter
    def strict(self, value: bool) -> None:
        self._strict = bool(value)

    @property
    def handler_failures(self) -> list[HandlerFailure]:
        """Handler exceptions kept in strict mode and not yet raised or taken (a copy)."""
        return list(self._handler_failures)

    def take_handler_errors(self) -> list[Exception]:
        """Return the kept handler exceptions and forget them (for a test that expects a
        handler to fail)."""
        failures, self._handler_failures = self._handler_failures, []
        return [failure.error for failure in failures]

    def raise_handler_errors(self) -> None:
        """Re-raise the first kept handler exception (the original object, traceback
        included) and forget all of them; nothing when none was kept."""
        failures, self._handler_failures = self._handler_failures, []
        if failures:
            error = failures[0].error
            add_note = getattr(error, "add_note", None)
            if add_note is not None:
                add_note(f"raised by a service handler for a request on {failures[0].subject!r}")
                if len(failures) > 1:
                    add_note(f"{len(failures) - 1} more handler exception(s): {failures[1:]}")
            raise error

    # ------------------------------------------------------------------ fault rules

    @property
    def faults(self) -> list[FaultRule]:
        """The active fault rules, oldest first."""
        hooks = self._hooks
        return [] if hooks is None else list(hooks.rules)

    def clear_faults(self) -> None:
        """Remove every fault rule (held ``reorder`` messages are released)."""
        for rule in self.faults:
            rule.remove()

    def _fault_hooks(self) -> BrokerHooks:
        if self._hooks is None:
            self._hooks = BrokerHooks(self._router)
        return self._hooks

    def _rule(
        self,
        kind: str,
        pattern: str,
        times: int | None,
        probability: float,
        *,
        seconds: float = 0.0,
        copies: int = 0,
        count: int = 0,
    ) -> FaultRule:
        hooks = self._fault_hooks()
        rule = FaultRule(
            hooks,
            kind,
            pattern,
            times=times,
            probability=probability,
            seconds=seconds,
            copies=copies,
            count=count,
        )
        return hooks.add_rule(rule)

    def drop(
        self, pattern: str, *, times: int | None = None, probability: float = 1.0
    ) -> FaultRule:
        """Drop messages published to subjects matching ``pattern``: nobody receives them
        (a request then times out).  ``times``: only the next N matching messages;
        ``probability``: each with this chance (seeded).  Returns the rule (remove it, or
        use it as a context manager).  Raises ``BadSubjectError``/``ValueError`` for bad
        arguments."""
        return self._rule("drop", pattern, times, probability)

    def delay(
        self,
        pattern: str,
        seconds: float,
        *,
        times: int | None = None,
        probability: float = 1.0,
    ) -> FaultRule:
        """Deliver matching messages ``seconds`` later (so later messages overtake them).

        Uses the backend's clock (virtual under trio's ``MockClock``); ``wait_idle`` waits
        for delayed messages.  ``seconds`` must be >= 0."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
            raise ValueError(f"invalid seconds {seconds!r}: must be a number >= 0")
        return self._rule("delay", pattern, times, probability, seconds=float(seconds))

    def duplicate(
        self,
        pattern: str,
        *,
        copies: int = 1,
        times: int | None = None,
        probability: float = 1.0,
    ) -> FaultRule:
        """Deliver matching messages ``1 + copies`` times (an at-least-once redelivery)."""
        _check_count("copies", copies, 1)
        return self._rule("duplicate", pattern, times, probability, copies=copies)

    def reorder(
        self,
        pattern: str,
        *,
        count: int = 2,
        times: int | None = None,
        probability: float = 1.0,
    ) -> FaultRule:
        """Hold matching messages until ``count`` are held, then deliver them in reverse
        order.  Removing the rule releases a partial batch in arrival order; held messages
        are not waited for by ``wait_idle``."""
        _check_count("count", count, 2)
        return self._rule("reorder", pattern, times, probability, count=count)

    def no_responders(
        self, pattern: str, *, times: int | None = None, probability: float = 1.0
    ) -> FaultRule:
        """Route matching messages to nobody, as if nothing were subscribed: a request (or
        a publish with a reply subject) gets the ``503`` no-responders status at once."""
        return self._rule("no_responders", pattern, times, probability)

    def slow_consumer(
        self, pattern: str, *, times: int | None = None, probability: float = 1.0
    ) -> FaultRule:
        """Make every subscription receiving a matching message drop it as a slow consumer
        would: its ``dropped`` counter grows and its connection emits an ``ERROR`` event
        carrying a ``SlowConsumerError`` (a request whose reply is dropped times out)."""
        return self._rule("slow_consumer", pattern, times, probability)


def _check_count(what: str, value: int, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"invalid {what} {value!r}: must be an int >= {minimum}")
