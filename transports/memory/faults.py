"""Fault injection and recording for the in-memory broker: the hooks in front of routing.

``Router.dispatch`` (:mod:`transports.memory.routing`) checks one attribute, its
``interceptor``; :class:`BrokerHooks` sets it to itself only while a recording or a fault
rule is active (or a delayed message is still on its way), so the hot path costs nothing
when no test feature is used.  When set, every published message goes through
:meth:`BrokerHooks.dispatch`: the active recordings see it first (as published), then the
fault rules act on it in the order they were created, then ``Router.route`` routes it.

A :class:`FaultRule` matches messages by subject pattern (wildcards allowed) and acts on
each matching message, optionally only ``times`` times and with a ``probability`` drawn from
a seeded generator (derived from the broker's, so seeded brokers replay their faults):

* ``drop``: the message vanishes (no receiver gets it, no no-responders signal);
* ``delay``: it is routed ``seconds`` later (the backend's clock: virtual under trio's
  ``MockClock``); ``wait_idle`` waits for it;
* ``duplicate``: it is routed ``1 + copies`` times;
* ``reorder``: ``count`` messages are held, then routed in reverse order; removing the rule
  (or its ``times`` running out) releases a partial batch in arrival order;
* ``no_responders``: routed to nobody, as if nothing were subscribed: a request gets the
  ``503`` no-responders status at once;
* ``slow_consumer``: every receiving subscription drops it as if its pending limit were
  reached (``dropped`` grows, an ``ERROR`` event with ``SlowConsumerError`` is emitted).

A message acted on by one rule goes on through the later rules (a delayed message may still
be duplicated), but each rule acts on a message at most once.
"""

from __future__ import annotations

import random
from types import TracebackType

from transports.base import Msg
from transports.memory.connection import MemoryTransport
from transports.memory.recording import Recording
from transports.memory.routing import Router, copy_msg
from transports.memory.seeding import track
from transports.runtime import call_later
from transports.subjects import matches, validate_pattern

__all__ = ["FAULT_KINDS", "BrokerHooks", "FaultRule"]

FAULT_KINDS = ("drop", "delay", "duplicate", "reorder", "no_responders", "slow_consumer")
"""The kinds of :class:`FaultRule`."""

_Held = tuple[object, Msg, frozenset["FaultRule"]]  # (origin, message, rules applied)


class FaultRule:
    """One active fault of a ``MemoryBroker`` (made by ``broker.drop(...)`` and friends).

    ``kind`` is one of :data:`FAULT_KINDS`, ``pattern`` the subject pattern it matches,
    ``hits`` how many messages it acted on so far, ``remaining`` how many more it will act
    on (``None``: unlimited).  :meth:`remove` ends it (a context manager exit does too);
    a rule whose ``times`` ran out removes itself.
    """

    def __init__(
        self,
        hooks: BrokerHooks,
        kind: str,
        pattern: str,
        *,
        times: int | None,
        probability: float,
        seconds: float = 0.0,
        copies: int = 0,
        count: int = 0,
    ) -> None:
        validate_pattern(pattern)
        if times is not None and (
            not isinstance(times, int) or isinstance(times, bool) or times < 1
        ):
            raise ValueError(f"invalid times {times!r}: must be None or an int >= 1")
        if isinstance(probability, bool) or not isinstance(probability, (int, float)):
            raise ValueError(f"invalid probability {probability!r}: must be a number in (0, 1]")
        if not 0.0 < probability <= 1.0:
            raise ValueError(f"invalid probability {probability!r}: must be in (0, 1]")
        self._hooks = hooks
        self.kind = kind
        self.pattern = pattern
        self.remaining = times
        self.probability = float(probability)
        self.seconds = seconds
        self.copies = copies
        self.count = count
        self.hits = 0
        self._held: list[_Held] = []
        self._active = True

    def __repr__(self) -> str:
        left = "" if self.remaining is None else f", {self.remaining} left"
        state = "" if self._active else ", removed"
        return f"<FaultRule {self.kind} {self.pattern!r}: {self.hits} hit(s){left}{state}>"

    @property
    def active(self) -> bool:
        """True until removed (or its ``times`` ran out)."""
        return self._active

    @property
    def held(self) -> int:
        """Messages a ``reorder`` rule holds right now."""
        return len(self._held)

    def remove(self) -> None:
        """End the rule; a ``reorder`` rule releases what it holds, in arrival order.
        Idempotent."""
        if self._active:
            self._active = False
            held, self._held = self._held, []
            self._hooks._rule_removed(self)
            for origin, msg, applied in held:
                self._hooks._process(origin, msg, applied)

    def __enter__(self) -> FaultRule:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()

    def _takes(self, subject: str, rng: random.Random) -> bool:
        """Whether the rule acts on a message to ``subject`` (counts the hit)."""
        if not self._active or not matches(self.pattern, subject):
            return False
        if self.probability < 1.0 and rng.random() >= self.probability:
            return False
        self.hits += 1
        if self.remaining is not None:
            self.remaining -= 1
        return True

    @property
    def _exhausted(self) -> bool:
        return self.remaining == 0


class BrokerHooks:
    """The recordings, fault rules and delayed messages of one broker; ``router``'s
    interceptor (:class:`~transports.memory.routing.Interceptor`) while any is active."""

    def __init__(self, router: Router) -> None:
        self._router = router
        self.rules: list[FaultRule] = []
        self.recordings: list[Recording] = []
        self.delayed = 0  # messages a delay rule holds back (wait_idle waits for them)
        self.seq = 0
        self._rng: random.Random | None = None

    def _changed(self) -> None:
        """Intercept the router's dispatching exactly while something needs it."""
        active = self.rules or self.recordings or self.delayed
        self._router.interceptor = self if active else None

    @property
    def rng(self) -> random.Random:
        """The generator of probabilistic faults (derived from the router's, replayable)."""
        if self._rng is None:
            self._rng = self._router.derived_rng()
            track(self._rng)
        return self._rng

    def add_rule(self, rule: FaultRule) -> FaultRule:
        self.rules.append(rule)
        self._changed()
        return rule

    def _rule_removed(self, rule: FaultRule) -> None:
        if rule in self.rules:
            self.rules.remove(rule)
        self._changed()

    def add_recording(self, recording: Recording) -> Recording:
        self.recordings.append(recording)
        self._changed()
        return recording

    def remove_recording(self, recording: Recording) -> None:
        """``Recording.stop``'s callback: stop feeding ``recording``."""
        self.recordings = [r for r in self.recordings if r is not recording]
        self._changed()

    def dispatch(self, origin: object, msg: Msg) -> None:
        """Record ``msg`` as published by ``origin``, then apply the fault rules and route it."""
        assert isinstance(origin, MemoryTransport)  # only connections publish
        self.seq += 1
        for recording in self.recordings:
            recording.record(self.seq, origin, msg)
        self._process(origin, msg, frozenset())

    def _process(self, origin: object, msg: Msg, applied: frozenset[FaultRule]) -> None:
        slow = False
        for rule in tuple(self.rules):
            if rule in applied or not rule._takes(msg.subject, self.rng):
                continue
            done = applied | {rule}
            kind = rule.kind
            try:
                if kind == "drop":
                    return
                if kind == "no_responders":
                    if msg.reply is not None:
                        self._router.send_no_responders(origin, msg)
                    return
                if kind == "slow_consumer":
                    slow = True
                    applied = done
                    continue
                if kind == "duplicate":
                    for number in range(1 + rule.copies):
                        self._process(origin, msg if number == 0 else copy_msg(msg), done)
                    return
                if kind == "delay":
                    self._delay(rule.seconds, origin, msg, done)
                    return
                rule._held.append((origin, msg, done))  # reorder
                if len(rule._held) >= rule.count:
                    held, rule._held = rule._held, []
                    for held_origin, held_msg, held_applied in reversed(held):
                        self._process(held_origin, held_msg, held_applied)
                return
            finally:
                if rule._exhausted:
                    rule.remove()
        self._router.route(origin, msg, slow)

    def _delay(
        self, seconds: float, origin: object, msg: Msg, applied: frozenset[FaultRule]
    ) -> None:
        self.delayed += 1

        def release() -> None:
            self.delayed -= 1
            try:
                self._process(origin, msg, applied)
            finally:
                self._changed()

        call_later(seconds, release)
