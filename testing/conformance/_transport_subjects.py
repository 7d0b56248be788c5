"""The transport conformance suite, part of ``TransportConformance``: subject, pattern and
queue-group rules (contract 3), wildcard and queue matching (contracts 3-4)."""

from __future__ import annotations

from functools import partial
from typing import Any, cast

import pytest

from transports.base import (
    BadSubjectError,
    Subscription,
)

from ._suite_base import WAIT, SuiteBase
from ._transport_support import (
    INVALID_PATTERNS,
    INVALID_SUBJECTS,
    SENTINEL,
    UNUSUAL_VALID_SUBJECTS,
    VALID_PATTERNS,
    WILDCARD_TABLE,
    WILDCARD_UNIVERSE,
    assert_rejected,
    collect_until_sentinel,
    connections,
    settle,
    take_pending,
)
from .backend import ConformanceBackend

__all__ = ["SubjectCases"]


class SubjectCases(SuiteBase):
    """Subject, pattern and queue-group rules (contract 3) and wildcard and queue matching
    (contracts 3-4)."""

    # ------------------------------------------------------------- contract 3: subject rules

    @pytest.mark.parametrize("subject", INVALID_SUBJECTS)
    async def test_publish_and_request_reject_an_invalid_subject(
        self, conformance_backend: ConformanceBackend, subject: str
    ) -> None:
        transport = await conformance_backend.connect()
        for attempt in (
            lambda: transport.publish(subject, b"x"),
            lambda: transport.request(subject, b"x", timeout=WAIT),
            lambda: transport.publish("ok.subject", b"x", reply=subject),
        ):
            await assert_rejected(attempt, BadSubjectError, subject=subject)

    @pytest.mark.parametrize("pattern", INVALID_PATTERNS)
    async def test_subscribe_rejects_an_invalid_pattern(
        self, conformance_backend: ConformanceBackend, pattern: str
    ) -> None:
        transport = await conformance_backend.connect()
        for queue in (None, "q"):
            subscribe = partial(transport.subscribe, pattern, queue=queue)
            await assert_rejected(subscribe, BadSubjectError, subject=pattern)

    @pytest.mark.parametrize("pattern", VALID_PATTERNS)
    async def test_subscribe_accepts_a_valid_pattern(
        self, conformance_backend: ConformanceBackend, pattern: str
    ) -> None:
        transport = await conformance_backend.connect()
        sub = await transport.subscribe(pattern)
        assert isinstance(sub, Subscription)
        assert sub.subject == pattern
        assert sub.queue is None
        assert sub.is_active

    @pytest.mark.parametrize("subject", UNUSUAL_VALID_SUBJECTS)
    async def test_unusual_valid_subjects_round_trip(
        self, conformance_backend: ConformanceBackend, subject: str
    ) -> None:
        subscriber, publisher = await connections(conformance_backend, 2)
        sub = await subscriber.subscribe(subject)
        await publisher.publish(subject, b"x")
        msg = await sub.next_msg(timeout=WAIT)
        assert (msg.subject, msg.data) == (subject, b"x")

    async def test_a_subject_that_is_not_a_str_is_rejected(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        transport = await conformance_backend.connect()
        with pytest.raises(BadSubjectError):
            await transport.publish(cast(Any, b"foo"), b"x")
        with pytest.raises(BadSubjectError):
            await transport.subscribe(cast(Any, b"foo"))

    # ---------------------------------------------------------------- contract 3/4: matching

    @pytest.mark.parametrize("pattern", list(WILDCARD_TABLE))
    async def test_wildcard_matching(
        self, conformance_backend: ConformanceBackend, pattern: str
    ) -> None:
        expected, sentinel_subject = WILDCARD_TABLE[pattern]
        subscriber, publisher = await connections(conformance_backend, 2)
        sub = await subscriber.subscribe(pattern)
        for subject in WILDCARD_UNIVERSE:
            await publisher.publish(subject, subject.encode())
        await publisher.publish(sentinel_subject, SENTINEL)
        got = await collect_until_sentinel(sub)
        assert [msg.subject for msg in got] == expected
        assert all(msg.data == msg.subject.encode() for msg in got)

    async def test_every_plain_subscriber_gets_a_copy(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        a, b, publisher = await connections(conformance_backend, 3)
        subs = [
            await a.subscribe("fan.x"),
            await a.subscribe("fan.x"),
            await b.subscribe("fan.*"),
            await publisher.subscribe("fan.>"),  # the publisher's own subscription, too
        ]
        await publisher.publish("fan.x", b"hello")
        await publisher.publish("fan.x", SENTINEL)
        for sub in subs:
            got = await collect_until_sentinel(sub)
            assert [(msg.subject, msg.data) for msg in got] == [("fan.x", b"hello")]

    async def test_exactly_one_member_of_each_queue_group_gets_each_message(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        a, b, publisher = await connections(conformance_backend, 3)
        groups = {
            "g1": [
                await a.subscribe("work.x", queue="g1"),
                await a.subscribe("work.x", queue="g1"),
                await b.subscribe("work.x", queue="g1"),
            ],
            "g2": [
                await a.subscribe("work.*", queue="g2"),
                await b.subscribe("work.*", queue="g2"),
            ],
        }
        plain = [await a.subscribe("work.x"), await b.subscribe("work.>")]
        count = 200
        for number in range(count):
            await publisher.publish("work.x", str(number).encode())
        await settle(publisher, a, b)
        for sub in plain:
            assert [int(msg.data) for msg in await take_pending(sub)] == list(range(count))
        for name, members in groups.items():
            assert all(member.queue == name for member in members)
            per_member = [[int(msg.data) for msg in await take_pending(m)] for m in members]
            received = sorted(number for got in per_member for number in got)
            assert received == list(range(count)), f"group {name}: each message exactly once"
            assert sum(1 for got in per_member if got) > 1, f"group {name} used one member only"
            assert all(got == sorted(got) for got in per_member)

    async def test_a_queue_group_is_one_group_across_patterns(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await connections(conformance_backend, 2)
        members = [
            await subscriber.subscribe("qp.x", queue="g"),
            await subscriber.subscribe("qp.*", queue="g"),
            await subscriber.subscribe("qp.>", queue="g"),
        ]
        for number in range(60):
            await publisher.publish("qp.x", str(number).encode())
        await settle(publisher, subscriber)
        received: list[int] = []
        for member in members:
            received.extend(int(msg.data) for msg in await take_pending(member))
        assert sorted(received) == list(range(60))
