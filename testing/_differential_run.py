"""How ``testing.differential.run_program`` executes a program deterministically on any broker.

Two connections: the *subscriber* holds every ``Subscribe`` plus a private barrier
subscription; the *publisher* publishes and requests, and holds a private reply-inbox
subscription (``<inbox>.<publish number>`` as reply subjects).

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

import anyio

from testing.differential import (
    ANSWERED,
    NO_RESPONDERS,
    Connect,
    Delivery,
    Drain,
    Observations,
    Publish,
    Request,
    RoutingProgram,
    Step,
    Subscribe,
)
from transports.base import Msg, Subscription, Transport
from transports.subjects import matches

__all__ = ["execute"]

_SENTINEL = b"--barrier--"

HARNESS_PREFIX = "_INBOX."
"""The harness's own subjects (barriers, reply inboxes) start with this; programs may not."""


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

    async def barrier(self) -> None:
        """Return once everything published so far is buffered at the subscriber."""
        self.barriers += 1
        token = b"%s%d" % (_SENTINEL, self.barriers)
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
        self.barriers += 1
        token = b"%s%d" % (_SENTINEL, self.barriers)
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
        if msg.subject.startswith(HARNESS_PREFIX):
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
        anomalies.extend(
            f"request {number} got no reply at all"
            for number in sorted(self.requests)
            if number not in self.replies
        )
        return Observations(
            plain=plain,
            groups={name: tuple(sorted(got)) for name, got in grouped.items()},
            replies=dict(sorted(self.replies.items())),
            anomalies=tuple(anomalies),
        )


def _duplicates(who: str, deliveries: tuple[Delivery, ...] | list[Delivery]) -> list[str]:
    counts = Counter(deliveries)
    return [f"{who} got {d} {n} times" for d, n in sorted(counts.items()) if n > 1]


async def execute(connect: Connect, program: RoutingProgram, time_limit: float) -> Observations:
    """See ``testing.differential.run_program``."""
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
