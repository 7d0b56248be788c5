"""Endpoints: concurrency, removal, limits, accounting rules, configuration checks."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from datetime import datetime, timezone

import anyio
import pytest

from micro.errors import ServiceError, ValidationError, last_error_text
from micro.request import Request
from micro.service import add_service
from transports.base import MaxPayloadError, NoRespondersError, Transport
from transports.memory import MemoryBroker

pytestmark = pytest.mark.anyio

WAIT = 5.0


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def broker() -> MemoryBroker:
    return MemoryBroker(seed=3, max_payload=1024)


@pytest.fixture
async def transport(broker: MemoryBroker) -> AsyncIterator[Transport]:
    connection = await broker.connect()
    yield connection
    await connection.close()


@pytest.fixture
async def client(broker: MemoryBroker) -> AsyncIterator[Transport]:
    connection = await broker.connect()
    yield connection
    await connection.close()


async def echo(request: Request) -> None:
    await request.respond(request.data())


class Gate:
    """Handlers that block until released, counting how many run at once."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0
        self.release = anyio.Event()
        self._changed = anyio.Event()

    async def handler(self, request: Request) -> None:
        self.running += 1
        self.peak = max(self.peak, self.running)
        self._changed.set()
        self._changed = anyio.Event()
        await self.release.wait()
        self.running -= 1
        await request.respond(b"done")

    async def wait_running(self, count: int) -> None:
        with anyio.fail_after(WAIT):
            while self.running < count:
                await self._changed.wait()


@pytest.mark.parametrize("limit", [1, 3])
async def test_max_concurrency_bounds_parallel_handlers(
    transport: Transport, client: Transport, limit: int
) -> None:
    gate = Gate()
    async with add_service(transport, "svc", "1.0.0") as service:
        endpoint = await service.add_endpoint("work", gate.handler, max_concurrency=limit)
        assert endpoint.max_concurrency == limit
        replies = []

        async def call() -> None:
            replies.append(await client.request("work", timeout=WAIT))

        try:
            async with anyio.create_task_group() as group:
                for _ in range(limit + 2):
                    group.start_soon(call)
                await gate.wait_running(limit)
                # the two extra requests stay buffered while ``limit`` requests are running
                subscription = endpoint.subscription
                assert subscription is not None
                with anyio.fail_after(WAIT):
                    while subscription.pending_msgs < 2:
                        await client.request(f"$SRV.PING.svc.{service.id}", timeout=WAIT)
                assert gate.running == limit
                gate.release.set()
        finally:
            gate.release.set()  # never leave handlers blocked (stop would wait for them)
        assert len(replies) == limit + 2
        assert gate.peak == limit
        stats = service.stats().endpoints[0]
        assert stats.num_requests == limit + 2
        assert stats.num_errors == 0


async def test_remove_endpoint_drains_and_drops_it_from_info(
    transport: Transport, client: Transport
) -> None:
    async with add_service(transport, "svc", "1.0.0") as service:
        keep = await service.add_endpoint("keep", echo)
        gone = await service.add_endpoint("gone", echo)
        await service.add_endpoint("other", echo, subject="other.a")
        await service.remove_endpoint("gone")
        assert [e.name for e in service.info().endpoints] == ["keep", "other"]
        assert gone.subscription is None
        with pytest.raises(NoRespondersError):
            await client.request("gone", timeout=WAIT)
        with pytest.raises(ValueError, match="no endpoint named 'nope'"):
            await service.remove_endpoint("nope")
        with pytest.raises(ValueError, match="not in"):
            await service.remove_endpoint(gone)
        await service.remove_endpoint(keep)
        assert [e.subject for e in service.stats().endpoints] == ["other.a"]
        assert not service.stopped()  # removal is not "a subscription ended under us"
        assert (await client.request("other.a", b"b", timeout=WAIT)).data == b"b"


async def test_remove_endpoint_from_its_own_handler(
    transport: Transport, client: Transport
) -> None:
    async with add_service(transport, "svc", "1.0.0") as service:

        async def once(request: Request) -> None:
            await service.remove_endpoint("once")
            await request.respond(b"last")

        await service.add_endpoint("once", once)
        assert (await client.request("once", timeout=WAIT)).data == b"last"
        with anyio.fail_after(WAIT):
            while True:
                try:
                    await client.request("once", timeout=WAIT)
                except NoRespondersError:
                    break
        assert service.info().endpoints == []


async def test_pending_limits_reach_the_subscription(transport: Transport) -> None:
    service = add_service(
        transport,
        "svc",
        "1.0.0",
        pending_msgs_limit_by_endpoint=10,
        pending_bytes_limit_by_endpoint=99,
    )
    group = service.add_group("g", pending_msgs_limit_by_endpoint=5)
    direct = await service.add_endpoint("a", echo)
    grouped = await group.add_endpoint("b", echo)
    own = await group.add_endpoint("c", echo, pending_msgs_limit=2, pending_bytes_limit=3)
    assert (direct.pending_msgs_limit, direct.pending_bytes_limit) == (10, 99)
    assert (grouped.pending_msgs_limit, grouped.pending_bytes_limit) == (5, 99)
    assert (own.pending_msgs_limit, own.pending_bytes_limit) == (2, 3)
    with pytest.raises(ValidationError, match="pending messages limit"):
        await service.add_endpoint("d", echo, pending_msgs_limit=0)


async def test_failed_send_counts_even_when_the_handler_catches_it(
    transport: Transport, client: Transport
) -> None:
    caught: list[Exception] = []

    async def too_big(request: Request) -> None:
        try:
            await request.respond(b"x" * 2048)
        except MaxPayloadError as exc:
            caught.append(exc)
            await request.respond(b"small")

    async with add_service(transport, "svc", "1.0.0") as service:
        await service.add_endpoint("big", too_big)
        assert (await client.request("big", timeout=WAIT)).data == b"small"
        stats = service.stats().endpoints[0]
        assert (stats.num_requests, stats.num_errors) == (1, 1)
        assert stats.last_error == f"500:MaxPayloadError: {caught[0]}"


async def test_escaped_send_failure_gets_a_500_reply_and_counts_once(
    transport: Transport, client: Transport
) -> None:
    async def too_big(request: Request) -> None:
        await request.respond(b"x" * 2048)

    async with add_service(transport, "svc", "1.0.0") as service:
        await service.add_endpoint("big", too_big)
        reply = await client.request("big", timeout=WAIT)
        assert (reply.headers or {}).get("Nats-Service-Error-Code") == "500"
        stats = service.stats().endpoints[0]
        assert stats.num_errors == 1
        assert stats.last_error.startswith("500:MaxPayloadError: payload of 2048 bytes")


async def test_typed_error_carries_its_data_and_headers(
    transport: Transport, client: Transport
) -> None:
    async def refuse(request: Request) -> None:
        raise ServiceError(403, "forbidden", data=b"why", headers={"hint": "login"})

    async with add_service(transport, "svc", "1.0.0") as service:
        await service.add_endpoint("refuse", refuse)
        reply = await client.request("refuse", timeout=WAIT)
        assert reply.data == b"why"
        assert dict(reply.headers or {}) == {
            "hint": "login",
            "Nats-Service-Error": "forbidden",
            "Nats-Service-Error-Code": "403",
        }


async def test_exception_after_responding_sends_no_second_reply(
    transport: Transport, client: Transport
) -> None:
    async def answer_then_fail(request: Request) -> None:
        await request.respond(b"answer")
        raise RuntimeError("late failure")

    async with add_service(transport, "svc", "1.0.0") as service:
        await service.add_endpoint("ep", answer_then_fail)
        inbox = await client.subscribe(client.new_inbox())
        await client.publish("ep", b"", reply=inbox.subject)
        first = await inbox.next_msg(timeout=WAIT)
        assert first.data == b"answer"
        await client.request("$SRV.PING", timeout=WAIT)  # the endpoint is done by now
        with pytest.raises(TimeoutError):
            await inbox.next_msg(timeout=0.1)
        stats = service.stats().endpoints[0]
        assert stats.last_error == "500:RuntimeError: late failure"


async def test_injected_clocks_make_statistics_exact(
    transport: Transport, client: Transport
) -> None:
    ticks = itertools.count(step=1000)
    started = datetime(2024, 5, 1, 10, 20, 30, 500000, tzinfo=timezone.utc)
    service = add_service(
        transport,
        "svc",
        "1.0.0",
        now=lambda: started,
        clock=lambda: next(ticks),
        id_generator=lambda: "fixed-id",
    )
    await service.add_endpoint("echo", echo)
    async with service:
        for _ in range(3):
            await client.request("echo", timeout=WAIT)
        document = json.loads((await client.request("$SRV.STATS.svc.fixed-id", timeout=WAIT)).data)
    assert document["started"] == "2024-05-01T10:20:30.500000Z"
    endpoint = document["endpoints"][0]
    assert (endpoint["processing_time"], endpoint["average_processing_time"]) == (3000, 1000)


async def test_custom_api_prefix(transport: Transport, client: Transport) -> None:
    async with add_service(transport, "svc", "1.0.0", api_prefix="hello.service") as service:
        reply = await client.request(f"hello.service.PING.svc.{service.id}", timeout=WAIT)
        assert json.loads(reply.data)["id"] == service.id
        with pytest.raises(NoRespondersError):
            await client.request("$SRV.PING", timeout=WAIT)


async def test_metadata_is_copied_and_read_only(transport: Transport) -> None:
    given = {"region": "eu"}
    service = add_service(transport, "svc", "1.0.0", metadata=given)
    endpoint_md = {"schema": "v1"}
    endpoint = await service.add_endpoint("ep", echo, metadata=endpoint_md)
    given["region"] = "us"
    endpoint_md["schema"] = "v2"
    assert dict(service.metadata) == {"region": "eu"}
    assert endpoint.metadata == {"schema": "v1"}
    with pytest.raises(TypeError):
        service.metadata["region"] = "us"  # type: ignore[index]
    assert service.info().metadata == {"region": "eu"}


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"queue_group": "a", "disable_queue_group": True}, "contradict"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_concurrency": True}, "max_concurrency"),
        ({"subject": 5}, "subject"),
        ({"metadata": {"k": 1}}, "metadata"),
    ],
)
async def test_endpoint_option_errors_name_the_value(
    transport: Transport, options: dict[str, object], problem: str
) -> None:
    service = add_service(transport, "svc", "1.0.0")
    with pytest.raises(ValidationError, match=problem):
        await service.add_endpoint("ep", echo, **options)  # type: ignore[arg-type]
    assert service.info().endpoints == []


async def test_service_option_errors(transport: Transport) -> None:
    with pytest.raises(TypeError, match="Transport"):
        add_service(object(), "svc", "1.0.0")
    with pytest.raises(ValidationError, match="service id"):
        add_service(transport, "svc", "1.0.0", id_generator=lambda: "bad id")
    with pytest.raises(ValidationError, match="api prefix"):
        add_service(transport, "svc", "1.0.0", api_prefix="$SRV.>")
    with pytest.raises(TypeError, match="done_handler"):
        add_service(transport, "svc", "1.0.0", done_handler="nope")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="middleware"):
        add_service(transport, "svc", "1.0.0", middlewares=[42])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="contradict"):
        add_service(transport, "svc", "1.0.0", queue_group="q1", disable_queue_group=True)
    with pytest.raises(TypeError, match="handler must be callable"):
        await add_service(transport, "svc", "1.0.0").add_endpoint("ep", "nope")  # type: ignore[arg-type]


async def test_error_descriptions_are_made_fit_for_a_header(
    transport: Transport, client: Transport
) -> None:
    async def multiline(request: Request) -> None:
        if request.data() == b"typed":
            raise ServiceError(409, "first line\nsecond line ")
        raise ValueError("  exposed\r\ntext ")

    async with add_service(transport, "svc", "1.0.0", expose_exception_text=True) as service:
        await service.add_endpoint("ep", multiline)
        typed = await client.request("ep", b"typed", timeout=WAIT)
        assert (typed.headers or {}).get("Nats-Service-Error") == "first line second line"
        exposed = await client.request("ep", timeout=WAIT)
        assert (exposed.headers or {}).get("Nats-Service-Error") == "exposed text"
        assert service.stats().endpoints[0].last_error == "500:ValueError:   exposed\r\ntext "


# ---------------------------------------------------------------------- services nobody discovers


async def test_a_service_that_is_not_discoverable_serves_but_answers_no_discovery(
    broker: MemoryBroker, transport: Transport, client: Transport
) -> None:
    from micro.client import Client

    service = add_service(transport, "hidden", "1.0.0", discoverable=False)
    assert not service.discoverable
    before = broker.subscription_count
    async with service:
        await service.add_endpoint("echo", echo)
        assert broker.subscription_count == before + 1  # the endpoint only: no $SRV subject
        assert (await client.request("echo", b"x", timeout=WAIT)).data == b"x"
        assert await Client(client).ping(max_wait=0.05) == []
        assert service.stats().endpoints[0].num_requests == 1
        with pytest.raises(NoRespondersError):
            await client.request("$SRV.PING.hidden", b"", timeout=WAIT)


def test_every_last_error_text_starts_with_a_code() -> None:
    assert last_error_text(ServiceError(403, "forbidden")) == "403:forbidden"
    assert last_error_text(KeyError("customer")) == "500:KeyError: 'customer'"
    assert last_error_text(RuntimeError("")) == "500:RuntimeError: "
