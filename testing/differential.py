"""Differential routing harness: run one routing program on any transports, observe, compare.

A :class:`RoutingProgram` is a list of steps run on two fresh connections -- one
*subscriber*, one *publisher*:

* ``Subscribe(pattern, queue=None)``: the subscriber subscribes (wildcards, queue groups);
* ``Publish(subject)``: the publisher publishes one message;
* ``Request(subject)``: the publisher publishes one message with a reply subject; the
  subscriber answers the first copy it receives, so the outcome is ``"answered"`` -- or
  ``"no responders"`` when nothing matched (the broker's ``503`` status);
* ``Unsubscribe(index)`` / ``Drain(index)``: of the ``index``-th ``Subscribe``; a drain keeps
  what the subscription buffered and hands it out before the subscription ends; repeating
  either is a no-op.

Three functions do the work:

* :func:`run_program` executes a program on connections from ``connect`` and returns
  normalised :class:`Observations` (deliveries per plain subscription, per queue group,
  request outcomes, and anomalies found without an oracle);
* :func:`predict` computes the observations the subject rules demand
  (``transports.subjects.matches`` plus the queue rule);
* :func:`compare` runs one program on several transports and raises
  :class:`RoutingDifference` (an ``AssertionError``) listing every difference from the
  prediction.

Typical use, on your own transport against a real server (``testing.NatsServer``)::

    @given(program=mst.routing_programs())
    async def test_routes_like_nats(program):
        await compare(program, {"mine": my_connect, "nats": nats_connect})

How runs stay deterministic is described in ``testing._differential_run`` (barriers by
sentinel messages, flushes before subscribing, per-run queue group suffixes; no sleeps, every
wait bounded by ``time_limit``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from transports.base import Transport
from transports.subjects import matches, validate_pattern, validate_queue, validate_subject

__all__ = [
    "ANSWERED",
    "NO_RESPONDERS",
    "Delivery",
    "Drain",
    "Observations",
    "Publish",
    "Request",
    "RoutingDifference",
    "RoutingProgram",
    "Step",
    "Subscribe",
    "Unsubscribe",
    "compare",
    "predict",
    "run_program",
]

ANSWERED = "answered"
"""Outcome of a ``Request`` that some subscription received (and the harness answered)."""

NO_RESPONDERS = "no responders"
"""Outcome of a ``Request`` that matched nothing: the broker sent the ``503`` status."""

Connect = Callable[[], Awaitable[Transport]]
"""``async connect() -> Transport``: a new connection to the broker under test."""


@dataclass(frozen=True)
class Subscribe:
    """Subscribe the subscriber connection to ``pattern`` (in queue group ``queue``)."""

    pattern: str
    queue: str | None = None


@dataclass(frozen=True)
class Publish:
    """Publish one message to ``subject`` from the publisher connection."""

    subject: str


@dataclass(frozen=True)
class Request:
    """Publish one message to ``subject`` with a reply subject; the first copy the
    subscriber receives is answered."""

    subject: str


@dataclass(frozen=True)
class Unsubscribe:
    """Unsubscribe the ``index``-th subscription (0-based, in ``Subscribe`` order)."""

    index: int


@dataclass(frozen=True)
class Drain:
    """Drain the ``index``-th subscription: interest stops, the buffer is still delivered."""

    index: int


Step = Subscribe | Publish | Request | Unsubscribe | Drain

Delivery = tuple[int, str]
"""One delivered message: (publish number, subject); ``Publish`` and ``Request`` steps are
numbered together from 0."""


@dataclass(frozen=True)
class RoutingProgram:
    """A validated sequence of routing steps.

    Raises ``ValueError`` (a ``BadSubjectError``/``BadQueueError`` for bad names) when a
    step is invalid or an ``Unsubscribe``/``Drain`` names a subscription not created before
    it.
    """

    steps: tuple[Step, ...]

    def __post_init__(self) -> None:
        subscribed = 0
        for position, step in enumerate(self.steps):
            if isinstance(step, Subscribe):
                validate_pattern(step.pattern)
                validate_queue(step.queue)
                subscribed += 1
            elif isinstance(step, (Publish, Request)):
                validate_subject(step.subject)
                if step.subject.startswith("_INBOX."):
                    raise ValueError(
                        f"step {position}: subject {step.subject!r} is reserved: subjects "
                        "starting with '_INBOX.' belong to the harness"
                    )
            elif not 0 <= step.index < subscribed:
                raise ValueError(
                    f"step {position}: {type(step).__name__}({step.index}) must name one of "
                    f"the {subscribed} subscriptions created before it"
                )

    @property
    def publishes(self) -> int:
        """How many messages the program publishes (``Publish`` and ``Request`` steps)."""
        return sum(isinstance(step, (Publish, Request)) for step in self.steps)


@dataclass(frozen=True)
class Observations:
    """Normalised result of a routing program.

    ``plain``: per plain subscription (its ``Subscribe`` index) the sorted deliveries.
    ``groups``: per queue group the sorted deliveries over all its members (a message
    delivered to two members appears twice).  ``replies``: per ``Request`` (its publish
    number) :data:`ANSWERED` or :data:`NO_RESPONDERS`.  ``anomalies``: violations found
    without an oracle (a subscription got a subject its pattern does not match, a duplicate,
    a publisher-order inversion, a payload/subject mix-up, a second reply); empty when all
    is well.
    """

    plain: dict[int, tuple[Delivery, ...]]
    groups: dict[str, tuple[Delivery, ...]]
    replies: dict[int, str] = field(default_factory=dict)
    anomalies: tuple[str, ...] = field(default=())

    def differences(self, other: Observations) -> list[str]:
        """Human-readable differences between ``self`` and ``other`` (empty when equal)."""
        found: list[str] = []
        for index in sorted(set(self.plain) | set(other.plain)):
            mine, theirs = self.plain.get(index), other.plain.get(index)
            if mine != theirs:
                found.append(f"plain subscription #{index}: {mine} != {theirs}")
        for name in sorted(set(self.groups) | set(other.groups)):
            mine, theirs = self.groups.get(name), other.groups.get(name)
            if mine != theirs:
                found.append(f"queue group {name!r}: {mine} != {theirs}")
        for number in sorted(set(self.replies) | set(other.replies)):
            mine_reply, theirs_reply = self.replies.get(number), other.replies.get(number)
            if mine_reply != theirs_reply:
                found.append(f"request {number}: {mine_reply!r} != {theirs_reply!r}")
        if self.anomalies != other.anomalies:
            found.append(f"anomalies: {self.anomalies} != {other.anomalies}")
        return found


class RoutingDifference(AssertionError):
    """:func:`compare` found transports that route differently from the prediction.

    ``observed`` maps each transport name to its observations, ``expected`` is the
    prediction, ``differences`` the readable list (also the message).
    """

    def __init__(
        self,
        program: RoutingProgram,
        expected: Observations,
        observed: dict[str, Observations],
        differences: list[str],
    ) -> None:
        super().__init__(
            f"{len(differences)} routing difference(s) for {program}:\n  "
            + "\n  ".join(differences)
        )
        self.program = program
        self.expected = expected
        self.observed = observed
        self.differences = differences


def predict(program: RoutingProgram) -> Observations:
    """The observations ``transports.subjects.matches`` and the queue rule demand."""
    subscriptions: list[Subscribe] = []
    active: set[int] = set()
    plain: dict[int, list[Delivery]] = {}
    groups: dict[str, list[Delivery]] = {}
    replies: dict[int, str] = {}
    number = 0
    for step in program.steps:
        if isinstance(step, Subscribe):
            active.add(len(subscriptions))
            if step.queue is None:
                plain[len(subscriptions)] = []
            else:
                groups.setdefault(step.queue, [])
            subscriptions.append(step)
        elif isinstance(step, (Unsubscribe, Drain)):
            active.discard(step.index)
        else:
            hit_groups: set[str] = set()
            hit = False
            for index in sorted(active):
                sub = subscriptions[index]
                if matches(sub.pattern, step.subject):
                    hit = True
                    if sub.queue is None:
                        plain[index].append((number, step.subject))
                    else:
                        hit_groups.add(sub.queue)
            for name in hit_groups:
                groups[name].append((number, step.subject))
            if isinstance(step, Request):
                replies[number] = ANSWERED if hit else NO_RESPONDERS
            number += 1
    return Observations(
        plain={index: tuple(sorted(got)) for index, got in plain.items()},
        groups={name: tuple(sorted(got)) for name, got in groups.items()},
        replies=replies,
    )


async def run_program(
    connect: Connect, program: RoutingProgram, *, time_limit: float = 10.0
) -> Observations:
    """Run ``program`` on two fresh connections from ``connect`` and observe the deliveries.

    Both connections are closed before returning.  Raises ``TimeoutError`` when the whole
    program takes longer than ``time_limit`` seconds (for example a lost barrier message),
    and whatever the transport raises.
    """
    from testing._differential_run import execute

    return await execute(connect, program, time_limit)


async def compare(
    program: RoutingProgram,
    connects: Mapping[str, Connect],
    *,
    time_limit: float = 10.0,
) -> dict[str, Observations]:
    """Run ``program`` on every transport in ``connects`` (name -> connect function, one
    after the other) and check each against :func:`predict`.

    Returns the observations by name.  Raises :class:`RoutingDifference` listing every
    difference (prefixed with the transport name) and every anomaly; ``ValueError`` when
    ``connects`` is empty.
    """
    if not connects:
        raise ValueError("compare() needs at least one transport in connects")
    expected = predict(program)
    observed: dict[str, Observations] = {}
    differences: list[str] = []
    for name, connect in connects.items():
        got = observed[name] = await run_program(connect, program, time_limit=time_limit)
        differences.extend(f"{name}: {d}" for d in got.differences(expected))
    if differences:
        raise RoutingDifference(program, expected, observed, differences)
    return observed
