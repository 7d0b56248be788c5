"""``micro.context``: Context and run on the memory transport (asyncio and trio)."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from micro.client import Client
from micro.context import ConnectSettings, Context, run
from micro.request import Request
from micro.service import Service
from testing.conformance._tapped_transport import TappedTransport
from transports.base import (
    ConnectionClosedError,
    SlowConsumerError,
    TransportEvent,
    TransportEventKind,
)
from transports.memory import MemoryBroker, get_broker

pytestmark = pytest.mark.anyio

WAIT = 5.0


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def hello(request: Request) -> None:
    await request.respond(b"hi " + request.data())


class WithServer:
    """A ``nats_contrib.micro``-style connect option: sets ``servers`` on the options record."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self, opts: Any) -> None:
        opts.servers = self.url


class WithConnectionName:
    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, opts: Any) -> None:
        opts.name = self.name


class WithClosedCallback:
    def __init__(self, callback: Any) -> None:
        self.callback = callback

    def __call__(self, opts: Any) -> None:
        opts.closed_cb = self.callback


def _unique(name: str) -> str:
    return f"memory://ctx-{name}-{os.getpid()}-{id(object())}"


# --------------------------------------------------------------------------- run_forever


async def test_run_forever_connects_runs_setup_and_cleans_up_in_reverse_order() -> None:
    order: list[str] = []
    seen: dict[str, Any] = {}

    @asynccontextmanager
    async def resource() -> AsyncIterator[str]:
        order.append("enter resource")
        yield "r"
        order.append("exit resource")

    async def setup(ctx: Context) -> None:
        service = await ctx.add_service("greeter", "1.0.0", description="d")
        await service.add_endpoint("hello", hello)
        seen["service"] = service
        ctx.push(lambda: order.append("sync push"))

        async def async_push() -> None:
            order.append("async push")

        ctx.push(async_push)
        assert await ctx.enter(resource()) == "r"
        client = Client(ctx.transport)
        assert (await client.request("hello", b"you")).data == b"hi you"
        assert [p.id for p in await client.ping("greeter")] == [service.id]
        seen["transport"] = ctx.client
        ctx.cancel()

    ctx = Context()
    with anyio.fail_after(WAIT):
        await ctx.run_forever(setup, _unique("run"))
    assert ctx.cancelled()
    assert order == ["enter resource", "exit resource", "async push", "sync push"]
    service: Service = seen["service"]
    assert service.stopped()
    assert seen["transport"].is_closed
    assert ctx.services == []


async def test_setup_errors_propagate_after_cleanup() -> None:
    seen: dict[str, Any] = {}

    async def setup(ctx: Context) -> None:
        seen["service"] = await ctx.add_service("svc", "1.0.0")
        raise LookupError("setup failed")

    with pytest.raises(LookupError, match="setup failed"):
        await Context().run_forever(setup, _unique("err"))
    assert seen["service"].stopped


async def test_a_cancelled_context_skips_setup() -> None:
    ran: list[str] = []

    async def setup(ctx: Context) -> None:  # pragma: no cover - must not run
        ran.append("setup")

    ctx = Context()
    ctx.cancel()
    await ctx.run_forever(setup, _unique("cancelled"))
    assert ran == []


async def test_trapped_signal_cancels_run_forever() -> None:
    async def setup(ctx: Context) -> None:
        await ctx.add_service("svc", "1.0.0")
        os.kill(os.getpid(), signal.SIGUSR1)

    ctx = Context()
    with anyio.fail_after(WAIT):
        await ctx.run_forever(setup, _unique("signal"), trap_signals=(signal.SIGUSR1,))
    assert ctx.cancelled()


async def test_trap_signal_needs_an_entered_context() -> None:
    with pytest.raises(RuntimeError, match="entered context"):
        Context().trap_signal(signal.SIGUSR1)


async def test_trap_signal_inside_the_context() -> None:
    async with Context() as ctx:
        ctx.trap_signal(signal.SIGUSR2)
        await anyio.wait_all_tasks_blocked()
        os.kill(os.getpid(), signal.SIGUSR2)
        with anyio.fail_after(WAIT):
            await ctx.wait()
    assert ctx.cancelled()


def test_run_is_the_synchronous_entry_point(anyio_backend: str) -> None:
    seen: list[str] = []

    async def setup(ctx: Context) -> None:
        service = await ctx.add_service("svc", "1.0.0")
        seen.append(service.id)
        ctx.cancel()

    run(setup, _unique("sync"), backend=anyio_backend)
    assert len(seen) == 1


# --------------------------------------------------------------------------- connect options


async def test_seed_style_options_choose_the_server_and_options() -> None:
    url = _unique("opts")
    async with Context() as ctx:
        await ctx.connect(WithServer(url), WithConnectionName("worker"))
        transport = ctx.transport
        broker = get_broker(url.removeprefix("memory://"))
        assert [c.name for c in broker.connections] == ["worker"]
    assert transport.is_closed


async def test_mapping_options_go_to_the_transport() -> None:
    url = _unique("mapping")
    async with Context() as ctx:
        await ctx.connect(url, {"name": "mapped"})
        assert [c.name for c in get_broker(url.removeprefix("memory://")).connections] == ["mapped"]


async def test_unknown_options_fail_clearly() -> None:
    async with Context() as ctx:
        with pytest.raises(TypeError, match="invalid connect option 42"):
            await ctx.connect(42)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="unknown transport URL"):
            await ctx.connect("nope://x")
        with pytest.raises(ValueError, match="invalid servers option"):
            await ctx.connect(WithServer(7))  # type: ignore[arg-type]


def test_the_options_record_names_unset_attributes() -> None:
    settings = ConnectSettings()
    settings.servers = "memory://"
    assert settings.to_dict() == {"servers": "memory://"}
    with pytest.raises(AttributeError, match="'name' has not been set"):
        _ = settings.name


async def test_connection_callbacks_from_options_and_methods_run() -> None:
    closed: list[str] = []

    async def from_option() -> None:
        closed.append("option")

    async with Context() as ctx:
        ctx.add_closed_callback(lambda: closed.append("method"))
        await ctx.connect(_unique("cb"), WithClosedCallback(from_option))
    assert sorted(closed) == ["method", "option"]


async def test_error_callback_receives_slow_consumer_errors() -> None:
    errors: list[Exception] = []
    got = anyio.Event()

    def on_error(error: Exception) -> None:
        errors.append(error)
        got.set()

    async with Context() as ctx:
        ctx.add_error_callback(on_error)
        await ctx.connect(_unique("slow"))
        sub = await ctx.transport.subscribe("flood", pending_msgs_limit=1)
        for _ in range(3):
            await ctx.transport.publish("flood", b"x")
        with anyio.fail_after(WAIT):
            await got.wait()
        assert sub.dropped >= 1
    assert isinstance(errors[0], SlowConsumerError)


async def test_disconnected_and_reconnected_callbacks_follow_transport_events() -> None:
    broker = MemoryBroker()
    tapped = TappedTransport(await broker.connect())
    events: list[str] = []
    done = anyio.Event()

    async def reconnected() -> None:
        events.append("reconnected")
        done.set()

    async with Context(client=tapped) as ctx:
        ctx.add_disconnected_callback(lambda: events.append("disconnected"))
        ctx.add_reconnected_callback(reconnected)
        await ctx.connect()
        tapped.inject(TransportEvent(TransportEventKind.DISCONNECTED))
        tapped.inject(TransportEvent(TransportEventKind.RECONNECTED))
        with anyio.fail_after(WAIT):
            await done.wait()
    assert events == ["disconnected", "reconnected"]
    assert tapped.is_closed


async def test_a_given_transport_takes_no_server_options() -> None:
    broker = MemoryBroker()
    transport = await broker.connect()
    async with Context(client=transport) as ctx:
        with pytest.raises(ValueError, match="connected transport"):
            await ctx.connect("memory://")
        await ctx.connect()
        with pytest.raises(RuntimeError, match="already connected"):
            await ctx.connect()
    assert transport.is_closed


async def test_a_closed_transport_is_refused() -> None:
    transport = await MemoryBroker().connect()
    await transport.close()
    async with Context(client=transport) as ctx:
        with pytest.raises(ConnectionClosedError):
            await ctx.connect()


# --------------------------------------------------------------------------- the context protocol


async def test_operations_need_an_entered_context() -> None:
    ctx = Context()
    with pytest.raises(RuntimeError, match="entered context"):
        await ctx.connect(_unique("x"))
    with pytest.raises(RuntimeError, match="entered context"):
        await ctx.add_service("svc", "1.0.0")
    async with ctx:
        with pytest.raises(RuntimeError, match="not connected"):
            _ = ctx.transport
    with pytest.raises(RuntimeError, match="only once"):
        async with ctx:
            pass  # pragma: no cover


async def test_errors_of_the_block_propagate_unchanged_after_cleanup() -> None:
    ctx = Context()

    async def fail_inside() -> None:
        async with ctx:
            await ctx.connect(_unique("boom"))
            raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        await fail_inside()
    assert ctx.transport.is_closed


async def test_outer_cancellation_still_cleans_up() -> None:
    with anyio.CancelScope() as scope:
        async with Context() as ctx:
            await ctx.connect(_unique("outer"))
            service = await ctx.add_service("svc", "1.0.0")
            scope.cancel()
            await anyio.sleep(WAIT)
    assert scope.cancelled_caught
    assert service.stopped()
    assert ctx.transport.is_closed


async def test_wait_for_returns_the_result_or_none_when_cancelled() -> None:
    async with Context() as ctx:
        assert await ctx.wait_for(_value("done")) == "done"
        with pytest.raises(ZeroDivisionError):
            await ctx.wait_for(_divide())

        async def cancel_soon() -> None:
            await anyio.wait_all_tasks_blocked()
            ctx.cancel()

        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel_soon)
            with anyio.fail_after(WAIT):
                assert await ctx.wait_for(anyio.sleep(WAIT * 10)) is None
        assert ctx.cancelled()
        coro = anyio.sleep(WAIT)
        assert await ctx.wait_for(coro) is None  # closed without running: no warning
        await ctx.wait()  # returns at once once cancelled


async def _value(value: str) -> str:
    await anyio.lowlevel.checkpoint()
    return value


async def _divide() -> float:
    return 1 / 0


async def test_reset_resets_every_service() -> None:
    async with Context() as ctx:
        await ctx.connect(_unique("reset"))
        service = await ctx.add_service("svc", "1.0.0")
        await service.add_endpoint("hello", hello)
        await Client(ctx.transport).request("hello")
        assert service.stats().endpoints[0].num_requests == 1
        ctx.reset()
        assert service.stats().endpoints[0].num_requests == 0


async def test_add_service_passes_extra_options() -> None:
    async with Context() as ctx:
        await ctx.connect(_unique("extra"))
        service = await ctx.add_service(
            "svc", "1.0.0", metadata={"a": "b"}, disable_queue_group=True
        )
        await service.add_endpoint("hello", hello)
        assert service.info().endpoints[0].queue_group is None
        assert dict(service.metadata) == {"a": "b"}


# --------------------------------------------------------------------------- a real nats-server


class TestContextOnNats:
    """Seed-style connect options (``nats_contrib.connect_opts``) on a real server."""

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"  # nats-py runs on asyncio only

    async def test_run_forever_with_seed_connect_options(self, micro_nats_server: Any) -> None:
        from nats_contrib.connect_opts import option

        closed = anyio.Event()
        seen: dict[str, Any] = {}

        async def on_closed() -> None:
            closed.set()

        async def setup(ctx: Context) -> None:
            service = await ctx.add_service("seeded", "1.0.0")
            await service.add_endpoint("hello", hello)
            seen["id"] = service.id
            async with Context() as probe:
                await probe.connect(micro_nats_server.url)
                client = Client(probe.transport)
                assert [p.id for p in await client.ping("seeded")] == [service.id]
                assert (await client.request("hello", b"nats")).data == b"hi nats"
            ctx.cancel()

        ctx = Context()
        with anyio.fail_after(WAIT * 2):
            await ctx.run_forever(
                setup,
                option.WithServer(micro_nats_server.url),
                option.WithConnectionName("seeded-context"),
                option.WithConnectionClosedCallback(on_closed),
            )
            await closed.wait()
        assert ctx.cancelled()
        assert "id" in seen

    async def test_an_unconnected_nats_py_client_is_connected_and_closed(
        self, micro_nats_server: Any
    ) -> None:
        from nats.aio.client import Client as NatsClient

        raw = NatsClient()
        async with Context(client=raw) as ctx:
            await ctx.connect(micro_nats_server.url)
            assert raw.is_connected
            service = await ctx.add_service("rawsvc", "1.0.0")
            assert [p.id for p in await Client(ctx.transport).ping("rawsvc")] == [service.id]
        assert raw.is_closed

    async def test_a_refused_connection_raises_a_transport_error(self) -> None:
        from transports.base import TransportError

        async with Context() as ctx:
            with pytest.raises(TransportError, match="cannot connect"):
                await ctx.connect(
                    "nats://127.0.0.1:1", {"allow_reconnect": False, "connect_timeout": 1}
                )
