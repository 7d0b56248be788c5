"""Service life cycle beyond the conformance cases: tasks, re-entrancy, notifications."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from micro.errors import ServiceStoppedError
from micro.request import Request
from micro.service import Service, add_service
from transports.base import (
    Msg,
    NoRespondersError,
    PermissionViolationError,
    Transport,
    TransportEvent,
    TransportEventKind,
)
from transports.memory import MemoryBroker

pytestmark = pytest.mark.anyio

WAIT = 5.0


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def broker() -> MemoryBroker:
    return MemoryBroker(seed=7)


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


def _our_tasks(anyio_backend: str) -> list[str]:
    """Names of the living tasks that belong to ``micro`` (its task host and children)."""
    if anyio_backend == "trio":
        import trio

        names: list[str] = []
        root = trio.lowlevel.current_root_task()
        assert root is not None
        pending = [root]
        while pending:
            task = pending.pop()
            names.append(task.name)
            pending.extend(c for n in task.child_nurseries for c in n.child_tasks)
    else:
        names = [task.get_name() for task in asyncio.all_tasks() if not task.done()]
    return [name for name in names if name.startswith("micro")]


async def test_start_returns_while_the_service_keeps_serving(
    transport: Transport, client: Transport, anyio_backend: str
) -> None:
    assert _our_tasks(anyio_backend) == []
    service = add_service(transport, "svc", "1.0.0")
    await service.add_endpoint("echo", echo)
    await service.start()  # not inside any task group of ours
    assert (await client.request("echo", b"a", timeout=WAIT)).data == b"a"
    # 1 control loop (the memory transport offers subscribe_many: one subscription for the
    # nine control subjects) and 1 endpoint loop, plus the host's root task on trio (on
    # asyncio the host runs native tasks and needs no root)
    assert len(_our_tasks(anyio_backend)) == (1 if anyio_backend == "trio" else 0) + 1 + 1
    await service.stop()
    with anyio.fail_after(WAIT):  # nothing orphaned (the root task may need a step to exit)
        while _our_tasks(anyio_backend):
            await anyio.lowlevel.checkpoint()


async def test_start_twice_and_start_after_stop_fail(transport: Transport) -> None:
    service = add_service(transport, "svc", "1.0.0")
    await service.start()
    with pytest.raises(RuntimeError, match="already started"):
        await service.start()
    await service.stop()
    with pytest.raises(ServiceStoppedError, match="stopped"):
        await service.start()


async def test_stop_before_start_stops_without_subscribing(
    transport: Transport, client: Transport
) -> None:
    done: list[Service] = []
    service = add_service(transport, "svc", "1.0.0", done_handler=done.append)
    await service.add_endpoint("echo", echo)
    await service.stop()
    assert service.stopped()
    assert done == [service]
    assert await service.wait_stopped() is None
    with pytest.raises(NoRespondersError):
        await client.request("$SRV.PING", timeout=WAIT)


async def test_async_with_starts_and_stops(transport: Transport, client: Transport) -> None:
    async with add_service(transport, "svc", "1.0.0") as service:
        assert (await client.request(f"$SRV.PING.svc.{service.id}", timeout=WAIT)).data
    assert service.stopped()


async def test_stop_from_inside_a_handler_finishes_after_the_handler(
    transport: Transport, client: Transport
) -> None:
    service = add_service(transport, "svc", "1.0.0")

    async def shutdown(request: Request) -> None:
        await service.stop()  # must not wait for itself
        assert not service.stopped()
        await request.respond(b"bye")

    await service.add_endpoint("shutdown", shutdown)
    await service.start()
    assert (await client.request("shutdown", timeout=WAIT)).data == b"bye"
    with anyio.fail_after(WAIT):
        assert await service.wait_stopped() is None
    assert service.stopped()


async def test_callbacks_may_call_stop_and_may_be_async(
    transport: Transport, client: Transport
) -> None:
    calls: list[str] = []

    async def on_error(service: Service, error: BaseException) -> None:
        calls.append(f"error:{error}")
        await service.stop()

    async def on_done(service: Service) -> None:
        calls.append("done")
        await service.stop()

    service = add_service(transport, "svc", "1.0.0", error_handler=on_error, done_handler=on_done)
    endpoint = await service.add_endpoint("ep", echo)
    await service.start()
    assert endpoint.subscription is not None
    await endpoint.subscription.unsubscribe()
    with anyio.fail_after(WAIT):
        error = await service.wait_stopped()
    assert calls == [f"error:{error}", "done"]


async def test_callbacks_that_raise_are_logged_not_propagated(
    transport: Transport, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(service: Service) -> None:
        raise RuntimeError("done handler broke")

    service = add_service(transport, "svc", "1.0.0", done_handler=broken)
    await service.start()
    await service.stop()
    assert service.stopped()
    assert "done handler broke" in caplog.text


async def test_grace_period_cancels_handlers_that_do_not_finish(
    transport: Transport, client: Transport
) -> None:
    entered = anyio.Event()
    cancelled: list[bool] = []

    async def stuck(request: Request) -> None:
        entered.set()
        try:
            await anyio.Event().wait()
        except anyio.get_cancelled_exc_class():
            cancelled.append(True)
            raise

    service = add_service(transport, "svc", "1.0.0")
    await service.add_endpoint("stuck", stuck)
    await service.start()
    await client.publish("stuck", b"")
    with anyio.fail_after(WAIT):
        await entered.wait()
        await service.stop(grace_period=0.05)
    assert service.stopped()
    assert cancelled == [True]


async def test_control_request_without_reply_is_reported_not_fatal(
    transport: Transport, client: Transport
) -> None:
    errors: list[BaseException] = []
    reported = anyio.Event()

    def on_error(service: Service, error: BaseException) -> None:
        errors.append(error)
        reported.set()

    service = add_service(transport, "svc", "1.0.0", error_handler=on_error)
    await service.start()
    await client.publish("$SRV.PING", b"")
    with anyio.fail_after(WAIT):
        await reported.wait()
    assert "no reply subject" in str(errors[0])
    assert not service.stopped()
    assert (await client.request("$SRV.PING.svc", timeout=WAIT)).data
    await service.stop()


async def test_unrelated_events_do_not_stop_the_service(
    broker: MemoryBroker, client: Transport
) -> None:
    from testing.conformance._tapped_transport import TappedTransport

    tapped = TappedTransport(await broker.connect())
    service = add_service(tapped, "svc", "1.0.0")
    await service.add_endpoint("ep", echo)
    await service.start()
    tapped.inject(TransportEvent(TransportEventKind.DISCONNECTED))
    tapped.inject(TransportEvent(TransportEventKind.RECONNECTED))
    tapped.inject(TransportEvent(TransportEventKind.ERROR, None))
    assert (await client.request("ep", b"ok", timeout=WAIT)).data == b"ok"
    assert not service.stopped()
    await service.stop()
    await tapped.close()


async def test_services_sharing_a_connection_are_independent(
    transport: Transport, client: Transport
) -> None:
    first = add_service(transport, "first", "1.0.0")
    second = add_service(transport, "second", "1.0.0")
    await first.add_endpoint("a", echo)
    await second.add_endpoint("b", echo)
    await first.start()
    await second.start()
    await first.stop()
    assert (await client.request("b", b"still", timeout=WAIT)).data == b"still"
    assert (await client.request("$SRV.PING.second", timeout=WAIT)).data
    with pytest.raises(NoRespondersError):
        await client.request("$SRV.PING.first", timeout=WAIT)
    await transport.close()
    with anyio.fail_after(WAIT):
        await second.wait_stopped()


async def test_add_endpoint_racing_stop_leaves_nothing_subscribed(
    transport: Transport, client: Transport
) -> None:
    service = add_service(transport, "svc", "1.0.0")
    await service.start()
    results: list[Any] = []

    async def add(index: int) -> None:
        try:
            results.append(await service.add_endpoint(f"ep{index}", echo))
        except ServiceStoppedError as exc:
            results.append(exc)

    async with anyio.create_task_group() as group:
        for index in range(5):
            group.start_soon(add, index)
        group.start_soon(service.stop)
    assert service.stopped()
    assert len(results) == 5
    for index in range(5):
        with pytest.raises(NoRespondersError):
            await client.request(f"ep{index}", timeout=WAIT)


async def test_handler_exception_is_logged_with_traceback(
    transport: Transport, client: Transport, caplog: pytest.LogCaptureFixture
) -> None:
    async def fails(request: Request) -> None:
        raise KeyError("missing-thing")

    async with add_service(transport, "svc", "1.0.0") as service:
        await service.add_endpoint("fails", fails)
        reply: Msg = await client.request("fails", timeout=WAIT)
        assert (reply.headers or {}).get("Nats-Service-Error") == "Internal Server Error"
    records = [record for record in caplog.records if record.exc_info]
    assert any("missing-thing" in str(record.exc_info[1]) for record in records if record.exc_info)


async def test_cancelled_stop_stops_hard_instead_of_half_way(
    transport: Transport, client: Transport
) -> None:
    entered = anyio.Event()
    cancelled: list[bool] = []

    async def stuck(request: Request) -> None:
        entered.set()
        try:
            await anyio.Event().wait()
        except anyio.get_cancelled_exc_class():
            cancelled.append(True)
            raise

    done: list[Service] = []
    service = add_service(transport, "svc", "1.0.0", done_handler=done.append)
    await service.add_endpoint("stuck", stuck)
    with anyio.fail_after(WAIT):
        with anyio.CancelScope() as scope:
            async with service:
                await client.publish("stuck", b"")
                await entered.wait()
                scope.cancel()  # e.g. Ctrl-C: __aexit__ runs in a cancelled scope
                await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert service.stopped()
    assert done == [service]
    assert cancelled == [True]
    with pytest.raises(NoRespondersError):
        await client.request("stuck", timeout=WAIT)


async def test_grace_period_also_bounds_a_stop_already_in_progress(
    broker: MemoryBroker, client: Transport
) -> None:
    from testing.conformance._tapped_transport import TappedTransport

    entered = anyio.Event()
    told = anyio.Event()

    async def stuck(request: Request) -> None:
        entered.set()
        await anyio.Event().wait()

    tapped = TappedTransport(await broker.connect())
    service = add_service(tapped, "svc", "1.0.0", error_handler=lambda s, e: told.set())
    await service.add_endpoint("stuck", stuck)
    await service.start()
    await client.publish("stuck", b"")
    problem = PermissionViolationError("subscription", "stuck")  # fatal: the service stops
    with anyio.fail_after(WAIT):
        await entered.wait()
        tapped.inject(TransportEvent(TransportEventKind.ERROR, problem))
        await told.wait()  # the service is stopping by itself, waiting for the handler...
        await service.stop(grace_period=0.05)  # ...and this bounds that wait
    assert service.stopped()
    assert service.stop_error is problem
    await tapped.close()
