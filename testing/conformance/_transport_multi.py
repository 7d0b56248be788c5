"""The transport conformance suite, part of ``TransportConformance``: the optional
``subscribe_many`` extension (``transports.extensions.MultiSubjectSubscriber``).

A transport that does not offer the extension skips these cases: implementing the protocol
is the declaration.  One that offers it must keep every promise below.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from transports.base import BadSubjectError, Transport
from transports.extensions import MultiSubjectSubscriber, MultiSubscription

from ._suite_base import WAIT, SuiteBase, assert_no_responders
from ._transport_support import (
    SENTINEL,
    collect_until_sentinel,
    connections,
    settle,
    take_pending,
)
from .backend import ConformanceBackend

__all__ = ["MultiSubjectCases"]

SUBJECTS = ("multi.a", "multi.b", "multi.c.d")


def _many(connection: Transport) -> MultiSubjectSubscriber:
    if not isinstance(connection, MultiSubjectSubscriber):
        pytest.skip("the transport does not offer subscribe_many (an optional extension)")
    return connection


class MultiSubjectCases(SuiteBase):
    """``subscribe_many``: one subscription, one buffer, several concrete subjects."""

    async def test_messages_of_every_subject_arrive_through_one_buffer_in_order(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await connections(conformance_backend, 2)
        sub = await _many(subscriber).subscribe_many(list(SUBJECTS))
        assert isinstance(sub, MultiSubscription)
        assert sub.subjects == SUBJECTS
        assert sub.subject == SUBJECTS[0]
        assert sub.queue is None
        sent = [(SUBJECTS[number % 3], str(number).encode()) for number in range(12)]
        for subject, data in sent:
            await publisher.publish(subject, data)
        await publisher.publish(SUBJECTS[1], SENTINEL)
        got = await collect_until_sentinel(sub)
        assert [(msg.subject, msg.data) for msg in got] == sent
        assert sub.delivered == 13
        await publisher.publish("multi.other", b"x")  # not subscribed: never delivered
        await publisher.publish(SUBJECTS[2], SENTINEL)
        assert await collect_until_sentinel(sub) == []

    async def test_each_subject_is_a_plain_interest_at_the_broker(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        responder, other, requester = await connections(conformance_backend, 3)
        sub = await _many(responder).subscribe_many(["many.req.1", "many.req.2"])
        plain = await other.subscribe("many.req.2")  # a plain subscriber gets its own copy

        async def answer() -> None:
            async for msg in sub:
                assert msg.reply is not None
                await responder.publish(msg.reply, b"re:" + msg.subject.encode())

        async with anyio.create_task_group() as group:
            group.start_soon(answer)
            with anyio.fail_after(WAIT):
                for subject in ("many.req.1", "many.req.2"):
                    reply = await requester.request(subject, timeout=WAIT)
                    assert reply.data == b"re:" + subject.encode()
                await assert_no_responders(requester, "many.req")
            await settle(requester, other)
            assert [msg.subject for msg in await take_pending(plain)] == ["many.req.2"]
            await sub.unsubscribe()
        await plain.unsubscribe()
        await assert_no_responders(requester, "many.req.1", "many.req.2")  # all left at once

    async def test_drain_keeps_what_is_buffered_then_ends(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await connections(conformance_backend, 2)
        sub = await _many(subscriber).subscribe_many(["drain.m.1", "drain.m.2"])
        for number in range(4):
            await publisher.publish(f"drain.m.{number % 2 + 1}", str(number).encode())
        await settle(publisher, subscriber)
        assert sub.pending_msgs == 4
        assert sub.pending_bytes == 4
        got: list[bytes] = []

        async def consume() -> None:
            async for msg in sub:
                got.append(msg.data)

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as group:
                group.start_soon(consume)
                await sub.drain()
        assert got == [b"0", b"1", b"2", b"3"]
        assert not sub.is_active
        await assert_no_responders(publisher, "drain.m.2")

    async def test_unsubscribe_limit_counts_every_subject_together(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await connections(conformance_backend, 2)
        sub = await _many(subscriber).subscribe_many(["limit.m.1", "limit.m.2"])
        await sub.unsubscribe(limit=3)
        for number in range(6):
            await publisher.publish(f"limit.m.{number % 2 + 1}", str(number).encode())
        with anyio.fail_after(WAIT):
            got = [msg.data async for msg in sub]
        assert got == [b"0", b"1", b"2"]
        assert not sub.is_active
        await assert_no_responders(publisher, "limit.m.1", "limit.m.2")  # none lingers

    async def test_closing_the_connection_ends_it(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        (subscriber,) = await connections(conformance_backend, 1)
        sub = await _many(subscriber).subscribe_many(["close.m.1", "close.m.2"])
        await subscriber.close()
        with anyio.fail_after(WAIT):
            assert [msg async for msg in sub] == []
        assert not sub.is_active

    @pytest.mark.parametrize(
        ("subjects", "error", "named"),
        [
            ([], ValueError, "[]"),
            ("multi.a", ValueError, "multi.a"),
            (["multi.a", "multi.*"], BadSubjectError, "multi.*"),
            (["multi.>"], BadSubjectError, "multi.>"),
            (["multi.a", "bad subject"], BadSubjectError, "bad subject"),
            (["multi..a"], BadSubjectError, "multi..a"),
            (["multi.a", "multi.b", "multi.a"], ValueError, "multi.a"),
        ],
    )
    async def test_bad_subjects_are_rejected_at_once_naming_the_value(
        self, conformance_backend: ConformanceBackend, subjects: Any, error: type, named: str
    ) -> None:
        (subscriber,) = await connections(conformance_backend, 1)
        many = _many(subscriber)
        with anyio.fail_after(WAIT), pytest.raises(error) as caught:
            await many.subscribe_many(subjects)
        assert named in str(caught.value)
