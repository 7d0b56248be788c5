"""Scatter/gather (``micro.discovery``) on the memory transport, asyncio and trio.

Timing proofs use generous bounds: a gathering that must stop early is given
``max_wait=5`` and must return in well under a second.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator

import anyio
import anyio.abc
import pytest

from micro.discovery import (
    DEFAULT_MAX_INTERVAL,
    DEFAULT_MAX_WAIT,
    Gathering,
    GatherLimits,
    request_many,
    request_many_iter,
)
from micro.request import Request
from micro.service import add_service
from testing.conformance._tapped_transport import TappedTransport
from transports.base import BadSubjectError, ConnectionClosedError, Msg, Subscription, Transport
from transports.memory import MemoryBroker, MemoryTransport

pytestmark = pytest.mark.anyio

LONG = 5.0
FAST = 1.0


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def broker() -> MemoryBroker:
    return MemoryBroker(seed=1)


@pytest.fixture
async def client(broker: MemoryBroker) -> AsyncIterator[MemoryTransport]:
    transport = await broker.connect()
    yield transport
    await transport.close()


async def _answer(sub: Subscription, transport: Transport, replies: list[bytes]) -> None:
    async for msg in sub:
        assert msg.reply is not None
        for data in replies:
            await transport.publish(msg.reply, data)


class Responders:
    """``count`` connections each answering every message on ``subject`` with ``replies``."""

    def __init__(self, broker: MemoryBroker, tg: anyio.abc.TaskGroup) -> None:
        self.broker = broker
        self.tg = tg
        self.transports: list[Transport] = []

    async def add(self, subject: str, replies: list[bytes], count: int = 1) -> None:
        for _ in range(count):
            transport = await self.broker.connect()
            self.transports.append(transport)
            sub = await transport.subscribe(subject)
            self.tg.start_soon(_answer, sub, transport, replies)

    async def aclose(self) -> None:
        for transport in self.transports:
            await transport.close()


@pytest.fixture
async def responders(broker: MemoryBroker) -> AsyncIterator[Responders]:
    async with anyio.create_task_group() as tg:
        group = Responders(broker, tg)
        yield group
        await group.aclose()


# --------------------------------------------------------------------------- limits


def test_default_limits_follow_protocol_11() -> None:
    limits = GatherLimits.of()
    assert limits == GatherLimits(DEFAULT_MAX_WAIT, None, DEFAULT_MAX_INTERVAL)
    assert (DEFAULT_MAX_WAIT, DEFAULT_MAX_INTERVAL) == (2.0, 0.3)


def test_a_count_without_an_interval_waits_for_the_count() -> None:
    assert GatherLimits.of(max_count=3) == GatherLimits(2.0, 3, None)
    assert GatherLimits.of(max_count=3, max_interval=0.1) == GatherLimits(2.0, 3, 0.1)


def test_an_infinite_interval_disables_the_inactivity_rule() -> None:
    assert GatherLimits.of(max_wait=1, max_interval=math.inf) == GatherLimits(1.0, None, None)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"max_wait": 0}, "max_wait"),
        ({"max_wait": -1}, "max_wait"),
        ({"max_wait": math.nan}, "max_wait"),
        ({"max_wait": math.inf}, "max_wait"),
        ({"max_wait": True}, "max_wait"),
        ({"max_wait": "1"}, "max_wait"),
        ({"max_count": 0}, "max_count"),
        ({"max_count": 1.5}, "max_count"),
        ({"max_count": True}, "max_count"),
        ({"max_interval": 0}, "max_interval"),
        ({"max_interval": -0.5}, "max_interval"),
    ],
)
def test_bad_limits_are_rejected_naming_the_value(options: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=named) as caught:
        GatherLimits.of(**options)  # type: ignore[arg-type]
    assert repr(next(iter(options.values()))) in str(caught.value)


# --------------------------------------------------------------------------- stop rules


async def test_max_count_returns_as_soon_as_the_nth_reply_arrives(
    client: Transport, responders: Responders
) -> None:
    await responders.add("svc.ping", [b"pong"], count=5)
    start = time.monotonic()
    replies = await request_many(client, "svc.ping", max_count=5, max_wait=LONG)
    elapsed = time.monotonic() - start
    assert [msg.data for msg in replies] == [b"pong"] * 5
    assert elapsed < FAST, f"took {elapsed:.3f} s although all 5 replies were in"


async def test_no_responders_returns_empty_at_once(client: Transport) -> None:
    gathering = request_many_iter(client, "nobody.home", max_wait=LONG)
    start = time.monotonic()
    assert await gathering.collect() == []
    assert time.monotonic() - start < FAST
    assert gathering.no_responders


async def test_inactivity_ends_the_gathering_after_the_last_reply(
    client: Transport, responders: Responders
) -> None:
    await responders.add("svc.ping", [b"a"], count=3)
    plain = TappedTransport(client)  # without ReplyGatherer: the rule ADR-32 gives
    start = time.monotonic()
    gathering = request_many_iter(plain, "svc.ping", max_wait=LONG, max_interval=0.1)
    replies = await gathering.collect()
    elapsed = time.monotonic() - start
    assert len(replies) == 3
    assert 0.1 <= elapsed < FAST
    assert not gathering.complete


async def test_the_memory_broker_ends_the_gathering_when_every_receiver_is_done(
    client: Transport, responders: Responders
) -> None:
    await responders.add("svc.ping", [b"a", b"b"], count=3)
    gathering = request_many_iter(client, "svc.ping", max_wait=LONG, max_interval=math.inf)
    replies = await gathering.collect()  # no stall rule, a long max_wait: only rule 5 ends it
    assert sorted(msg.data for msg in replies) == [b"a"] * 3 + [b"b"] * 3
    assert gathering.complete
    assert not gathering.no_responders


async def test_a_concurrent_endpoint_is_waited_for_until_its_handler_answered(
    broker: MemoryBroker,
) -> None:
    async def slow(request: Request) -> None:
        await anyio.sleep(0.05)  # the consumer comes back at once; the handler runs on
        await request.respond(b"slow")

    client = await broker.connect()
    service = add_service(await broker.connect(), "svc", "1.0.0")
    async with service:
        await service.add_endpoint("work", slow, max_concurrency=2)
        gathering = request_many_iter(client, "work", max_wait=LONG, max_interval=math.inf)
        assert [msg.data for msg in await gathering.collect()] == [b"slow"]
        assert gathering.complete


async def test_a_probe_read_with_next_msg_leaves_the_end_to_the_limits(
    broker: MemoryBroker,
) -> None:
    client = await broker.connect()
    probe_connection = await broker.connect()
    probe = await probe_connection.subscribe("svc.ping")

    async def answer_once() -> None:
        msg = await probe.next_msg(timeout=LONG)  # not a consumer loop: the broker cannot
        assert msg.reply is not None  # tell when it is done with the message
        await probe_connection.publish(msg.reply, b"probe")

    async with anyio.create_task_group() as tg:
        tg.start_soon(answer_once)
        gathering = request_many_iter(client, "svc.ping", max_wait=LONG, max_interval=0.05)
        assert [msg.data for msg in await gathering.collect()] == [b"probe"]
    assert not gathering.complete  # ended by the 0.05 s of silence


async def test_a_delayed_request_leaves_the_end_to_the_limits(
    client: Transport, responders: Responders, broker: MemoryBroker
) -> None:
    await responders.add("svc.ping", [b"a"], count=2)
    with broker.delay("svc.ping", 0.05):
        gathering = request_many_iter(client, "svc.ping", max_wait=LONG, max_interval=0.1)
        assert [msg.data for msg in await gathering.collect()] == [b"a", b"a"]
    assert not gathering.complete


async def test_a_silent_subscriber_makes_it_wait_for_max_wait(broker: MemoryBroker) -> None:
    client = await broker.connect()
    silent = await broker.connect()
    try:
        await silent.subscribe("svc.ping")  # subscribed, so no 503; never answers
        gathering = request_many_iter(client, "svc.ping", max_wait=0.2)
        start = time.monotonic()
        assert await gathering.collect() == []
        elapsed = time.monotonic() - start
        assert 0.2 <= elapsed < 0.2 + FAST
        assert not gathering.no_responders
    finally:
        await silent.close()
        await client.close()


async def test_the_first_reply_may_take_longer_than_the_inactivity_window(
    broker: MemoryBroker,
) -> None:
    client = await broker.connect()
    late = await broker.connect()
    sub = await late.subscribe("svc.ping")

    async def answer_late() -> None:
        msg = await sub.next_msg(timeout=LONG)
        await anyio.sleep(0.2)  # simulated latency, longer than the 0.05 s window
        assert msg.reply is not None
        await late.publish(msg.reply, b"late")

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(answer_late)
            replies = await request_many(client, "svc.ping", max_wait=LONG, max_interval=0.05)
        assert [msg.data for msg in replies] == [b"late"]
    finally:
        await late.close()
        await client.close()


async def test_replies_keep_arrival_order(client: Transport, responders: Responders) -> None:
    expected = [str(i).encode() for i in range(20)]
    await responders.add("svc.seq", expected)
    replies = await request_many(client, "svc.seq", max_count=20, max_wait=LONG)
    assert [msg.data for msg in replies] == expected


async def test_request_data_and_headers_reach_the_responders(broker: MemoryBroker) -> None:
    client = await broker.connect()
    seen: list[Msg] = []
    responder = await broker.connect()
    sub = await responder.subscribe("svc.echo")

    async def echo_once() -> None:
        msg = await sub.next_msg(timeout=LONG)
        seen.append(msg)
        assert msg.reply is not None
        await responder.publish(msg.reply, msg.data)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(echo_once)
            replies = await request_many(
                client, "svc.echo", b"payload", headers={"k": "v"}, max_count=1, max_wait=LONG
            )
        assert [msg.data for msg in replies] == [b"payload"]
        assert seen[0].headers == {"k": "v"}
    finally:
        await responder.close()
        await client.close()


# --------------------------------------------------------------------------- parsing


async def test_rejected_replies_are_skipped_logged_and_not_counted(
    client: Transport, responders: Responders, caplog: pytest.LogCaptureFixture
) -> None:
    await responders.add("svc.mixed", [b"bad", b"ok-1", b"bad", b"ok-2"])

    def parse(msg: Msg) -> bytes:
        if msg.data == b"bad":
            raise ValueError("junk")
        return msg.data

    gathering = Gathering(
        client, "svc.mixed", limits=GatherLimits.of(max_wait=LONG, max_count=2), parse=parse
    )
    with caplog.at_level(logging.WARNING, logger="micro.discovery"):
        assert await gathering.collect() == [b"ok-1", b"ok-2"]
    skipped = [r for r in caplog.records if "skipped a reply to svc.mixed" in r.getMessage()]
    assert len(skipped) == 2
    assert "junk" in skipped[0].getMessage()


# --------------------------------------------------------------------------- resources


async def test_the_inbox_is_removed_when_the_iteration_ends(
    broker: MemoryBroker, client: Transport, responders: Responders
) -> None:
    await responders.add("svc.ping", [b"x"], count=3)
    baseline = broker.subscription_count
    async with request_many_iter(client, "svc.ping", max_wait=LONG) as replies:
        assert broker.subscription_count == baseline + 1
        async for _ in replies:
            break  # leave early
    assert broker.subscription_count == baseline
    assert await request_many(client, "svc.ping", max_count=3) != []
    assert broker.subscription_count == baseline


async def test_cancellation_removes_the_inbox(broker: MemoryBroker) -> None:
    client = await broker.connect()
    silent = await broker.connect()
    try:
        await silent.subscribe("svc.ping")
        baseline = broker.subscription_count
        with anyio.move_on_after(0.05) as scope:
            await request_many(client, "svc.ping", max_wait=LONG)
        assert scope.cancelled_caught
        assert broker.subscription_count == baseline
    finally:
        await silent.close()
        await client.close()


async def test_a_bad_subject_raises_and_leaves_nothing_behind(
    broker: MemoryBroker, client: Transport
) -> None:
    baseline = broker.subscription_count
    with pytest.raises(BadSubjectError, match=r"a\.\.b"):
        await request_many(client, "a..b")
    assert broker.subscription_count == baseline


async def test_closing_the_connection_while_gathering_raises(broker: MemoryBroker) -> None:
    client = await broker.connect()
    silent = await broker.connect()
    try:
        sub = await silent.subscribe("svc.ping")

        async def close_when_asked() -> None:
            await sub.next_msg(timeout=LONG)
            await client.close()

        async with anyio.create_task_group() as tg:
            tg.start_soon(close_when_asked)
            with pytest.raises(ConnectionClosedError, match=r"svc\.ping"):
                await request_many(client, "svc.ping", max_wait=LONG)
    finally:
        await silent.close()
