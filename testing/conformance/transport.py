"""The transport conformance suite: every promise of ``transports.base``, as tests.

Bind it to a transport in a few lines (see ``tests/conformance/test_transport_memory.py``)::

    class TestMyTransport(TransportConformance):
        @pytest.fixture
        def anyio_backend(self) -> str:
            return "asyncio"

        @pytest.fixture
        async def conformance_backend(self) -> AsyncIterator[ConformanceBackend]:
            backend = FactoryBackend(my_connect)
            yield backend
            await backend.aclose()

Every test uses only the fixture ``conformance_backend`` (each ``await backend.connect()``
is a new connection to the same broker).  Tests skip only by declared capability
(``backend.capabilities``).  Waits are bounded with ``anyio.fail_after``; "nothing else
arrives" is shown with a sentinel published after the other messages by the same publisher,
never with a sleep.  Two delivery-order facts are used as barriers: messages from one
publisher reach one subscription in publish order (promised by ``Subscription``), and they
reach one *connection* in publish order across its subscriptions (pinned by
``test_one_connection_receives_one_publisher_in_order_across_subscriptions``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import anyio
import anyio.lowlevel
import pytest

from testing.conformance.backend import CAP_TRIO, ConformanceBackend
from transports.base import (
    NO_RESPONDERS_STATUS,
    STATUS_HEADER,
    BadHeaderError,
    BadQueueError,
    BadSubjectError,
    ConnectionClosedError,
    MaxPayloadError,
    Msg,
    NoRespondersError,
    RequestTimeoutError,
    SlowConsumerError,
    Subscription,
    SubscriptionClosedError,
    Transport,
    TransportEvent,
    TransportEventKind,
)
from transports.subjects import is_valid_subject

__all__ = ["TransportConformance"]

WAIT = 10.0
"""Upper bound (seconds) for any single wait in the suite; generous for busy CI machines."""

SENTINEL = b"--sentinel--"

INVALID_SUBJECTS = [
    "", " a", "a b", "a ", "a..b", ".a", "a.", "a*", "*", ">", "a.*", "a.>", "*.a",
    "a\tb", "a\nb", "a\rb", "foo.>.bar",
]  # fmt: skip
INVALID_PATTERNS = [
    "", " a", "a b", "a..b", ".a", "a.", ".", "a*", "*a", ">a", "a>", "a.>.b", ">.a",
    "a.**", "a.*>", "a\tb", "a\nb",
]  # fmt: skip
VALID_PATTERNS = ["*", ">", "a.*", "a.>", "*.b", "a.*.c", "*.*.>", "$SRV.PING.*", "_INBOX.>"]
UNUSUAL_VALID_SUBJECTS = ["$SRV.PING", "ünï.cödé", "a-b_c~d#e%f/g", "A.b.C", "x" * 200, "1.2.3"]
INVALID_QUEUES = ["", " ", "a b", "a\tb", "\n", "q "]
INVALID_HEADER_NAMES = ["", "bad name", "bad:name", "bäd", "a\r\nb", "(x)", "a/b"]

WILDCARD_UNIVERSE = [
    "foo", "foo.bar", "foo.baz", "foo.bar.baz", "bar", "x.bar", "x.bar.y", "foo.x.baz",
    "Foo.bar", "foo.bar.baz.qux",
]  # fmt: skip
# pattern -> (subjects of WILDCARD_UNIVERSE it matches, a matching sentinel subject);
# written out by hand, independent of transports.subjects.matches.
WILDCARD_TABLE: dict[str, tuple[list[str], str]] = {
    "foo.*": (["foo.bar", "foo.baz"], "foo.end"),
    "foo.>": (["foo.bar", "foo.baz", "foo.bar.baz", "foo.x.baz", "foo.bar.baz.qux"], "foo.end"),
    ">": (WILDCARD_UNIVERSE, "end"),
    "*.bar": (["foo.bar", "x.bar", "Foo.bar"], "end.bar"),
    "foo.bar": (["foo.bar"], "foo.bar"),
    "foo": (["foo"], "foo"),
    "foo.bar.baz": (["foo.bar.baz"], "foo.bar.baz"),
    "*": (["foo", "bar"], "end"),
    "*.*": (["foo.bar", "foo.baz", "x.bar", "Foo.bar"], "end.end"),
    "foo.*.baz": (["foo.bar.baz", "foo.x.baz"], "foo.end.baz"),
    "*.bar.>": (["foo.bar.baz", "x.bar.y", "foo.bar.baz.qux"], "end.bar.end"),
}
ODD_HEADERS = {
    "X-Mixed-Case": "Value",
    "lower": "v",
    "UPPER": "V",
    "Unicode": "héllo ☃ 日本",
    "Spaces": "a  b c",
    "Colon": "a: b",
    "Empty": "",
}


# --------------------------------------------------------------------------- helpers


async def _connections(backend: ConformanceBackend, count: int) -> list[Transport]:
    return [await backend.connect() for _ in range(count)]


async def _collect_until_sentinel(sub: Subscription) -> list[Msg]:
    """Messages of ``sub`` before the first one whose payload is :data:`SENTINEL`."""
    got: list[Msg] = []
    with anyio.fail_after(WAIT):
        async for msg in sub:
            if msg.data == SENTINEL:
                return got
            got.append(msg)
    raise AssertionError(f"subscription to {sub.subject!r} ended before the sentinel arrived")


async def _settle(publisher: Transport, *subscribers: Transport) -> None:
    """Return once every message ``publisher`` sent so far is buffered at each subscriber
    connection (a sentinel on a private subject, relying on per-connection order)."""
    with anyio.fail_after(WAIT):
        for connection in subscribers:
            barrier = await connection.subscribe(connection.new_inbox())
            await publisher.publish(barrier.subject, SENTINEL)
            assert (await barrier.next_msg(timeout=WAIT)).data == SENTINEL
            await barrier.unsubscribe()


async def _take_pending(sub: Subscription) -> list[Msg]:
    """Read exactly the messages that are buffered now."""
    return [await sub.next_msg(timeout=WAIT) for _ in range(sub.pending_msgs)]


class _EventLog:
    """An event listener that records events and lets a test wait for one kind."""

    def __init__(self) -> None:
        self.events: list[TransportEvent] = []
        self._seen: dict[TransportEventKind, anyio.Event] = {
            kind: anyio.Event() for kind in TransportEventKind
        }

    def __call__(self, event: TransportEvent) -> None:
        self.events.append(event)
        self._seen[event.kind].set()

    def kinds(self) -> list[TransportEventKind]:
        return [event.kind for event in self.events]

    async def wait_for(self, kind: TransportEventKind) -> TransportEvent:
        with anyio.fail_after(WAIT):
            await self._seen[kind].wait()
        return next(event for event in self.events if event.kind is kind)


def _backend_name(anyio_backend: object) -> str:
    if isinstance(anyio_backend, tuple):
        return str(anyio_backend[0])
    return str(anyio_backend)


# --------------------------------------------------------------------------- the suite


class TransportConformance:
    """Conformance tests for one ``Transport`` implementation (bind by subclassing)."""

    pytestmark = pytest.mark.anyio

    @pytest.fixture(autouse=True)
    def _declared_capabilities(
        self, conformance_backend: ConformanceBackend, anyio_backend: object
    ) -> None:
        if _backend_name(anyio_backend) == "trio" and CAP_TRIO not in (
            conformance_backend.capabilities
        ):
            pytest.skip("the backend does not declare the 'trio' capability")

    # --------------------------------------------------------------------- connection basics

    async def test_connect_gives_a_connected_transport(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        transport = await conformance_backend.connect()
        assert isinstance(transport, Transport)
        assert transport.is_connected
        assert not transport.is_closed
        assert transport.max_payload > 0

    async def test_async_with_returns_the_transport_and_closes_it(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        transport = await conformance_backend.connect()
        async with transport as entered:
            assert entered is transport
        assert transport.is_closed
        assert not transport.is_connected
        other = await conformance_backend.connect()
        with pytest.raises(KeyError):
            async with other:
                raise KeyError("boom")
        assert other.is_closed

    async def test_new_inbox_is_unique_and_a_valid_subject(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        a, b = await _connections(conformance_backend, 2)
        inboxes = [a.new_inbox() for _ in range(500)] + [b.new_inbox() for _ in range(500)]
        assert len(set(inboxes)) == len(inboxes)
        for inbox in inboxes:
            assert inbox.startswith("_INBOX.")
            assert len(inbox) > len("_INBOX.")
            assert is_valid_subject(inbox), inbox

    # ------------------------------------------------------------ contract 1: live on return

    async def test_subscribe_is_live_at_the_broker_on_return(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        responder, requester = await _connections(conformance_backend, 2)

        async def answer_one(sub: Subscription) -> None:
            msg = await sub.next_msg(timeout=WAIT)
            assert msg.reply is not None
            await responder.publish(msg.reply, b"pong:" + msg.data)

        for attempt in range(50):
            subject = f"live.{attempt}"
            sub = await responder.subscribe(subject)
            with anyio.fail_after(WAIT):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(answer_one, sub)
                    reply = await requester.request(subject, str(attempt).encode(), timeout=WAIT)
            assert reply.data == f"pong:{attempt}".encode()
            await sub.unsubscribe()

    # ------------------------------------------------------------------ contract 2: ordering

    async def test_one_publisher_order_is_kept_per_subscription(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await _connections(conformance_backend, 2)
        sub = await subscriber.subscribe("order.x")
        for number in range(1000):
            await publisher.publish("order.x", str(number).encode())
        await publisher.publish("order.x", SENTINEL)
        got = await _collect_until_sentinel(sub)
        assert [int(msg.data) for msg in got] == list(range(1000))

    async def test_each_publisher_order_is_kept_with_concurrent_publishers(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, first, second = await _connections(conformance_backend, 3)
        sub = await subscriber.subscribe("order.many")

        async def publish_all(publisher: Transport, name: str) -> None:
            for number in range(300):
                await publisher.publish("order.many", f"{name}:{number}".encode())
                if number % 50 == 0:
                    await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as tg:
            tg.start_soon(publish_all, first, "first")
            tg.start_soon(publish_all, second, "second")
        await _settle(first, subscriber)
        await _settle(second, subscriber)
        got = [msg.data.decode() for msg in await _take_pending(sub)]
        for name in ("first", "second"):
            numbers = [int(item.split(":")[1]) for item in got if item.startswith(name + ":")]
            assert numbers == list(range(300)), name

    async def test_one_connection_receives_one_publisher_in_order_across_subscriptions(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await _connections(conformance_backend, 2)
        left = await subscriber.subscribe("across.left")
        right = await subscriber.subscribe("across.right")
        for number in range(100):
            await publisher.publish("across.left", str(number).encode())
            await publisher.publish("across.right", str(number).encode())
        await publisher.publish("across.right", SENTINEL)
        assert len(await _collect_until_sentinel(right)) == 100
        assert left.pending_msgs == 100
        assert [int(msg.data) for msg in await _take_pending(left)] == list(range(100))

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
            with pytest.raises(BadSubjectError) as caught:
                await attempt()
            assert isinstance(caught.value, ValueError)
            assert caught.value.subject == subject
            assert repr(subject) in str(caught.value)

    @pytest.mark.parametrize("pattern", INVALID_PATTERNS)
    async def test_subscribe_rejects_an_invalid_pattern(
        self, conformance_backend: ConformanceBackend, pattern: str
    ) -> None:
        transport = await conformance_backend.connect()
        for queue in (None, "q"):
            with pytest.raises(BadSubjectError) as caught:
                await transport.subscribe(pattern, queue=queue)
            assert isinstance(caught.value, ValueError)
            assert caught.value.subject == pattern
            assert repr(pattern) in str(caught.value)

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
        subscriber, publisher = await _connections(conformance_backend, 2)
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
        subscriber, publisher = await _connections(conformance_backend, 2)
        sub = await subscriber.subscribe(pattern)
        for subject in WILDCARD_UNIVERSE:
            await publisher.publish(subject, subject.encode())
        await publisher.publish(sentinel_subject, SENTINEL)
        got = await _collect_until_sentinel(sub)
        assert [msg.subject for msg in got] == expected
        assert all(msg.data == msg.subject.encode() for msg in got)

    async def test_every_plain_subscriber_gets_a_copy(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        a, b, publisher = await _connections(conformance_backend, 3)
        subs = [
            await a.subscribe("fan.x"),
            await a.subscribe("fan.x"),
            await b.subscribe("fan.*"),
            await publisher.subscribe("fan.>"),  # the publisher's own subscription, too
        ]
        await publisher.publish("fan.x", b"hello")
        await publisher.publish("fan.x", SENTINEL)
        for sub in subs:
            got = await _collect_until_sentinel(sub)
            assert [(msg.subject, msg.data) for msg in got] == [("fan.x", b"hello")]

    async def test_exactly_one_member_of_each_queue_group_gets_each_message(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        a, b, publisher = await _connections(conformance_backend, 3)
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
        await _settle(publisher, a, b)
        for sub in plain:
            assert [int(msg.data) for msg in await _take_pending(sub)] == list(range(count))
        for name, members in groups.items():
            assert all(member.queue == name for member in members)
            per_member = [[int(msg.data) for msg in await _take_pending(m)] for m in members]
            received = sorted(number for got in per_member for number in got)
            assert received == list(range(count)), f"group {name}: each message exactly once"
            assert sum(1 for got in per_member if got) > 1, f"group {name} used one member only"
            assert all(got == sorted(got) for got in per_member)

    async def test_a_queue_group_is_one_group_across_patterns(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await _connections(conformance_backend, 2)
        members = [
            await subscriber.subscribe("qp.x", queue="g"),
            await subscriber.subscribe("qp.*", queue="g"),
            await subscriber.subscribe("qp.>", queue="g"),
        ]
        for number in range(60):
            await publisher.publish("qp.x", str(number).encode())
        await _settle(publisher, subscriber)
        received: list[int] = []
        for member in members:
            received.extend(int(msg.data) for msg in await _take_pending(member))
        assert sorted(received) == list(range(60))

    # ----------------------------------------------------------------------- request / reply

    async def test_request_reply_with_headers_both_ways(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        responder, requester = await _connections(conformance_backend, 2)
        sub = await responder.subscribe("rr.echo")
        seen: list[Msg] = []

        async def answer() -> None:
            msg = await sub.next_msg(timeout=WAIT)
            seen.append(msg)
            assert msg.reply is not None
            await responder.publish(msg.reply, b"re:" + msg.data, headers={"Answer": "yes"})

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(answer)
                reply = await requester.request(
                    "rr.echo", b"q", headers={"Question": "why"}, timeout=WAIT
                )
        assert (reply.data, dict(reply.headers or {})) == (b"re:q", {"Answer": "yes"})
        (request,) = seen
        assert (request.subject, request.data) == ("rr.echo", b"q")
        assert dict(request.headers or {}) == {"Question": "why"}
        assert request.reply is not None
        assert is_valid_subject(request.reply)

    async def test_request_returns_the_first_of_several_replies(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        a, b, requester = await _connections(conformance_backend, 3)
        subs = [(a, await a.subscribe("rr.many")), (b, await b.subscribe("rr.many"))]

        async def answer(connection: Transport, sub: Subscription, name: bytes) -> None:
            msg = await sub.next_msg(timeout=WAIT)
            assert msg.reply is not None
            await connection.publish(msg.reply, name)

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                for number, (connection, sub) in enumerate(subs):
                    tg.start_soon(answer, connection, sub, str(number).encode())
                reply = await requester.request("rr.many", timeout=WAIT)
        assert reply.data in (b"0", b"1")
        assert reply.headers is None

    async def test_concurrent_requests_each_get_their_own_reply(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        responder, requester = await _connections(conformance_backend, 2)
        sub = await responder.subscribe("rr.concurrent")
        replies: dict[int, bytes] = {}

        async def serve() -> None:
            async for msg in sub:
                assert msg.reply is not None
                await responder.publish(msg.reply, b"re:" + msg.data)

        async def ask(number: int) -> None:
            reply = await requester.request("rr.concurrent", str(number).encode(), timeout=WAIT)
            replies[number] = reply.data

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(serve)
                async with anyio.create_task_group() as askers:
                    for number in range(40):
                        askers.start_soon(ask, number)
                tg.cancel_scope.cancel()
        assert replies == {number: f"re:{number}".encode() for number in range(40)}

    async def test_no_responders_is_raised_promptly(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        requester = await conformance_backend.connect()
        timeout = 5.0
        started = anyio.current_time()
        with anyio.fail_after(WAIT), pytest.raises(NoRespondersError) as caught:
            await requester.request("nobody.home", b"x", timeout=timeout)
        assert anyio.current_time() - started < timeout / 5
        assert caught.value.subject == "nobody.home"

    async def test_publish_with_reply_to_nothing_sends_the_503_status_message(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        connection = await conformance_backend.connect()
        inbox = connection.new_inbox()
        sub = await connection.subscribe(inbox)
        await connection.publish("nobody.here", b"x", reply=inbox)
        msg = await sub.next_msg(timeout=WAIT)
        assert msg.is_no_responders
        assert msg.subject == inbox
        assert msg.data == b""
        assert msg.headers is not None
        assert msg.headers[STATUS_HEADER] == NO_RESPONDERS_STATUS

    async def test_request_times_out_with_request_timeout_error(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        silent, requester = await _connections(conformance_backend, 2)
        await silent.subscribe("rr.silent")
        started = anyio.current_time()
        with anyio.fail_after(WAIT), pytest.raises(RequestTimeoutError) as caught:
            await requester.request("rr.silent", b"x", timeout=0.3)
        elapsed = anyio.current_time() - started
        assert isinstance(caught.value, TimeoutError)
        assert (caught.value.subject, caught.value.timeout) == ("rr.silent", 0.3)
        assert 0.25 <= elapsed < WAIT

    @pytest.mark.parametrize("bad_timeout", [0, 0.0, -1.0])
    async def test_request_timeout_must_be_positive(
        self, conformance_backend: ConformanceBackend, bad_timeout: float
    ) -> None:
        requester = await conformance_backend.connect()
        with pytest.raises(ValueError, match="timeout"):
            await requester.request("rr.any", b"x", timeout=bad_timeout)

    # --------------------------------------------------------- contract 6: headers, payloads

    async def test_headers_round_trip_exactly(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await _connections(conformance_backend, 2)
        sub = await subscriber.subscribe("hdr.x")
        await publisher.publish("hdr.x", b"x", headers=ODD_HEADERS)
        msg = await sub.next_msg(timeout=WAIT)
        assert msg.headers is not None
        assert dict(msg.headers) == ODD_HEADERS

    async def test_no_headers_and_empty_headers_arrive_as_none(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await _connections(conformance_backend, 2)
        sub = await subscriber.subscribe("hdr.none")
        await publisher.publish("hdr.none", b"1")
        await publisher.publish("hdr.none", b"2", headers={})
        first, second = [await sub.next_msg(timeout=WAIT) for _ in range(2)]
        assert (first.data, first.headers) == (b"1", None)
        assert (second.data, second.headers) == (b"2", None)

    @pytest.mark.parametrize("name", INVALID_HEADER_NAMES)
    async def test_a_bad_header_name_is_rejected_before_sending(
        self, conformance_backend: ConformanceBackend, name: str
    ) -> None:
        subscriber, publisher = await _connections(conformance_backend, 2)
        sub = await subscriber.subscribe("hdr.bad")
        for attempt in (
            lambda: publisher.publish("hdr.bad", b"x", headers={"Good": "v", name: "v"}),
            lambda: publisher.request("hdr.bad", b"x", headers={name: "v"}, timeout=WAIT),
        ):
            with pytest.raises(BadHeaderError) as caught:
                await attempt()
            assert isinstance(caught.value, ValueError)
            assert caught.value.name == name
            assert repr(name) in str(caught.value)
        await publisher.publish("hdr.bad", SENTINEL)
        assert await _collect_until_sentinel(sub) == []

    async def test_a_header_value_that_is_not_a_str_is_rejected(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        publisher = await conformance_backend.connect()
        with pytest.raises(BadHeaderError):
            await publisher.publish("hdr.bad", b"x", headers=cast(Any, {"Number": 1}))

    async def test_empty_and_binary_payloads_round_trip(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await _connections(conformance_backend, 2)
        sub = await subscriber.subscribe("payload.x")
        payloads = [b"", bytes(range(256)), b"\r\n\x00PUB x 1\r\n", b"\xff" * 4096]
        for payload in payloads:
            await publisher.publish("payload.x", payload)
        got = [await sub.next_msg(timeout=WAIT) for _ in payloads]
        assert [msg.data for msg in got] == payloads
        assert all(type(msg.data) is bytes for msg in got)

    async def test_max_payload_is_accepted_and_one_more_byte_is_not(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await _connections(conformance_backend, 2)
        limit = publisher.max_payload
        sub = await subscriber.subscribe("payload.max")
        await publisher.publish("payload.max", b"m" * limit)
        assert (await sub.next_msg(timeout=WAIT)).data == b"m" * limit
        for attempt in (
            lambda: publisher.publish("payload.max", b"m" * (limit + 1)),
            lambda: publisher.request("payload.max", b"m" * (limit + 1), timeout=WAIT),
        ):
            with pytest.raises(MaxPayloadError) as caught:
                await attempt()
            assert isinstance(caught.value, ValueError)
            assert (caught.value.size, caught.value.max_payload) == (limit + 1, limit)
        await publisher.publish("payload.max", SENTINEL)
        assert await _collect_until_sentinel(sub) == []

    async def test_delivered_messages_are_frozen_msgs(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await _connections(conformance_backend, 2)
        sub = await subscriber.subscribe("msg.*")
        await publisher.publish("msg.plain", b"1")
        await publisher.publish("msg.reply", b"2", reply="msg.answer.here")
        plain, with_reply = [await sub.next_msg(timeout=WAIT) for _ in range(2)]
        assert type(plain) is Msg
        assert type(with_reply) is Msg
        assert (plain.subject, plain.reply) == ("msg.plain", None)
        assert (with_reply.subject, with_reply.reply) == ("msg.reply", "msg.answer.here")
        with pytest.raises(dataclasses.FrozenInstanceError):
            cast(Any, plain).subject = "other"
        assert not plain.is_no_responders
        assert not with_reply.is_no_responders

    # -------------------------------------------------------- contract 7: unsubscribe, drain

    async def test_unsubscribe_discards_the_buffer_and_ends_the_subscription(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await _connections(conformance_backend, 2)
        sub = await subscriber.subscribe("unsub.x")
        for number in range(3):
            await publisher.publish("unsub.x", str(number).encode())
        await _settle(publisher, subscriber)
        assert sub.pending_msgs == 3
        await sub.unsubscribe()
        assert not sub.is_active
        assert sub.pending_msgs == 0
        with anyio.fail_after(WAIT):
            assert [msg async for msg in sub] == []
        with pytest.raises(SubscriptionClosedError) as caught:
            await sub.next_msg(timeout=WAIT)
        assert caught.value.subject == "unsub.x"
        await sub.unsubscribe()  # on an ended subscription: does nothing

    async def test_after_unsubscribe_returns_the_broker_routes_elsewhere(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        a, b, publisher = await _connections(conformance_backend, 3)
        for attempt in range(10):
            subject = f"unsub.q.{attempt}"
            leaving = await a.subscribe(subject, queue="g")
            staying = await b.subscribe(subject, queue="g")
            await leaving.unsubscribe()
            for number in range(20):
                await publisher.publish(subject, str(number).encode())
            await _settle(publisher, b)
            assert [int(msg.data) for msg in await _take_pending(staying)] == list(range(20))
            await staying.unsubscribe()
        for attempt in range(20):
            subject = f"unsub.only.{attempt}"
            only = await a.subscribe(subject)
            await only.unsubscribe()
            with anyio.fail_after(WAIT), pytest.raises(NoRespondersError):
                await publisher.request(subject, timeout=WAIT)

    async def test_unsubscribe_with_limit_ends_after_that_many(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await _connections(conformance_backend, 2)
        sub = await subscriber.subscribe("limit.x")
        await sub.unsubscribe(limit=3)
        for number in range(6):
            await publisher.publish("limit.x", str(number).encode())
        with anyio.fail_after(WAIT):
            got = [int(msg.data) async for msg in sub]
        assert got == [0, 1, 2]
        assert not sub.is_active
        assert sub.delivered == 3

    async def test_unsubscribe_limit_counts_messages_already_received(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await _connections(conformance_backend, 2)
        sub = await subscriber.subscribe("limit.y")
        for number in range(2):
            await publisher.publish("limit.y", str(number).encode())
        assert [int((await sub.next_msg(timeout=WAIT)).data) for _ in range(2)] == [0, 1]
        await sub.unsubscribe(limit=3)
        for number in range(2, 8):
            await publisher.publish("limit.y", str(number).encode())
        with anyio.fail_after(WAIT):
            assert [int(msg.data) async for msg in sub] == [2]
        assert not sub.is_active

    async def test_unsubscribe_limit_already_reached_ends_at_once(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await _connections(conformance_backend, 2)
        sub = await subscriber.subscribe("limit.z")
        for number in range(2):
            await publisher.publish("limit.z", str(number).encode())
        for _ in range(2):
            await sub.next_msg(timeout=WAIT)
        await sub.unsubscribe(limit=1)
        await publisher.publish("limit.z", b"late")
        with anyio.fail_after(WAIT):
            assert [msg async for msg in sub] == []
        assert not sub.is_active

    async def test_drain_delivers_the_buffer_then_ends(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await _connections(conformance_backend, 2)
        sub = await subscriber.subscribe("drain.x")
        for number in range(5):
            await publisher.publish("drain.x", str(number).encode())
        await _settle(publisher, subscriber)
        drained = anyio.Event()

        async def drain() -> None:
            await sub.drain()
            drained.set()

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(drain)
                got = [int(msg.data) async for msg in sub]
        assert got == list(range(5))
        assert drained.is_set()
        assert not sub.is_active
        with pytest.raises(SubscriptionClosedError):
            await sub.next_msg(timeout=WAIT)
        with anyio.fail_after(WAIT), pytest.raises(NoRespondersError):
            await publisher.request("drain.x", timeout=WAIT)
        with anyio.fail_after(WAIT):
            await sub.drain()  # on an ended subscription: does nothing

    async def test_next_msg_times_out_with_timeout_error_and_keeps_the_subscription(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await _connections(conformance_backend, 2)
        sub = await subscriber.subscribe("next.x")
        with anyio.fail_after(WAIT), pytest.raises(TimeoutError) as caught:
            await sub.next_msg(timeout=0.05)
        assert not isinstance(caught.value, SubscriptionClosedError)
        assert sub.is_active
        await publisher.publish("next.x", b"later")
        assert (await sub.next_msg(timeout=WAIT)).data == b"later"
        await publisher.publish("next.x", b"no timeout")
        with anyio.fail_after(WAIT):
            assert (await sub.next_msg()).data == b"no timeout"  # timeout=None: waits

    async def test_subscription_properties(self, conformance_backend: ConformanceBackend) -> None:
        transport = await conformance_backend.connect()
        plain = await transport.subscribe("props.*")
        grouped = await transport.subscribe("props.>", queue="workers")
        assert (plain.subject, plain.queue, plain.is_active) == ("props.*", None, True)
        assert (grouped.subject, grouped.queue, grouped.is_active) == ("props.>", "workers", True)
        assert (plain.pending_msgs, plain.pending_bytes, plain.delivered, plain.dropped) == (
            0,
            0,
            0,
            0,
        )

    @pytest.mark.parametrize("queue", INVALID_QUEUES)
    async def test_subscribe_rejects_an_invalid_queue_group(
        self, conformance_backend: ConformanceBackend, queue: str
    ) -> None:
        transport = await conformance_backend.connect()
        with pytest.raises(BadQueueError) as caught:
            await transport.subscribe("queue.x", queue=queue)
        assert isinstance(caught.value, ValueError)
        assert caught.value.queue == queue
        assert repr(queue) in str(caught.value)

    @pytest.mark.parametrize(
        ("option", "value"),
        [
            ("pending_msgs_limit", 0),
            ("pending_msgs_limit", -1),
            ("pending_bytes_limit", 0),
            ("pending_bytes_limit", -1),
        ],
    )
    async def test_pending_limits_must_be_positive(
        self, conformance_backend: ConformanceBackend, option: str, value: int
    ) -> None:
        transport = await conformance_backend.connect()
        options: dict[str, Any] = {option: value}
        with pytest.raises(ValueError, match=option):
            await transport.subscribe("limits.x", **options)

    # ---------------------------------------------------- contract 8: pending, slow consumer

    async def test_pending_and_delivered_counters(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await _connections(conformance_backend, 2)
        sub = await subscriber.subscribe("count.x")
        for payload in (b"a", b"bb", b"ccc"):
            await publisher.publish("count.x", payload)
        await _settle(publisher, subscriber)
        assert (sub.pending_msgs, sub.pending_bytes, sub.delivered, sub.dropped) == (3, 6, 0, 0)
        assert (await sub.next_msg(timeout=WAIT)).data == b"a"
        assert (sub.pending_msgs, sub.pending_bytes, sub.delivered) == (2, 5, 1)
        async for msg in sub:
            if msg.data == b"ccc":
                break
        assert (sub.pending_msgs, sub.pending_bytes, sub.delivered) == (0, 0, 3)

    async def test_slow_consumer_on_the_message_limit_drops_visibly(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await _connections(conformance_backend, 2)
        log = _EventLog()
        subscriber.add_event_listener(log)
        limit, count = 10, 50
        sub = await subscriber.subscribe("slow.msgs", pending_msgs_limit=limit)
        with anyio.fail_after(WAIT):
            for number in range(count):
                await publisher.publish("slow.msgs", str(number).encode())
            await publisher.flush()
        await _settle(publisher, subscriber)
        assert sub.dropped > 0
        assert sub.pending_msgs == limit
        assert sub.pending_msgs + sub.dropped == count
        await self._assert_slow_consumer_event(log, "slow.msgs")
        assert [int(msg.data) for msg in await _take_pending(sub)] == list(range(limit))
        await publisher.publish("slow.msgs", b"after")
        assert (await sub.next_msg(timeout=WAIT)).data == b"after"
        assert sub.is_active

    async def test_slow_consumer_on_the_byte_limit_drops_visibly(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await _connections(conformance_backend, 2)
        log = _EventLog()
        subscriber.add_event_listener(log)
        sub = await subscriber.subscribe("slow.bytes", pending_bytes_limit=100)
        for number in range(50):
            await publisher.publish("slow.bytes", f"{number:010d}".encode())
        await _settle(publisher, subscriber)
        assert sub.dropped > 0
        assert 0 < sub.pending_bytes <= 100
        assert sub.pending_bytes == 10 * sub.pending_msgs
        assert sub.pending_msgs + sub.dropped == 50
        await self._assert_slow_consumer_event(log, "slow.bytes")
        await _take_pending(sub)
        await publisher.publish("slow.bytes", b"after")
        assert (await sub.next_msg(timeout=WAIT)).data == b"after"

    @staticmethod
    async def _assert_slow_consumer_event(log: _EventLog, subject: str) -> None:
        event = await log.wait_for(TransportEventKind.ERROR)
        assert isinstance(event.error, SlowConsumerError)
        assert event.error.subject == subject
        assert repr(subject) in str(event.error)

    # ------------------------------------------------------------------ close, drain, events

    async def test_close_fails_a_pending_request(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        responder, requester = await _connections(conformance_backend, 2)
        sub = await responder.subscribe("close.req")
        failed = anyio.Event()

        async def ask() -> None:
            with pytest.raises(ConnectionClosedError):
                await requester.request("close.req", b"x", timeout=WAIT * 3)
            failed.set()

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(ask)
                await sub.next_msg(timeout=WAIT)  # the request is now pending
                await requester.close()
        assert failed.is_set()

    async def test_close_ends_iteration_and_next_msg(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        transport = await conformance_backend.connect()
        sub = await transport.subscribe("close.iter")
        iterating = anyio.Event()
        got: list[Msg] = []

        async def consume() -> None:
            iterating.set()
            got.extend([msg async for msg in sub])

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                await iterating.wait()
                await transport.close()
        assert got == []
        assert not sub.is_active
        with pytest.raises(SubscriptionClosedError):
            await sub.next_msg(timeout=WAIT)

    async def test_operations_after_close_raise_connection_closed(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        transport = await conformance_backend.connect()
        sub = await transport.subscribe("closed.x")
        await transport.close()
        for attempt in (
            lambda: transport.publish("closed.x", b"x"),
            lambda: transport.subscribe("closed.x"),
            lambda: transport.request("closed.x", b"x", timeout=WAIT),
            lambda: transport.flush(),
        ):
            with anyio.fail_after(WAIT), pytest.raises(ConnectionClosedError):
                await attempt()
        with anyio.fail_after(WAIT):
            await transport.close()
            await transport.drain()
            await sub.unsubscribe()
            await sub.drain()

    async def test_close_is_idempotent_and_emits_closed_once(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        transport = await conformance_backend.connect()
        log = _EventLog()
        transport.add_event_listener(log)
        await transport.close()
        assert transport.is_closed
        assert not transport.is_connected
        assert log.kinds() == [TransportEventKind.CLOSED]
        await transport.close()
        assert log.kinds() == [TransportEventKind.CLOSED]
        assert log.events[0].error is None

    async def test_transport_drain_delivers_buffers_then_closes(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await _connections(conformance_backend, 2)
        log = _EventLog()
        subscriber.add_event_listener(log)
        subs = [await subscriber.subscribe("tdrain.a"), await subscriber.subscribe("tdrain.b")]
        for number in range(5):
            await publisher.publish("tdrain.a", str(number).encode())
            await publisher.publish("tdrain.b", str(number).encode())
        await _settle(publisher, subscriber)
        got: dict[str, list[int]] = {}

        async def consume(sub: Subscription) -> None:
            got[sub.subject] = [int(msg.data) async for msg in sub]

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                for sub in subs:
                    tg.start_soon(consume, sub)
                await subscriber.drain()
        assert got == {"tdrain.a": list(range(5)), "tdrain.b": list(range(5))}
        assert subscriber.is_closed
        assert not subscriber.is_connected
        assert log.kinds().count(TransportEventKind.CLOSED) == 1
        with pytest.raises(ConnectionClosedError):
            await subscriber.publish("tdrain.a", b"x")

    async def test_removed_listener_is_not_called(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        transport = await conformance_backend.connect()
        removed, kept = _EventLog(), _EventLog()
        remove = transport.add_event_listener(removed)
        transport.add_event_listener(kept)
        remove()
        await transport.close()
        assert removed.events == []
        assert kept.kinds() == [TransportEventKind.CLOSED]

    async def test_a_failing_listener_does_not_affect_others(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        transport = await conformance_backend.connect()
        calls: list[TransportEvent] = []

        def failing(event: TransportEvent) -> None:
            calls.append(event)
            raise RuntimeError("listener failure")

        kept = _EventLog()
        transport.add_event_listener(failing)
        transport.add_event_listener(kept)
        await transport.close()
        assert [event.kind for event in calls] == [TransportEventKind.CLOSED]
        assert kept.kinds() == [TransportEventKind.CLOSED]
        assert transport.is_closed

    async def test_flush_then_close_loses_nothing(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await _connections(conformance_backend, 2)
        sub = await subscriber.subscribe("flush.x")
        for number in range(100):
            await publisher.publish("flush.x", str(number).encode())
        with anyio.fail_after(WAIT):
            await publisher.flush()
        await publisher.close()
        got = [int((await sub.next_msg(timeout=WAIT)).data) for _ in range(100)]
        assert got == list(range(100))
