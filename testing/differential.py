"""Differential routing harness: run one routing program on any transport, observe, normalise.

A :class:`RoutingProgram` is a list of steps: ``Subscribe(pattern, queue)`` (all on one
*subscriber* connection), ``Publish(subject)`` (all from one *publisher* connection) and
``Unsubscribe(index)`` (of the ``index``-th ``Subscribe``; repeating it must be a no-op).
:func:`run_program` executes it on fresh connections from ``connect`` and returns
:class:`Observations`; :func:`predict` computes the observations the subject rules demand
(``transports.subjects.matches``), so one program can be compared across the memory broker,
a real nats-server and the oracle.

Barrier: the subscriber connection also subscribes to a private sentinel subject.  Before
every unsubscribe and at the end, the publisher publishes the sentinel; once it arrives, every
message published before it is already buffered in the subscriptions (messages from one
publisher reach one connection in publish order), so the buffers are emptied by reading
exactly ``pending_msgs`` messages each.  Publishing is asynchronous, so before a ``Subscribe``
that follows publishes the publisher flushes: the earlier messages are routed before the new
subscription exists, as the oracle assumes.  Queue group names get a per-run suffix, so members
left behind by earlier runs on a shared server (closed connections the server has not reaped
yet) cannot take this run's messages; observations use the names as written.  No sleeps:
every wait is bounded by ``time_limit``.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from transports.base import Msg, Subscription, Transport
from transports.subjects import matches, validate_pattern, validate_queue, validate_subject

__all__ = [
    "Delivery",
    "Observations",
    "Publish",
    "RoutingProgram",
    "Step",
    "Subscribe",
    "Unsubscribe",
    "predict",
    "run_program",
]


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
class Unsubscribe:
    """Unsubscribe the ``index``-th subscription (0-based, in ``Subscribe`` order)."""

    index: int


Step = Subscribe | Publish | Unsubscribe

Delivery = tuple[int, str]
"""One delivered message: (publish number, subject), publish numbers counting from 0."""


@dataclass(frozen=True)
class RoutingProgram:
    """A validated sequence of routing steps.

    Raises ``ValueError`` (a ``BadSubjectError``/``BadQueueError`` for bad names) when a
    step is invalid or an ``Unsubscribe`` names a subscription not created before it.
    """

    steps: tuple[Step, ...]

    def __post_init__(self) -> None:
        subscribed = 0
        for position, step in enumerate(self.steps):
            if isinstance(step, Subscribe):
                validate_pattern(step.pattern)
                validate_queue(step.queue)
                subscribed += 1
            elif isinstance(step, Publish):
                validate_subject(step.subject)
            elif not 0 <= step.index < subscribed:
                raise ValueError(
                    f"step {position}: Unsubscribe({step.index}) must name one of the "
                    f"{subscribed} subscriptions created before it"
                )


@dataclass(frozen=True)
class Observations:
    """Normalised result of a routing program.

    ``plain``: per plain subscription (its ``Subscribe`` index) the sorted deliveries.
    ``groups``: per queue group the sorted deliveries over all its members (a message
    delivered to two members appears twice).  ``anomalies``: violations found without an
    oracle (a subscription got a subject its pattern does not match, a duplicate, a
    publisher-order inversion, a payload/subject mix-up); empty when all is well.
    """

    plain: dict[int, tuple[Delivery, ...]]
    groups: dict[str, tuple[Delivery, ...]]
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
        if self.anomalies != other.anomalies:
            found.append(f"anomalies: {self.anomalies} != {other.anomalies}")
        return found


def predict(program: RoutingProgram) -> Observations:
    """The observations ``transports.subjects.matches`` and the queue rule demand."""
    subscriptions: list[Subscribe] = []
    active: set[int] = set()
    plain: dict[int, list[Delivery]] = {}
    groups: dict[str, list[Delivery]] = {}
    number = 0
    for step in program.steps:
        if isinstance(step, Subscribe):
            active.add(len(subscriptions))
            if step.queue is None:
                plain[len(subscriptions)] = []
            else:
                groups.setdefault(step.queue, [])
            subscriptions.append(step)
        elif isinstance(step, Unsubscribe):
            active.discard(step.index)
        else:
            hit_groups: set[str] = set()
            for index in sorted(active):
                sub = subscriptions[index]
                if matches(sub.pattern, step.subject):
                    if sub.queue is None:
                        plain[index].append((number, step.subject))
                    else:
                        hit_groups.add(sub.queue)
            for name in hit_groups:
                groups[name].append((number, step.subject))
            number += 1
    return Observations(
        plain={index: tuple(sorted(got)) for index, got in plain.items()},
        groups={name: tuple(sorted(got)) for name, got in groups.items()},
    )


class _Run:
    """State of one execution of a program (see :func:`run_program`)."""

    def __init__(
        self,
        subscriber: Transport,
        publisher: Transport,
        barrier_sub: Subscription,
        timeout: float,
    ) -> None:
        self.subscriber = subscriber
        self.publisher = publisher
        self.timeout = timeout
        self.specs: list[Subscribe] = []
        self.subs: list[Subscription] = []
        self.received: list[list[Delivery]] = []
        self.published: list[str] = []
        self.anomalies: list[str] = []
        self.queue_suffix = "-" + uuid.uuid4().hex[:12]
        self.barrier_sub = barrier_sub
        self.barrier_subject = barrier_sub.subject
        self.barriers = 0
        self.unread_publishes = False
        self.unflushed_publishes = False

    async def step(self, step: Step) -> None:
        if isinstance(step, Subscribe):
            if self.unflushed_publishes:
                # Publishing is asynchronous: only a flush makes earlier publishes reach the
                # broker before this subscription exists (as the oracle assumes).
                await self.publisher.flush(self.timeout)
                self.unflushed_publishes = False
            self.specs.append(step)
            queue = None if step.queue is None else step.queue + self.queue_suffix
            self.subs.append(await self.subscriber.subscribe(step.pattern, queue=queue))
            self.received.append([])
        elif isinstance(step, Publish):
            number = len(self.published)
            self.published.append(step.subject)
            await self.publisher.publish(step.subject, str(number).encode())
            self.unread_publishes = self.unflushed_publishes = True
        else:
            if self.unread_publishes:
                await self.collect()
            await self.subs[step.index].unsubscribe()

    async def collect(self) -> None:
        """Barrier, then move everything buffered into ``received``."""
        self.barriers += 1
        token = str(self.barriers).encode()
        await self.publisher.publish(self.barrier_subject, token)
        while True:
            msg = await self.barrier_sub.next_msg(timeout=self.timeout)
            if msg.data == token:
                break
        for index, sub in enumerate(self.subs):
            for _ in range(sub.pending_msgs):
                self.record(index, await sub.next_msg(timeout=self.timeout))
        self.unread_publishes = self.unflushed_publishes = False

    def record(self, index: int, msg: Msg) -> None:
        if msg.subject == self.barrier_subject:
            return
        spec = self.specs[index]
        try:
            number = int(msg.data)
            expected_subject = self.published[number]
        except (ValueError, IndexError):
            self.anomalies.append(f"#{index} got an unknown message {msg!r}")
            return
        if msg.subject != expected_subject:
            self.anomalies.append(
                f"#{index} got publish {number} on {msg.subject!r}, published to "
                f"{expected_subject!r}"
            )
        if not matches(spec.pattern, msg.subject):
            self.anomalies.append(
                f"#{index} ({spec.pattern!r}) got {msg.subject!r}, which it does not match"
            )
        got = self.received[index]
        if got and got[-1][0] >= number:
            self.anomalies.append(f"#{index} got publish {number} after publish {got[-1][0]}")
        got.append((number, msg.subject))

    def observations(self) -> Observations:
        plain: dict[int, tuple[Delivery, ...]] = {}
        grouped: dict[str, list[Delivery]] = {}
        for index, spec in enumerate(self.specs):
            if spec.queue is None:
                plain[index] = tuple(sorted(self.received[index]))
            else:
                grouped.setdefault(spec.queue, []).extend(self.received[index])
        anomalies = list(self.anomalies)
        for index, got in plain.items():
            anomalies.extend(_duplicates(f"#{index}", got))
        for name, members_got in grouped.items():
            anomalies.extend(_duplicates(f"queue group {name!r}", members_got))
        return Observations(
            plain=plain,
            groups={name: tuple(sorted(got)) for name, got in grouped.items()},
            anomalies=tuple(anomalies),
        )


def _duplicates(who: str, deliveries: tuple[Delivery, ...] | list[Delivery]) -> list[str]:
    counts = Counter(deliveries)
    return [f"{who} got {d} {n} times" for d, n in sorted(counts.items()) if n > 1]


async def run_program(
    connect: Callable[[], Awaitable[Transport]],
    program: RoutingProgram,
    *,
    time_limit: float = 10.0,
) -> Observations:
    """Run ``program`` on two fresh connections from ``connect`` and observe the deliveries.

    Both connections are closed before returning.  Raises ``TimeoutError`` when the whole
    program takes longer than ``time_limit`` seconds (for example a lost barrier message),
    and whatever the transport raises.
    """
    subscriber = await connect()
    try:
        publisher = await connect()
        try:
            with anyio.fail_after(time_limit):
                barrier_sub = await subscriber.subscribe(subscriber.new_inbox())
                run = _Run(subscriber, publisher, barrier_sub, time_limit)
                for step in program.steps:
                    await run.step(step)
                await run.collect()
            return run.observations()
        finally:
            await publisher.close()
    finally:
        await subscriber.close()
