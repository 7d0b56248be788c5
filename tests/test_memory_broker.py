"""Memory-broker specifics (the shared transport conformance suite covers the protocol).

Named brokers and URLs, seeded queue choice, configurable ``max_payload``, asynchronous
delivery, nats-server's no-responders rule, header normalisation as nats-py writes
headers, and the fast paths staying exact.  Lifecycle details: ``test_memory_lifecycle``.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

import transports
from transports.base import BadHeaderError, MaxPayloadError, Msg, NoRespondersError
from transports.memory import (
    MemoryBroker,
    MemorySubscription,
    MemoryTransport,
    NotModelledError,
    connect_url,
    get_broker,
)
from transports.urls import redact_url

WAIT = 5.0  # upper bound for anything that should happen at once

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def broker() -> AsyncIterator[MemoryBroker]:
    broker = MemoryBroker(seed=7)
    yield broker
    for connection in broker.connections:
        await connection.close()


# ---------------------------------------------------------------------- named brokers, URLs


async def test_get_broker_returns_one_broker_per_name() -> None:
    assert get_broker() is get_broker("")
    assert get_broker("test-memory-a") is get_broker("test-memory-a")
    assert get_broker("test-memory-a") is not get_broker("test-memory-b")
    assert get_broker("test-memory-a") is not get_broker()
    with pytest.raises(ValueError, match="42"):
        get_broker(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "name"),
    [("memory://", ""), ("memory:///", ""), ("MEMORY://test-url", "test-url")],
)
async def test_connect_url_picks_the_named_broker(url: str, name: str) -> None:
    connection = await connect_url(url, name="client-1")
    try:
        assert connection.broker is get_broker(name)
        assert connection.name == "client-1"
        assert connection in get_broker(name).connections
    finally:
        await connection.close()
    assert connection not in get_broker(name).connections


async def test_transports_connect_reaches_the_memory_broker_by_url() -> None:
    first = await transports.connect("memory://test-shared")
    second = await transports.connect("memory://test-shared")
    try:
        assert isinstance(first, MemoryTransport)
        sub = await second.subscribe("shared.x")
        await first.publish("shared.x", b"hi")
        assert (await sub.next_msg(timeout=WAIT)).data == b"hi"
    finally:
        await first.close()
        await second.close()


@pytest.mark.parametrize(
    "url", ["nats://x", "memory://a/b", "memory://a?x=1", "memory://a#f", "memory://u@h", "memo"]
)
async def test_connect_url_rejects_other_urls_naming_them(url: str) -> None:
    with pytest.raises(ValueError, match="invalid memory URL") as caught:
        await connect_url(url)
    assert repr(redact_url(url)) in str(caught.value)  # named, credentials hidden


async def test_broker_options_are_validated() -> None:
    with pytest.raises(ValueError, match="max_payload 0"):
        MemoryBroker(max_payload=0)
    with pytest.raises(ValueError, match="seed or rng"):
        MemoryBroker(seed=1, rng=random.Random(1))
    with pytest.raises(ValueError, match="drain_timeout -1"):
        await MemoryBroker().connect(drain_timeout=-1)
    with pytest.raises(ValueError, match="connection name 3"):
        await MemoryBroker().connect(name=3)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- routing specifics


async def _queue_choices(broker: MemoryBroker, messages: int = 40) -> list[int]:
    """Publish to a 3-member queue group; return which member got each message."""
    members_conn = await broker.connect()
    publisher = await broker.connect()
    members = [await members_conn.subscribe("work", queue="q") for _ in range(3)]
    for number in range(messages):
        await publisher.publish("work", str(number).encode())
    choices: dict[int, int] = {}
    for index, member in enumerate(members):
        while member.pending_msgs:
            choices[int((await member.next_msg(timeout=0)).data)] = index
    await members_conn.close()
    await publisher.close()
    assert sorted(choices) == list(range(messages)), "each message went to exactly one member"
    return [choices[number] for number in range(messages)]


async def test_a_seeded_broker_replays_its_queue_choices() -> None:
    first = await _queue_choices(MemoryBroker(seed=3))
    assert await _queue_choices(MemoryBroker(seed=3)) == first
    assert await _queue_choices(MemoryBroker(rng=random.Random(3))) == first
    assert await _queue_choices(MemoryBroker(seed=4)) != first
    assert set(first) == {0, 1, 2}


async def test_max_payload_is_configurable_and_counts_encoded_headers(
    broker: MemoryBroker,
) -> None:
    small = MemoryBroker(max_payload=40)
    connection = await small.connect()
    assert connection.max_payload == small.max_payload == 40
    sub = await connection.subscribe("p")
    # Header block as nats-py encodes it: "NATS/1.0\r\n" + "K: v\r\n" + "\r\n" = 18 bytes.
    for data, headers in ((b"x" * 40, None), (b"x" * 40, {}), (b"x" * 22, {"K": "v"})):
        await connection.publish("p", data, headers=headers)
        assert (await sub.next_msg(timeout=WAIT)).data == data
    for data, headers, size in (
        (b"x" * 41, None, 41),
        (b"x" * 23, {"K": "v"}, 41),
        (b"x" * 22, {"K": "\u00e9"}, 41),  # values count in UTF-8 bytes
    ):
        with pytest.raises(MaxPayloadError) as caught:
            await connection.publish("p", data, headers=headers)
        assert (caught.value.size, caught.value.max_payload) == (size, 40)
    with pytest.raises(MaxPayloadError):
        await connection.request("p", bytearray(41))  # type: ignore[arg-type]
    await connection.close()
    assert (await broker.connect()).max_payload == 1024 * 1024


async def test_publish_never_runs_the_consumer_inline(broker: MemoryBroker) -> None:
    consumer, publisher = await broker.connect(), await broker.connect()
    sub = await consumer.subscribe("inline.x")
    received: list[bytes] = []
    done = anyio.Event()

    async def consume() -> None:
        async for msg in sub:
            received.append(msg.data)
            done.set()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(consume)
        await anyio.wait_all_tasks_blocked()  # the consumer is parked, waiting
        await publisher.publish("inline.x", b"1")
        assert received == []  # buffered and woken, but not run by publish
        assert sub.pending_msgs == 1
        with anyio.fail_after(WAIT):
            await done.wait()
        assert received == [b"1"]
        await sub.unsubscribe()


async def test_no_responders_goes_only_to_the_publishers_own_subscription(
    broker: MemoryBroker,
) -> None:
    publisher, other = await broker.connect(), await broker.connect()
    inbox = publisher.new_inbox()
    others_sub = await other.subscribe(inbox)
    own_first, own_second = await publisher.subscribe(inbox), await publisher.subscribe(inbox)
    await publisher.publish("nobody.here", reply=inbox)
    msg = await own_first.next_msg(timeout=WAIT)
    assert msg == Msg(inbox, b"", {"Status": "503", "Nats-Subject": "nobody.here"})
    assert (own_second.pending_msgs, others_sub.pending_msgs) == (0, 0)  # like nats-server


async def test_in_flight_counts_buffered_messages(broker: MemoryBroker) -> None:
    connection = await broker.connect()
    first, second = await connection.subscribe("f.*"), await connection.subscribe("f.>")
    for _ in range(3):
        await connection.publish("f.x")
    assert broker.in_flight == 6
    await first.next_msg(timeout=0)
    assert broker.in_flight == 5
    await first.unsubscribe()
    assert broker.in_flight == 3
    await connection.close()
    assert broker.in_flight == 0
    assert second.pending_msgs == 0


async def test_several_tasks_may_consume_one_subscription(broker: MemoryBroker) -> None:
    connection = await broker.connect()
    sub = await connection.subscribe("shared.work")
    got: list[list[bytes]] = [[], []]

    async def consume(index: int) -> None:
        async for msg in sub:
            got[index].append(msg.data)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(consume, 0)
        tasks.start_soon(consume, 1)
        await anyio.wait_all_tasks_blocked()
        for number in range(20):
            await connection.publish("shared.work", b"%d" % number)
            if number % 3 == 0:
                await anyio.wait_all_tasks_blocked()
        with anyio.fail_after(WAIT):
            while sub.delivered < 20:
                await anyio.wait_all_tasks_blocked()
        await sub.unsubscribe()  # both iterators end
    assert sorted(got[0] + got[1], key=int) == [b"%d" % n for n in range(20)]


# ---------------------------------------------------------------------- headers


async def test_header_values_nats_would_alter_are_refused(broker: MemoryBroker) -> None:
    connection = await broker.connect()
    sub = await connection.subscribe("h")
    for value in ("  x", "x ", "x\r\ny", "x\ny", " \t", "\u00a0v"):
        with pytest.raises(BadHeaderError) as caught:
            await connection.publish("h", headers={"Name": value})
        assert "'Name'" in str(caught.value)
    assert sub.pending_msgs == 0  # nothing was sent
    kept = {"Empty": "", "Tab": "a\tb", "Colon": "a: b", "Case": "x", "case": "y"}
    await connection.publish("h", headers=kept)
    assert (await sub.next_msg(timeout=WAIT)).headers == kept
    await connection.publish("h", headers={})
    assert (await sub.next_msg(timeout=WAIT)).headers is None


async def test_every_receiver_gets_its_own_headers(broker: MemoryBroker) -> None:
    connection = await broker.connect()
    subs = [await connection.subscribe("h.x"), await connection.subscribe("h.*")]
    subs.append(await connection.subscribe("h.>", queue="q"))
    sent = {"K": "v"}
    await connection.publish("h.x", headers=sent)
    sent["K"] = "changed by the publisher"
    received = [await sub.next_msg(timeout=WAIT) for sub in subs]
    assert all(msg.headers == {"K": "v"} for msg in received)
    first = received[0].headers
    assert isinstance(first, dict)
    first["K"] = "changed by a receiver"
    assert [msg.headers for msg in received[1:]] == [{"K": "v"}, {"K": "v"}]


@pytest.mark.parametrize(
    ("headers", "named"),
    [({"Bad Name": "v"}, "Bad Name"), ({"": "v"}, "''"), ({"K": 1}, "'K'"), (["K"], "['K']")],
)
async def test_bad_headers_are_rejected_naming_them(
    broker: MemoryBroker, headers: object, named: str
) -> None:
    connection = await broker.connect()
    with pytest.raises(BadHeaderError) as caught:
        await connection.publish("h", headers=headers)  # type: ignore[arg-type]
    assert named in str(caught.value)


async def test_payload_must_be_bytes_like(broker: MemoryBroker) -> None:
    connection = await broker.connect()
    sub = await connection.subscribe("d")
    await connection.publish("d", memoryview(b"mv"))  # type: ignore[arg-type]
    data = (await sub.next_msg(timeout=WAIT)).data
    assert type(data) is bytes
    assert data == b"mv"
    with pytest.raises(TypeError, match="str"):
        await connection.publish("d", "text")  # type: ignore[arg-type]


async def test_repr_names_the_state(broker: MemoryBroker) -> None:
    connection = await broker.connect(name="svc")
    sub = await connection.subscribe("r.*", queue="q")
    assert "name='svc'" in repr(connection)
    assert "open" in repr(connection)
    assert "subject='r.*'" in repr(sub)
    assert "live" in repr(sub)
    assert isinstance(sub, MemorySubscription)
    await connection.close()
    assert "closed" in repr(connection)
    assert "ended" in repr(sub)


async def test_new_inbox_is_nuid_shaped_and_seeded_brokers_repeat_it() -> None:
    first = await MemoryBroker(seed=11).connect()
    second = await MemoryBroker(seed=11).connect()
    inboxes = [first.new_inbox() for _ in range(3)]
    assert all(re.fullmatch(r"_INBOX\.[0-9A-Za-z]{22}", inbox) for inbox in inboxes)
    assert len(set(inboxes)) == 3
    assert [second.new_inbox() for _ in range(3)] == inboxes


def test_the_asyncio_path_does_not_import_trio() -> None:
    program = (
        "import asyncio, sys\n"
        "from transports.memory import MemoryBroker\n"
        "async def main():\n"
        "    connection = await MemoryBroker().connect()\n"
        "    sub = await connection.subscribe('x')\n"
        "    await connection.publish('x', b'1')\n"
        "    await sub.next_msg(timeout=1)\n"
        "    await connection.close()\n"
        "asyncio.run(main())\n"
        "assert 'trio' not in sys.modules, 'trio was imported'\n"
    )
    root = Path(transports.__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", program], check=True, timeout=60, cwd=root)


@pytest.mark.parametrize(
    ("subject", "feature"),
    [("$JS.API.INFO", "JetStream API"), ("$SYS.REQ.SERVER.PING", "system services")],
)
async def test_strict_mode_names_a_server_feature_it_does_not_model(
    subject: str, feature: str
) -> None:
    broker = MemoryBroker(strict=True)
    connection = await broker.connect()
    with pytest.raises(NotModelledError, match=feature) as caught:
        await connection.request(subject, b"", timeout=WAIT)
    assert caught.value.subject == subject
    broker.strict = False  # outside strict mode: routed like any subject
    with pytest.raises(NoRespondersError):
        await connection.request(subject, b"", timeout=WAIT)
    responder = await broker.connect()  # a stand-in responder is served normally
    sub = await responder.subscribe(subject)
    broker.strict = True

    async def answer() -> None:
        msg = await sub.next_msg(timeout=WAIT)
        assert msg.reply is not None
        await responder.publish(msg.reply, b"stand-in")

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(answer)
        assert (await connection.request(subject, b"", timeout=WAIT)).data == b"stand-in"
