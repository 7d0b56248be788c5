"""Handler mistakes on the memory broker's strict mode, the stub request and the handler rule.

What every transport shares (the warning, the stats, the refused second reply, unique
endpoint names) is ``testing.conformance._service_mistakes``, run on memory and NATS.
"""

from __future__ import annotations

import functools
import logging

import pytest

from micro import Request, add_service
from micro.request import (
    UNANSWERED_ERROR,
    AlreadyRespondedError,
    UnansweredRequestError,
    as_async_handler,
    is_async_callable,
)
from testing import make_request
from transports.base import Transport
from transports.memory import MemoryBroker

pytestmark = pytest.mark.anyio

WAIT = 5.0


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def forgets_on_empty(request: Request) -> None:
    if request.data():
        await request.respond(request.data())


async def test_strict_mode_fails_the_test_on_an_unanswered_request(
    micro_broker: MemoryBroker, caplog: pytest.LogCaptureFixture
) -> None:
    service = add_service(await micro_broker.connect(), "orders", "1.0.0")
    client: Transport = await micro_broker.connect()
    async with service:
        await service.add_endpoint("create", forgets_on_empty)
        assert (await client.request("create", b"x", timeout=WAIT)).data == b"x"
        await micro_broker.wait_idle(timeout=WAIT)  # answered: nothing kept
        inbox = await client.subscribe(client.new_inbox())
        await client.publish("create", b"", reply=inbox.subject)
        with pytest.raises(UnansweredRequestError) as failure:
            await micro_broker.wait_idle(timeout=WAIT)
        assert (failure.value.endpoint, failure.value.service) == ("create", "orders")
        assert failure.value.subject == "create"
        assert "returned without responding" in str(failure.value)
        assert inbox.pending_msgs == 0  # nothing was sent to the caller
        assert service.stats().endpoints[0].last_error == UNANSWERED_ERROR
    assert any("without responding" in r.getMessage() for r in caplog.records)


@pytest.mark.micro_broker(strict=False)
async def test_a_lenient_broker_only_logs_and_counts(micro_broker: MemoryBroker) -> None:
    service = add_service(await micro_broker.connect(), "orders", "1.0.0")
    client = await micro_broker.connect()
    async with service:
        await service.add_endpoint("create", forgets_on_empty)
        await client.publish("create", b"", reply="replies.1")
        await micro_broker.wait_idle(timeout=WAIT)  # raises nothing
        stats = service.stats().endpoints[0]
    assert (stats.num_requests, stats.num_errors) == (1, 1)
    assert micro_broker.handler_failures == []


async def test_strict_mode_fails_the_test_on_a_second_response(
    micro_broker: MemoryBroker,
) -> None:
    async def twice(request: Request) -> None:
        await request.respond(b"one")
        await request.respond(b"two")

    service = add_service(await micro_broker.connect(), "svc", "1.0.0")
    client = await micro_broker.connect()
    async with service:
        await service.add_endpoint("twice", twice)
        assert (await client.request("twice", timeout=WAIT)).data == b"one"
        with pytest.raises(AlreadyRespondedError, match="'twice' was already responded to"):
            await micro_broker.wait_idle(timeout=WAIT)


async def test_the_stub_request_refuses_a_second_response() -> None:
    stub = make_request("svc.op", b"")
    await stub.respond(b"one")
    with pytest.raises(AlreadyRespondedError):
        await stub.respond_error(500, "late")
    assert [r.data for r in stub.responses] == [b"one"]
    assert stub.error_code is None


async def test_a_plain_def_handler_serves_published_messages_in_a_thread(
    micro_broker: MemoryBroker, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[bytes] = []

    def record(request: Request) -> None:  # a plain def: only work, no reply needed
        seen.append(request.data())

    service = add_service(await micro_broker.connect(), "svc", "1.0.0")
    client = await micro_broker.connect()
    with caplog.at_level(logging.WARNING, logger="micro.service"):
        async with service:
            await service.add_endpoint("events", record)
            await client.publish("events", b"e1")
            await micro_broker.wait_idle(timeout=WAIT)
            stats = service.stats().endpoints[0]
    assert seen == [b"e1"]
    assert (stats.num_requests, stats.num_errors) == (1, 0)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_plain_def_handler_that_cannot_respond_is_told_what_to_do(
    micro_broker: MemoryBroker,
) -> None:
    def no_await_possible(request: Request) -> None:
        pass  # e.g. meant to respond, but a plain def cannot await request.respond()

    service = add_service(await micro_broker.connect(), "svc", "1.0.0")
    client = await micro_broker.connect()
    async with service:
        await service.add_endpoint("sync", no_await_possible)
        await client.publish("sync", b"", reply="replies.1")
        with pytest.raises(UnansweredRequestError, match="plain def handler runs in a worker"):
            await micro_broker.wait_idle(timeout=WAIT)


class _AsyncCallable:
    async def __call__(self, request: Request) -> None:
        await request.respond(b"")


async def _async_handler(request: Request, suffix: bytes) -> None:
    await request.respond(request.data() + suffix)


def test_which_handlers_run_in_the_event_loop() -> None:
    partial = functools.partial(_async_handler, suffix=b"!")
    instance = _AsyncCallable()
    for handler in (_async_handler, partial, instance):
        assert is_async_callable(handler)
        assert as_async_handler(handler) is handler  # unchanged: awaited in the loop

    def plain(request: Request) -> None:
        pass

    assert not is_async_callable(plain)
    wrapped = as_async_handler(plain)
    assert wrapped is not plain
    assert is_async_callable(wrapped)
