"""Fault rules of ``MemoryBroker``: drop, delay, duplicate, reorder, no-responders, slow consumer.

Each rule is shown acting on matching subjects only, honouring ``times`` and a seeded
``probability``, and going away without a trace.  The bug they are for: a client that retries
on timeout double-charges when the first reply is lost, and an at-least-once consumer without
de-duplication processes a redelivered message twice.
"""

from __future__ import annotations

import anyio
import pytest

from micro import Client, Request, ServiceError, add_service
from transports.base import (
    BadSubjectError,
    NoRespondersError,
    RequestTimeoutError,
    SlowConsumerError,
    TransportEvent,
    TransportEventKind,
)
from transports.memory import FaultRule, MemoryBroker, MemoryTransport

WAIT = 5.0

pytestmark = pytest.mark.anyio


async def _pair(broker: MemoryBroker) -> tuple[MemoryTransport, MemoryTransport]:
    return await broker.connect(name="subscriber"), await broker.connect(name="publisher")


async def _drain_pending(sub: object) -> list[bytes]:
    from transports.memory import MemorySubscription

    assert isinstance(sub, MemorySubscription)
    return [(await sub.next_msg(timeout=WAIT)).data for _ in range(sub.pending_msgs)]


async def test_drop_acts_on_matching_subjects_only_and_expires(micro_broker: MemoryBroker) -> None:
    subscriber, publisher = await _pair(micro_broker)
    sub = await subscriber.subscribe(">")
    rule = micro_broker.drop("orders.*", times=2)
    assert isinstance(rule, FaultRule)
    assert micro_broker.faults == [rule]
    for subject in ("orders.1", "users.1", "orders.2", "orders.3"):
        await publisher.publish(subject, subject.encode())
    assert await _drain_pending(sub) == [b"users.1", b"orders.3"]
    assert (rule.hits, rule.remaining, rule.active) == (2, 0, False)
    assert micro_broker.faults == []
    assert micro_broker._router.interceptor is None


async def test_a_dropped_request_times_out(micro_broker: MemoryBroker) -> None:
    responder, requester = await _pair(micro_broker)
    await responder.subscribe("svc")
    with micro_broker.drop("svc"), pytest.raises(RequestTimeoutError):
        await requester.request("svc", timeout=0.05)
    assert not micro_broker.faults


async def test_delay_lets_later_messages_overtake_and_wait_idle_waits(
    micro_broker: MemoryBroker,
) -> None:
    subscriber, publisher = await _pair(micro_broker)
    sub = await subscriber.subscribe("events.*")
    got: list[bytes] = []

    async def consume() -> None:
        async for msg in sub:
            got.append(msg.data)

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        with micro_broker.delay("events.slow", 0.05):
            await publisher.publish("events.slow", b"first")
            await publisher.publish("events.fast", b"second")
            await micro_broker.wait_idle(timeout=WAIT)
        assert got == [b"second", b"first"]
        tg.cancel_scope.cancel()


async def test_duplicate_delivers_copies_with_their_own_headers(
    micro_broker: MemoryBroker,
) -> None:
    subscriber, publisher = await _pair(micro_broker)
    sub = await subscriber.subscribe("jobs")
    with micro_broker.duplicate("jobs", copies=2, times=1):
        await publisher.publish("jobs", b"a", headers={"Id": "1"})
        await publisher.publish("jobs", b"b")
    got = [await sub.next_msg(timeout=WAIT) for _ in range(4)]
    assert [m.data for m in got] == [b"a", b"a", b"a", b"b"]
    assert len({id(m.headers) for m in got[:3]}) == 3
    assert all(m.headers == {"Id": "1"} for m in got[:3])


async def test_reorder_reverses_batches_and_removal_releases_the_rest(
    micro_broker: MemoryBroker,
) -> None:
    subscriber, publisher = await _pair(micro_broker)
    sub = await subscriber.subscribe("seq")
    rule = micro_broker.reorder("seq", count=3)
    for number in range(5):
        await publisher.publish("seq", str(number).encode())
    assert rule.held == 2
    assert await _drain_pending(sub) == [b"2", b"1", b"0"]
    rule.remove()
    assert await _drain_pending(sub) == [b"3", b"4"]


async def test_no_responders_is_forced_although_someone_listens(
    micro_broker: MemoryBroker,
) -> None:
    responder, requester = await _pair(micro_broker)
    sub = await responder.subscribe("svc")
    micro_broker.no_responders("svc", times=1)
    with anyio.fail_after(WAIT), pytest.raises(NoRespondersError):
        await requester.request("svc", timeout=WAIT)
    await requester.publish("svc", b"plain")  # the rule has expired
    assert (await sub.next_msg(timeout=WAIT)).data == b"plain"


async def test_slow_consumer_is_forced_and_reported(micro_broker: MemoryBroker) -> None:
    subscriber, publisher = await _pair(micro_broker)
    events: list[TransportEvent] = []
    subscriber.add_event_listener(events.append)
    sub = await subscriber.subscribe("feed")
    with micro_broker.slow_consumer("feed", times=2):
        for number in range(3):
            await publisher.publish("feed", str(number).encode())
    assert sub.dropped == 2
    assert await _drain_pending(sub) == [b"2"]
    await subscriber.flush()
    errors = [e.error for e in events if e.kind is TransportEventKind.ERROR]
    assert len(errors) == 2
    assert all(isinstance(e, SlowConsumerError) and e.subject == "feed" for e in errors)


async def test_a_slow_requester_loses_the_reply(micro_broker: MemoryBroker) -> None:
    responder, requester = await _pair(micro_broker)
    sub = await responder.subscribe("svc")

    async def answer() -> None:
        msg = await sub.next_msg(timeout=WAIT)
        assert msg.reply is not None
        await responder.publish(msg.reply, b"lost")

    with micro_broker.slow_consumer("_INBOX.>"):
        async with anyio.create_task_group() as tg:
            tg.start_soon(answer)
            with pytest.raises(RequestTimeoutError):
                await requester.request("svc", timeout=0.1)


async def _dropped_pattern(seed: int) -> list[bool]:
    broker = MemoryBroker(seed=seed)
    subscriber, publisher = await _pair(broker)
    sub = await subscriber.subscribe("x")
    broker.drop("x", probability=0.5)
    for number in range(40):
        await publisher.publish("x", str(number).encode())
    kept = {int(data) for data in await _drain_pending(sub)}
    await subscriber.close()
    await publisher.close()
    return [number not in kept for number in range(40)]


async def test_probabilistic_faults_replay_with_the_seed() -> None:
    first = await _dropped_pattern(5)
    assert first == await _dropped_pattern(5)
    assert 0 < sum(first) < 40
    assert first != await _dropped_pattern(6)


async def test_rules_combine_and_act_once_each(micro_broker: MemoryBroker) -> None:
    subscriber, publisher = await _pair(micro_broker)
    sub = await subscriber.subscribe("x")
    consumed: list[bytes] = []

    async def consume() -> None:
        async for msg in sub:
            consumed.append(msg.data)

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        micro_broker.delay("x", 0.01)
        micro_broker.duplicate("x")
        await publisher.publish("x", b"once")
        await micro_broker.wait_idle(timeout=WAIT)
        assert consumed == [b"once", b"once"]  # delayed, then duplicated (not 4 copies)
        micro_broker.clear_faults()
        assert micro_broker.faults == []
        tg.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda b: b.drop("a..b"), BadSubjectError),
        (lambda b: b.drop("a", times=0), ValueError),
        (lambda b: b.drop("a", probability=0), ValueError),
        (lambda b: b.drop("a", probability=1.5), ValueError),
        (lambda b: b.delay("a", -1), ValueError),
        (lambda b: b.duplicate("a", copies=0), ValueError),
        (lambda b: b.reorder("a", count=1), ValueError),
    ],
)
def test_bad_rule_arguments_are_rejected(call: object, error: type[Exception]) -> None:
    broker = MemoryBroker()
    with pytest.raises(error):
        call(broker)  # type: ignore[operator]
    assert broker.faults == []


# ------------------------------------------------------------------ the bugs they catch

_charges: list[str] = []


async def charge(request: Request) -> None:
    """A payment endpoint without idempotency: every request charges."""
    _charges.append(request.data().decode())
    await request.respond(b"charged")


async def charge_once(request: Request) -> None:
    """The fix: de-duplicate by the caller's idempotency key."""
    key = request.headers().get("Idempotency-Key")
    if not key:
        raise ServiceError(400, "Idempotency-Key is required")
    if key not in _charges:
        _charges.append(key)
    await request.respond(b"charged")


async def pay_with_retries(client: Client, order: str) -> bytes:
    """A caller that retries on timeout (as callers do), sending the same key each time."""
    for _ in range(3):
        try:
            reply = await client.request(
                "pay.charge", order.encode(), headers={"Idempotency-Key": order}, timeout=0.1
            )
        except TimeoutError:
            continue
        return reply.data
    raise AssertionError("no reply after 3 attempts")


@pytest.mark.parametrize(("handler", "charged"), [(charge, 2), (charge_once, 1)])
async def test_a_lost_reply_makes_a_retrying_caller_double_charge(
    micro_broker: MemoryBroker, handler: object, charged: int
) -> None:
    _charges.clear()
    service = add_service(await micro_broker.connect(), "pay", "1.0.0")
    client = Client(await micro_broker.connect())
    async with service:
        await service.add_group("pay").add_endpoint("charge", handler)  # type: ignore[arg-type]
        with micro_broker.drop("_INBOX.>", times=1):  # the first reply is lost
            assert await pay_with_retries(client, "order-7") == b"charged"
        await micro_broker.wait_idle(timeout=WAIT)
    assert len(_charges) == charged


@pytest.mark.parametrize(("handler", "charged"), [(charge, 2), (charge_once, 1)])
async def test_a_redelivered_request_is_processed_twice_without_dedup(
    micro_broker: MemoryBroker, handler: object, charged: int
) -> None:
    _charges.clear()
    service = add_service(await micro_broker.connect(), "pay", "1.0.0")
    client = Client(await micro_broker.connect())
    async with service:
        await service.add_group("pay").add_endpoint("charge", handler)  # type: ignore[arg-type]
        with micro_broker.duplicate("pay.charge", times=1):
            assert await pay_with_retries(client, "order-8") == b"charged"
        await micro_broker.wait_idle(timeout=WAIT)
    assert len(_charges) == charged
