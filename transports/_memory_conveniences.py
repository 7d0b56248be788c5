"""The test conveniences of ``MemoryBroker`` (a mixin; read ``transports.memory`` first).

Everything here is a hook at the broker's single dispatch point or a query of its state --
no monkeypatching, and nothing costs anything while unused:

* :meth:`~BrokerConveniences.record`: record all traffic, query it by subject pattern;
* :meth:`~BrokerConveniences.wait_idle`: wait until every message published so far has been
  taken by its consumer and every handler has finished;
* strict mode (:attr:`~BrokerConveniences.strict`): a service handler's exception is kept
  and re-raised in the test (:meth:`~BrokerConveniences.raise_handler_errors`, called by
  ``wait_idle`` and by the pytest fixture ``micro_broker`` at teardown);
* fault rules by subject pattern: :meth:`~BrokerConveniences.drop`, ``delay``,
  ``duplicate``, ``reorder``, ``no_responders``, ``slow_consumer`` (see
  ``transports._memory_faults``); forced disconnects are per connection
  (``MemoryTransport.force_disconnect``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from transports._memory_faults import BrokerHooks, FaultRule
from transports._memory_idle import busy_report
from transports._memory_idle import wait_idle as _wait_idle
from transports._memory_recording import Recording
from transports.subjects import positive_number

if TYPE_CHECKING:
    from transports.memory import MemoryBroker, MemoryTransport

__all__ = ["BrokerConveniences", "HandlerFailure"]

_log = logging.getLogger("transports.memory")


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


class BrokerConveniences:
    """Recording, idle-waiting, strict mode and fault rules of ``MemoryBroker``."""

    _hooks: BrokerHooks | None
    _hooks_object: BrokerHooks | None
    _strict: bool
    _handler_failures: list[HandlerFailure]
    _handlers_running: int
    _offline_connections: int

    def _init_conveniences(self, strict: bool) -> None:
        self._handlers_running = 0  # endpoint handlers running in tasks (HandlerTracker)
        self._offline_connections = 0  # force_disconnect()ed: their publishes need the hooks
        self._hooks = None  # checked by _dispatch: set only while something is active
        self._hooks_object = None
        self._strict = bool(strict)
        self._handler_failures = []

    def _hooks_for_update(self) -> BrokerHooks:
        if self._hooks_object is None:
            self._hooks_object = BrokerHooks(self._as_broker())
        return self._hooks_object

    def _as_broker(self) -> MemoryBroker:
        from transports.memory import MemoryBroker

        assert isinstance(self, MemoryBroker)
        return self

    def _hooks_changed(self, removed_recording: Recording | None = None) -> None:
        """Recompute whether dispatch needs the slow path."""
        hooks = self._hooks_object
        if hooks is None:
            return
        if removed_recording is not None and removed_recording in hooks.recordings:
            hooks.recordings = [r for r in hooks.recordings if r is not removed_recording]
        self._hooks = hooks if hooks.active else None

    def _offline_changed(self, delta: int) -> None:
        """A connection went offline (+1) or came back / closed (-1)."""
        self._offline_connections += delta
        self._hooks_for_update()
        self._hooks_changed()

    # ------------------------------------------------------------------ recording

    def record(self) -> Recording:
        """Start recording every message published to this broker (``$SRV`` discovery and
        replies to inboxes included), as published, in broker order.

        Returns the live :class:`~transports._memory_recording.Recording` (a list of
        ``RecordedMessage`` with ``connection``, ``subject``, ``data``, ``headers``,
        ``reply`` and ``seq``; query it with ``.matching("orders.>")``, ``.requests()``,
        ``.unanswered()``...).  Use it as a context manager or call ``stop()``; several
        recordings may run at once.
        """
        recording = Recording(self._as_broker())
        hooks = self._hooks_for_update()
        hooks.recordings = [*hooks.recordings, recording]
        self._hooks_changed()
        return recording

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
        ``timeout``.  The exact rule is in ``transports._memory_idle``.
        """
        positive_number("timeout", timeout)
        await _wait_idle(self._as_broker(), timeout)
        self.raise_handler_errors()

    @property
    def is_idle(self) -> bool:
        """True when nothing is buffered, delayed or held by a consumer right now (the
        broker half of :meth:`wait_idle`, without waiting for runnable tasks)."""
        return not busy_report(self._as_broker())

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

    def _handler_failed(self, connection: MemoryTransport, subject: str, error: Exception) -> None:
        if self._strict:
            self._handler_failures.append(HandlerFailure(connection, subject, error))

    # ------------------------------------------------------------------ fault rules

    @property
    def faults(self) -> list[FaultRule]:
        """The active fault rules, oldest first."""
        hooks = self._hooks_object
        return [] if hooks is None else list(hooks.rules)

    def clear_faults(self) -> None:
        """Remove every fault rule (held ``reorder`` messages are released)."""
        for rule in self.faults:
            rule.remove()

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
        hooks = self._hooks_for_update()
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
