"""The lockstep state machine: the same Transport calls on two sides, compared after every step.

A :class:`Side` says how to reach one broker (a connector made fresh for every program) and
which event loop to run it on.  :func:`run_lockstep` starts each side's loop in its own
thread (an anyio blocking portal), then lets hypothesis drive :func:`lockstep_machine`'s
rule-based machine: every rule runs the same call on both sides at once, compares the two
outcomes, then compares everything each side observes after a barrier (see
``testing.lockstep.world``).  The first difference raises :class:`LockstepDifference`,
which hypothesis shrinks to a short program and prints as runnable steps.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from transports.subjects import is_valid_pattern, is_valid_subject, matches, server_match_order

from . import values
from .world import STEP_LIMIT, Connector, Outcome, World

__all__ = [
    "DEFAULT_STEPS",
    "STEPS_VARIABLE",
    "LockstepDifference",
    "LockstepRun",
    "Side",
    "configured_steps",
    "memory_side",
    "nats_side",
    "run_lockstep",
]

STEPS_VARIABLE = "MICRO_LOCKSTEP_STEPS"
"""Environment variable that overrides the number of steps :func:`run_lockstep` runs."""

DEFAULT_STEPS = 2_000
"""Steps a run takes when neither ``steps`` nor :data:`STEPS_VARIABLE` says otherwise."""

CONNECTIONS = 3
"""Connections each program starts with (a rule may open up to two more)."""

MAX_CONNECTIONS = 5

CONNECTION_CHOICES = st.integers(0, 4 * MAX_CONNECTIONS - 1)
"""Which connection a rule uses: below MAX_CONNECTIONS any (closed ones included), above
it an open one."""

ANSWER_WAIT = STEP_LIMIT / 4
"""Request timeout when an answer or a "no responders" status is expected.  Well under the
step limit: when the answer does not come after all (e.g. a slow consumer dropped the
request on both sides), both sides report their own ``RequestTimeoutError`` instead of one
of them hitting the step limit first."""

SILENCE_WAIT = 0.05
"""Request timeout when the request must time out on both sides (subscribers, no answerer)."""


@dataclass(frozen=True)
class Side:
    """One of the two brokers a lockstep run compares.

    ``connector`` is called once per program, on the side's own event loop, and returns
    an ``async connect() -> Transport`` for that program's connections (a fresh in-memory
    broker per program, say, or a URL on a shared server).  ``backend`` is the anyio
    backend of the side's loop (``"asyncio"`` or ``"trio"``).
    """

    name: str
    connector: Callable[[], Connector]
    backend: str = "asyncio"


def memory_side(backend: str = "asyncio", **broker_options: Any) -> Side:
    """A fresh ``transports.memory.MemoryBroker(**broker_options)`` for every program."""

    def connector() -> Connector:
        from transports.memory import MemoryBroker

        return MemoryBroker(**broker_options).connect

    return Side(f"memory ({backend})", connector, backend)


def nats_side(url: str, **connect_options: Any) -> Side:
    """Connections to the nats-server at ``url`` (``transports.connect(url, **options)``)."""

    def connector() -> Connector:
        from transports import connect

        return partial(connect, url, **connect_options)

    return Side(f"nats ({url})", connector, "asyncio")


class LockstepDifference(AssertionError):
    """The two sides disagreed: ``what`` differed after ``step``, ``left`` vs ``right``."""

    def __init__(self, step: str, what: str, left: object, right: object, names: tuple[str, str]):
        super().__init__(
            f"after {step}: {what} differ\n  {names[0]}: {left!r}\n  {names[1]}: {right!r}"
        )
        self.step = step
        self.what = what
        self.left = left
        self.right = right


@dataclass
class LockstepRun:
    """What a :func:`run_lockstep` call did."""

    steps: int = 0
    programs: int = 0
    messages: int = 0
    """Messages the left side's subscriptions received, over all programs."""
    calls: dict[str, int] = field(default_factory=dict)


@dataclass
class _Running:
    side: Side
    portal: BlockingPortal


def _both(
    running: tuple[_Running, _Running], worlds: tuple[World, World], name: str, *args: Any
) -> tuple[Any, Any]:
    """Run ``World.<name>(*args)`` on both sides at once; both results."""
    futures: list[Future[Any]] = [
        r.portal.start_task_soon(getattr(w, name), *args)
        for r, w in zip(running, worlds, strict=True)
    ]
    left, right = (f.result(timeout=STEP_LIMIT * 3) for f in futures)
    return left, right


def lockstep_machine(
    left: _Running, right: _Running, run: LockstepRun
) -> type[RuleBasedStateMachine]:
    """The machine class comparing two running sides (see :func:`run_lockstep`)."""
    running = (left, right)
    names = (left.side.name, right.side.name)

    class LockstepMachine(RuleBasedStateMachine):
        subscribed = Bundle("subscribed")
        """Concrete subjects that subscriptions made so far match (publishes aim at them)."""

        def __init__(self) -> None:
            super().__init__()
            self.worlds: tuple[World, World] = tuple(  # type: ignore[assignment]
                World(r.portal.call(r.side.connector), connections=CONNECTIONS) for r in running
            )
            self.futures = [
                r.portal.start_task(w.run)[0] for r, w in zip(running, self.worlds, strict=True)
            ]
            self.open = [True] * CONNECTIONS  # one entry per connection the program opened
            self.answering_groups: dict[str, bool] = {}
            self.last = "the start"
            self.taken = 0  # steps of this program
            run.programs += 1

        def teardown(self) -> None:
            run.messages += sum(
                len(s.taken) + s.subscription.pending_msgs
                for s in self.worlds[0].subs
                if s is not None
            )
            for r, w in zip(running, self.worlds, strict=True):
                r.portal.call(w.stop)
            for f in self.futures:
                f.result(timeout=STEP_LIMIT * 2)

        # -------------------------------------------------------------- comparing

        def both(self, step: str, name: str, *args: Any) -> Outcome:
            self.last = step
            self.taken += 1
            run.steps += 1
            a, b = _both(running, self.worlds, name, *args)
            key = f"{name} {a[1] if a[0] == 'error' else 'ok'}"
            run.calls[key] = run.calls.get(key, 0) + 1
            if a != b:
                raise LockstepDifference(step, "outcomes", a, b, names)
            return a  # type: ignore[no-any-return]

        @invariant()
        def observations_agree(self) -> None:
            a, b = _both(running, self.worlds, "observe")
            if a != b:
                for key in a:
                    if a[key] != b[key]:
                        raise LockstepDifference(self.last, key, a[key], b[key], names)

        def kinds(self) -> list[tuple[bool, bool]]:
            return self.worlds[0].subscription_kinds()

        # -------------------------------------------------------------- rules

        @rule(
            connection=CONNECTION_CHOICES,
            subject=values.subjects(),
            data=values.payloads(),
            reply=values.reply_subjects(),
            headers=values.header_maps(),
        )
        def publish(
            self, connection: int, subject: Any, data: Any, reply: Any, headers: Any
        ) -> None:
            connection = self.choose_connection(connection)
            if self.status_target_is_a_tie(connection, subject, reply):
                reply = None  # see status_target_is_a_tie
            step = (
                f"publish(conn {connection}, {_short(subject)}, {_short(data)}, "
                f"reply={_short(reply)}, headers={_short(headers)})"
            )
            self.both(step, "publish", connection, subject, data, reply, headers)

        @rule(
            target=subscribed,
            connection=CONNECTION_CHOICES,
            pattern=values.patterns(),
            queue=st.one_of(st.none(), st.none(), values.queue_names()),
            answering=st.sampled_from((False, False, True)),
            pending_msgs_limit=st.sampled_from((*[None] * 8, 1, 2, 3, 0)),
            pending_bytes_limit=st.sampled_from((*[None] * 8, 5, 40, -1)),
        )
        def subscribe(
            self,
            connection: int,
            pattern: Any,
            queue: Any,
            answering: bool,
            pending_msgs_limit: int | None,
            pending_bytes_limit: int | None,
        ) -> MultipleResults[str]:
            connection = self.choose_connection(connection)
            if isinstance(queue, str) and queue:
                answering = self.answering_groups.setdefault(queue, answering)
            if answering or queue is not None:
                # read by a task: which member gets a message, and when a slow
                # reader drops one, is the broker's choice, so no small limits here
                pending_msgs_limit = pending_bytes_limit = None
            step = (
                f"subscribe(conn {connection}, {_short(pattern)}, queue={_short(queue)}, "
                f"answering={answering}, limits=({pending_msgs_limit}, {pending_bytes_limit}))"
            )
            outcome = self.both(
                step,
                "subscribe",
                connection,
                pattern,
                queue,
                answering,
                pending_msgs_limit,
                pending_bytes_limit,
            )
            if outcome[0] != "ok":
                return multiple()
            return multiple(values.concrete(pattern))

        @rule(
            connection=CONNECTION_CHOICES,
            subject=subscribed,
            data=values.payloads(),
            reply=st.one_of(st.none(), subscribed),
            headers=values.header_maps(),
        )
        def publish_to_subscribed(
            self, connection: int, subject: str, data: Any, reply: Any, headers: Any
        ) -> None:
            self.publish(connection, subject, data, reply, headers)

        @rule(
            connection=CONNECTION_CHOICES,
            subject=values.subjects(),
            data=values.payloads(),
            reply=subscribed,
        )
        def publish_with_subscribed_reply(
            self, connection: int, subject: Any, data: Any, reply: str
        ) -> None:
            self.publish(connection, subject, data, reply, None)

        @rule(
            connection=CONNECTION_CHOICES,
            subject=subscribed,
            data=values.payloads(),
            headers=values.header_maps(),
        )
        def request_subscribed(
            self, connection: int, subject: str, data: Any, headers: Any
        ) -> None:
            self.request(connection, subject, data, headers, None)

        @rule(
            connection=CONNECTION_CHOICES,
            subject=values.subjects(),
            data=values.payloads(),
            headers=values.header_maps(),
            timeout=values.timeouts(),
        )
        def request(
            self, connection: int, subject: Any, data: Any, headers: Any, timeout: float | None
        ) -> None:
            connection = self.choose_connection(connection)
            if timeout is None:
                timeout = SILENCE_WAIT if self.silent(subject) else ANSWER_WAIT
            step = (
                f"request(conn {connection}, {_short(subject)}, {_short(data)}, "
                f"headers={_short(headers)}, timeout={timeout})"
            )
            self.both(step, "request", connection, subject, data, headers, timeout)

        def matching(self, subject: object) -> list[tuple[int, str, str | None, bool]]:
            """The live subscriptions (connection, pattern, queue, answering) a message to
            ``subject`` would reach, as the subject rules say."""
            if not isinstance(subject, str) or not is_valid_subject(subject):
                return []
            return [
                (c, p, q, answering)
                for c, p, q, answering in self.worlds[0].live_subscriptions()
                if isinstance(p, str) and is_valid_pattern(p) and matches(p, subject)
            ]

        def silent(self, subject: object) -> bool:
            """True when a request to ``subject`` must time out: a live subscription
            matches it (so no "no responders" status) but none that answers."""
            matching = [answering for _, _, _, answering in self.matching(subject)]
            return bool(matching) and not any(matching)

        def status_target_is_a_tie(self, connection: int, subject: object, reply: object) -> bool:
            """True when a publish would make the server send its no-responders status to
            one of several subscriptions of the publisher under one pattern: nats-server
            picks one of those at random, so the step cannot be compared."""
            if not isinstance(subject, str) or not is_valid_subject(subject):
                return False
            if self.matching(subject):
                return False  # delivered somewhere: no status
            own = [p for c, p, q, _ in self.matching(reply) if c == connection and q is None]
            if len(own) < 2 or not isinstance(reply, str):
                return False
            order = server_match_order(own, reply)
            return own.count(min(own, key=lambda p: order[p])) > 1

        @precondition(lambda self: any(e and not t for e, t in self.kinds()))
        @rule(which=st.integers(0, 1_000), count=st.integers(1, 3))
        def take(self, which: int, count: int) -> None:
            index = self.pick(which, read_by_task=False)
            self.both(f"take(sub {index}, {count})", "take", index, count)

        @precondition(lambda self: any(e for e, _ in self.kinds()))
        @rule(which=st.integers(0, 1_000), limit=values.limits())
        def unsubscribe(self, which: int, limit: int) -> None:
            index = self.pick(which)
            if self.kinds()[index][1]:
                limit = 0  # a task reads it: how many it had taken is the broker's timing
            self.both(f"unsubscribe(sub {index}, limit={limit})", "unsubscribe", index, limit)

        @precondition(lambda self: any(e for e, _ in self.kinds()))
        @rule(which=st.integers(0, 1_000))
        def drain_subscription(self, which: int) -> None:
            index = self.pick(which)
            self.both(f"subscription {index}.drain()", "drain_subscription", index)

        @rule(connection=CONNECTION_CHOICES)
        def flush(self, connection: int) -> None:
            connection = self.choose_connection(connection)
            self.both(f"flush(conn {connection})", "flush", connection)

        def may_end(self) -> bool:
            """Ending a connection makes every later call on it an error; let a program
            do some work first, and keep one connection open."""
            return self.taken >= 8 and sum(self.open) > 1

        @precondition(may_end)
        @rule(connection=CONNECTION_CHOICES)
        def close(self, connection: int) -> None:
            connection = self.open_connection(connection)
            self.open[connection] = False
            self.both(f"close(conn {connection})", "close", connection)

        @precondition(may_end)
        @rule(connection=CONNECTION_CHOICES)
        def drain(self, connection: int) -> None:
            connection = self.open_connection(connection)
            self.open[connection] = False
            self.both(f"drain(conn {connection})", "drain_connection", connection)

        @precondition(lambda self: len(self.open) < MAX_CONNECTIONS)
        @rule()
        def connect(self) -> None:
            self.open.append(True)
            self.both("connect()", "add_connection")

        def choose_connection(self, which: int) -> int:
            """Mostly an open connection; sometimes any, closed ones included."""
            if which < MAX_CONNECTIONS:
                return which % len(self.open)
            return self.open_connection(which)

        def open_connection(self, which: int) -> int:
            candidates = [i for i, is_open in enumerate(self.open) if is_open]
            return candidates[which % len(candidates)]

        def pick(self, which: int, read_by_task: bool | None = None) -> int:
            candidates = [
                i
                for i, (exists, by_task) in enumerate(self.kinds())
                if exists and (read_by_task is None or by_task == read_by_task)
            ]
            return candidates[which % len(candidates)]

    return LockstepMachine


def _short(value: object) -> str:
    text = repr(value if not isinstance(value, (bytes, bytearray, memoryview)) else bytes(value))
    if isinstance(value, (bytearray, memoryview)):
        text = f"{type(value).__name__}({text})"
    return text if len(text) <= 40 else f"{text[:24]}...<{len(text)} chars>"


def configured_steps(steps: int | None = None) -> int:
    """``steps`` if given, else the :data:`STEPS_VARIABLE` environment variable, else
    :data:`DEFAULT_STEPS`; ``ValueError`` naming the variable for a bad value."""
    if steps is not None:
        return steps
    configured = os.environ.get(STEPS_VARIABLE)
    if configured is None:
        return DEFAULT_STEPS
    try:
        value = int(configured)
    except ValueError:
        raise ValueError(f"{STEPS_VARIABLE}={configured!r}: must be a whole number") from None
    if value <= 0:
        raise ValueError(f"{STEPS_VARIABLE}={configured!r}: must be positive")
    return value


@contextmanager
def _running(side: Side) -> Iterator[_Running]:
    with start_blocking_portal(side.backend) as portal:
        yield _Running(side, portal)


def run_lockstep(
    left: Side,
    right: Side,
    *,
    steps: int | None = None,
    steps_per_program: int = 40,
    shrink: bool = True,
) -> LockstepRun:
    """Drive both sides with the same generated programs for at least ``steps`` steps.

    ``steps`` defaults to the :data:`STEPS_VARIABLE` environment variable, else
    :data:`DEFAULT_STEPS`.  Raises :class:`LockstepDifference` on the first difference,
    shrunk by hypothesis to a short program unless ``shrink`` is false; returns how many
    steps and programs ran.
    """
    total = configured_steps(steps)
    run = LockstepRun()
    with ExitStack() as stack:
        a = stack.enter_context(_running(left))
        b = stack.enter_context(_running(right))
        machine = lockstep_machine(a, b, run)
        while run.steps < total:  # hypothesis ends some programs early: top up
            config = settings(
                max_examples=max(1, math.ceil((total - run.steps) / steps_per_program)),
                stateful_step_count=steps_per_program,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
                phases=list(Phase) if shrink else [Phase.explicit, Phase.reuse, Phase.generate],
            )
            run_state_machine_as_test(machine, settings=config)
    return run
