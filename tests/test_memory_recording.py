"""``MemoryBroker.record()``: every published message, queryable by subject pattern.

Includes the bug it is for: a service that forgets to reply on one branch is found by
looking at the recorded traffic, without waiting for request timeouts.
"""

from __future__ import annotations

import json

import pytest

from micro import Client, Request, add_service
from micro.request import UnansweredRequestError
from transports.base import BadSubjectError
from transports.memory import MemoryBroker, RecordedMessage, Recording, Traffic

WAIT = 5.0

pytestmark = pytest.mark.anyio


async def test_records_everything_published_in_order(micro_broker: MemoryBroker) -> None:
    a = await micro_broker.connect(name="a")
    b = await micro_broker.connect(name="b")
    with micro_broker.record() as traffic:
        await a.publish("orders.new", b"1", headers={"K": "v"})
        await b.publish("orders.new", b"2", reply="answers.x")
        await a.publish("audit", b"3")  # nobody subscribed: still recorded
    await a.publish("orders.new", b"after")  # not recorded: the recording stopped
    assert isinstance(traffic, Recording)
    assert not traffic.active
    assert [(m.connection, m.subject, m.data) for m in traffic] == [
        (a, "orders.new", b"1"),
        (b, "orders.new", b"2"),
        (a, "audit", b"3"),
    ]
    first, second, _ = traffic
    assert first.headers == {"K": "v"}
    assert (first.reply, second.reply) == (None, "answers.x")
    assert second.is_request
    assert not first.is_request
    assert first.seq < second.seq
    assert second.msg.subject == "orders.new"
    assert "orders.new" in repr(first)


async def test_queries_chain_and_validate_patterns(micro_broker: MemoryBroker) -> None:
    conn = await micro_broker.connect()
    with micro_broker.record() as traffic:
        for subject in ("orders.new", "orders.eu.paid", "users.new", "orders"):
            await conn.publish(subject, subject.encode())
    assert traffic.matching("orders.>").subjects() == ["orders.new", "orders.eu.paid"]
    assert traffic.matching("*.new").payloads() == [b"orders.new", b"users.new"]
    assert traffic.excluding("orders.>").subjects() == ["users.new", "orders"]
    assert isinstance(traffic.matching(">"), Traffic)
    assert traffic.matching(">").from_connection(conn).subjects() == traffic.subjects()
    with pytest.raises(BadSubjectError):
        traffic.matching("orders.>.x")


async def test_discovery_and_replies_are_recorded_too(micro_broker: MemoryBroker) -> None:
    async def echo(request: Request) -> None:
        await request.respond(request.data())

    service = add_service(await micro_broker.connect(), "echo", "1.0.0")
    client = Client(await micro_broker.connect())
    async with service:
        await service.add_endpoint("echo", echo)
        with micro_broker.record() as traffic:
            await client.request("echo", b"hi")
            await client.ping("echo")
    [request] = traffic.matching("echo")
    [reply] = traffic.replies_to(request)
    assert reply.data == b"hi"
    assert reply.subject == request.reply
    assert traffic.matching("$SRV.PING.echo").requests()
    assert traffic.matching("_INBOX.>")  # the replies, PING answers included
    assert traffic.unanswered() == []


async def test_several_recordings_and_no_cost_after_stop(micro_broker: MemoryBroker) -> None:
    conn = await micro_broker.connect()
    outer = micro_broker.record()
    with micro_broker.record() as inner:
        await conn.publish("x", b"1")
    await conn.publish("x", b"2")
    outer.stop()
    outer.stop()  # idempotent
    assert [m.data for m in inner] == [b"1"]
    assert [m.data for m in outer] == [b"1", b"2"]
    assert micro_broker._router.interceptor is None  # the dispatch fast path is back
    assert "stopped" in repr(outer)


# ------------------------------------------------------------------ the bug it catches


async def create_order(request: Request) -> None:
    """A handler with a bug: the "duplicate order" branch forgets to reply."""
    order = request.json()
    if order["id"] in _SEEN:
        return  # BUG: should respond with an error (or the existing order)
    _SEEN.add(order["id"])
    await request.respond_json({"created": order["id"]})


_SEEN: set[int] = set()


async def test_recording_finds_the_branch_that_never_replies(micro_broker: MemoryBroker) -> None:
    _SEEN.clear()
    service = add_service(await micro_broker.connect(), "orders", "1.0.0")
    caller = await micro_broker.connect()
    async with service:
        await service.add_group("orders").add_endpoint("create", create_order)
        inbox = caller.new_inbox()
        replies = await caller.subscribe(inbox + ".*")
        with micro_broker.record() as traffic:
            # Fire the requests without waiting for each reply (no timeouts involved).
            for number, order_id in enumerate((1, 2, 1, 3)):
                await caller.publish(
                    "orders.create",
                    json.dumps({"id": order_id}).encode(),
                    reply=f"{inbox}.{number}",
                )
            # The strict broker names the mistake; the recording shows which request.
            with pytest.raises(UnansweredRequestError, match="endpoint 'create'"):
                await micro_broker.wait_idle(timeout=WAIT)
    unanswered = traffic.matching("orders.>").unanswered()
    assert [json.loads(m.data) for m in unanswered] == [{"id": 1}]
    assert unanswered[0].reply == f"{inbox}.2"  # the third request: the duplicate
    assert replies.pending_msgs == 3


def test_recorded_messages_are_frozen() -> None:
    broker = MemoryBroker()
    recording = broker.record()
    message = RecordedMessage(1, None, "a", b"", None, None)  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        message.subject = "b"  # type: ignore[misc]
    recording.stop()
