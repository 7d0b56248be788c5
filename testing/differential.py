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

How :func:`run_program` stays deterministic on any broker: two connections, the
*subscriber* (every ``Subscribe`` plus a private barrier subscription) and the *publisher*
(publishes and requests, plus a private reply-inbox subscription; ``<inbox>.<publish
number>`` are the reply subjects).

* Barrier: before every ``Unsubscribe``/``Drain`` that follows publishes, and at the end,
  the publisher publishes a sentinel to the subscriber's barrier subject; once it arrives,
  every message published before it is buffered in the subscriptions (messages from one
  publisher reach one connection in publish order), so buffers are emptied by reading
  exactly ``pending_msgs`` messages each.
* Requests: the subscriber answers the first copy of each request it reads, then publishes
  a sentinel to the publisher's reply inbox; once that arrives, every answer -- and every
  ``503`` no-responders status, which the broker sent when it routed the request, before
  the barrier -- is in the publisher's reply subscription.
* Publishing is asynchronous: before a ``Subscribe`` that follows publishes the publisher
  flushes, so earlier messages are routed before the new subscription exists.
* A ``Drain`` first waits for the barrier *without* reading, then drains while reading the
  subscription to its end: what it buffered must still be handed out.
* Queue group names get a per-run suffix, so members left behind by earlier runs on a
  shared server (connections the server has not reaped yet) cannot take this run's
  messages; observations use the names as written.

No sleeps: every wait is bounded by the run's ``time_limit``.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from transports.base import Msg, Subscription, Transport
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

_HARNESS_PREFIX = "_INBOX."
"""The harness's own subjects (barriers, reply inboxes) start with this; programs may not."""

_SENTINEL = b"--barrier--"


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
                if step.subject.startswith(_HARNESS_PREFIX):
                    raise ValueError(
                        f"step {position}: subject {step.subject!r} is reserved: subjects "
                        f"starting with {_HARNESS_PREFIX!r} belong to the harness"
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
        sections: tuple[tuple[str, Mapping[Any, object], Mapping[Any, object]], ...] = (
            ("plain subscription #{}", self.plain, other.plain),
            ("queue group {!r}", self.groups, other.groups),
            ("request {}", self.replies, other.replies),
        )
        for label, mine, theirs in sections:
            for key in sorted(set(mine) | set(theirs)):
                if mine.get(key) != theirs.get(key):
                    found.append(f"{label.format(key)}: {mine.get(key)!r} != {theirs.get(key)!r}")
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
    """The observations ``transports.subjects.matches`` and the queue rule demand: each
    message reaches every matching plain subscription and one member of every queue group
    with a matching member."""
    specs: list[Subscribe] = []
    received: list[list[Delivery]] = []
    active: set[int] = set()
    replies: dict[int, str] = {}
    number = 0
    for step in program.steps:
        if isinstance(step, Subscribe):
            active.add(len(specs))
            specs.append(step)
            received.append([])
        elif isinstance(step, (Unsubscribe, Drain)):
            active.discard(step.index)
        else:
            hits = [
                index for index in sorted(active) if matches(specs[index].pattern, step.subject)
            ]
            served: set[str] = set()  # the queue groups one member of which got the message
            for index in hits:
                queue = specs[index].queue
                if queue not in served:
                    received[index].append((number, step.subject))
                if queue is not None:
                    served.add(queue)
            if isinstance(step, Request):
                replies[number] = ANSWERED if hits else NO_RESPONDERS
            number += 1
    return _observed(specs, received, set(replies), replies, [])


def _observed(
    specs: list[Subscribe],
    received: list[list[Delivery]],
    requests: set[int],
    replies: dict[int, str],
    anomalies: list[str],
) -> Observations:
    """Normalise the deliveries of each subscription (``received``, in ``specs`` order):
    plain subscriptions by index, queue groups by name with their members together, all
    sorted.  Duplicated deliveries and ``requests`` without a reply join ``anomalies``."""
    plain: dict[int, tuple[Delivery, ...]] = {}
    grouped: dict[str, list[Delivery]] = {}
    for index, spec in enumerate(specs):
        if spec.queue is None:
            plain[index] = tuple(sorted(received[index]))
        else:
            grouped.setdefault(spec.queue, []).extend(received[index])
    found = list(anomalies)
    for index, got in plain.items():
        found.extend(_duplicates(f"#{index}", got))
    for name, members_got in grouped.items():
        found.extend(_duplicates(f"queue group {name!r}", members_got))
    found.extend(
        f"request {number} got no reply at all"
        for number in sorted(requests)
        if number not in replies
    )
    return Observations(
        plain=plain,
        groups={name: tuple(sorted(got)) for name, got in grouped.items()},
        replies=dict(sorted(replies.items())),
        anomalies=tuple(found),
    )


def _duplicates(who: str, deliveries: tuple[Delivery, ...] | list[Delivery]) -> list[str]:
    counts = Counter(deliveries)
    return [f"{who} got {d} {n} times" for d, n in sorted(counts.items()) if n > 1]


async def run_program(
    connect: Connect, program: RoutingProgram, *, time_limit: float = 10.0
) -> Observations:
    """Run ``program`` on two fresh connections from ``connect`` and observe the deliveries.

    Both connections are closed before returning.  Raises ``TimeoutError`` when the whole
    program takes longer than ``time_limit`` seconds (for example a lost barrier message),
    and whatever the transport raises.  How the run stays deterministic: see the module
    docstring.
    """
    subscriber = await connect()
    try:
        publisher = await connect()
        try:
            with anyio.fail_after(time_limit):
                barrier_sub = await subscriber.subscribe(subscriber.new_inbox())
                reply_prefix = publisher.new_inbox()
                reply_sub = await publisher.subscribe(reply_prefix + ".*")
                run = _Run(subscriber, publisher, barrier_sub, reply_sub, reply_prefix, time_limit)
                for step in program.steps:
                    await run.step(step)
                await run.collect()
            return run.observations()
        finally:
            await publisher.close()
    finally:
        await subscriber.close()


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


class _Run:
    """State of one execution of a program."""

    def __init__(
        self,
        subscriber: Transport,
        publisher: Transport,
        barrier_sub: Subscription,
        reply_sub: Subscription,
        reply_prefix: str,
        timeout: float,
    ) -> None:
        self.subscriber = subscriber
        self.publisher = publisher
        self.timeout = timeout
        self.specs: list[Subscribe] = []
        self.subs: list[Subscription] = []
        self.received: list[list[Delivery]] = []
        self.published: list[str] = []
        self.requests: set[int] = set()
        self.replies: dict[int, str] = {}
        self.to_answer: list[Msg] = []
        self.answered: set[int] = set()
        self.anomalies: list[str] = []
        self.queue_suffix = "-" + uuid.uuid4().hex[:12]
        self.barrier_sub = barrier_sub
        self.reply_sub = reply_sub
        self.reply_prefix = reply_prefix
        self.barriers = 0
        self.unread = False  # published since everything was last read
        self.unbarriered = False  # published since the last barrier
        self.unflushed = False  # published since the last flush or barrier

    async def step(self, step: Step) -> None:
        if isinstance(step, Subscribe):
            if self.unflushed:
                await self.publisher.flush(self.timeout)
                self.unflushed = False
            self.specs.append(step)
            queue = None if step.queue is None else step.queue + self.queue_suffix
            self.subs.append(await self.subscriber.subscribe(step.pattern, queue=queue))
            self.received.append([])
        elif isinstance(step, (Publish, Request)):
            number = len(self.published)
            self.published.append(step.subject)
            if isinstance(step, Request):
                self.requests.add(number)
                reply = f"{self.reply_prefix}.{number}"
                await self.publisher.publish(step.subject, str(number).encode(), reply=reply)
            else:
                await self.publisher.publish(step.subject, str(number).encode())
            self.unread = self.unbarriered = self.unflushed = True
        elif isinstance(step, Drain):
            await self.drain(step.index)
        else:
            if self.unread:
                await self.collect()
            await self.subs[step.index].unsubscribe()

    def next_token(self) -> bytes:
        """A sentinel payload no earlier barrier of this run used."""
        self.barriers += 1
        return b"%s%d" % (_SENTINEL, self.barriers)

    async def barrier(self) -> None:
        """Return once everything published so far is buffered at the subscriber."""
        token = self.next_token()
        await self.publisher.publish(self.barrier_sub.subject, token)
        while (await self.barrier_sub.next_msg(timeout=self.timeout)).data != token:
            pass
        self.unbarriered = self.unflushed = False

    async def collect(self) -> None:
        """Barrier, then move everything buffered into ``received`` and settle requests."""
        await self.barrier()
        for index, sub in enumerate(self.subs):
            for _ in range(sub.pending_msgs):
                self.record(index, await sub.next_msg(timeout=self.timeout))
        self.unread = False
        await self.settle_requests()

    async def drain(self, index: int) -> None:
        sub = self.subs[index]
        if self.unbarriered:
            await self.barrier()  # buffered, and left unread: the drain must deliver it
        async with anyio.create_task_group() as tg:
            tg.start_soon(sub.drain)
            async for msg in sub:
                self.record(index, msg)
        await self.settle_requests()

    async def settle_requests(self) -> None:
        """Answer the requests read so far, then collect every reply and 503 status."""
        if not self.requests.difference(self.replies):
            return
        for msg in self.to_answer:
            assert msg.reply is not None
            await self.subscriber.publish(msg.reply, b"answer:" + msg.data)
        self.to_answer.clear()
        token = self.next_token()
        await self.subscriber.publish(f"{self.reply_prefix}.barrier", token)
        while True:
            msg = await self.reply_sub.next_msg(timeout=self.timeout)
            if msg.data == token:
                break
            self.record_reply(msg)

    def record_reply(self, msg: Msg) -> None:
        try:
            number = int(msg.subject.rsplit(".", 1)[1])
        except ValueError:
            self.anomalies.append(f"a reply on an unexpected subject: {msg!r}")
            return
        outcome = NO_RESPONDERS if msg.is_no_responders else ANSWERED
        if number not in self.requests:
            self.anomalies.append(f"a reply to publish {number}, which was no request: {msg!r}")
        elif number in self.replies:
            self.anomalies.append(f"request {number} got a second reply: {msg!r}")
        elif outcome == ANSWERED and msg.data != b"answer:%d" % number:
            self.anomalies.append(f"request {number} got the wrong answer: {msg!r}")
        else:
            self.replies[number] = outcome

    def record(self, index: int, msg: Msg) -> None:
        if msg.subject.startswith(_HARNESS_PREFIX):
            return  # the harness's own barriers and answers, caught by a wide pattern
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
        if (msg.reply is not None) != (number in self.requests):
            self.anomalies.append(f"#{index} got publish {number} with reply {msg.reply!r}")
        elif msg.reply is not None and number not in self.answered:
            self.answered.add(number)
            self.to_answer.append(msg)
        got = self.received[index]
        if got and got[-1][0] >= number:
            self.anomalies.append(f"#{index} got publish {number} after publish {got[-1][0]}")
        got.append((number, msg.subject))

    def observations(self) -> Observations:
        return _observed(self.specs, self.received, self.requests, self.replies, self.anomalies)
