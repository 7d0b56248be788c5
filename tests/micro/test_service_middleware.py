"""Middlewares: one ``(request, next)`` interface at service, group and endpoint level."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from micro.errors import ServiceError
from micro.middleware import Middleware, compose
from micro.request import Handler, Request
from micro.service import add_service
from testing.stub_request import make_request
from transports.base import Transport
from transports.memory import MemoryBroker

pytestmark = pytest.mark.anyio

WAIT = 5.0


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def connections() -> AsyncIterator[tuple[Transport, Transport]]:
    broker = MemoryBroker(seed=1)
    service_side, client = await broker.connect(), await broker.connect()
    yield service_side, client
    await service_side.close()
    await client.close()


def tracing(label: str, trace: list[str]) -> Middleware:
    async def middleware(request: Request, call_next: Handler) -> None:
        trace.append(f"{label}>")
        await call_next(request)
        trace.append(f"<{label}")

    return middleware


async def test_composition_order_is_service_groups_endpoint_handler(
    connections: tuple[Transport, Transport],
) -> None:
    transport, client = connections
    trace: list[str] = []

    async def handler(request: Request) -> None:
        trace.append("handler")
        await request.respond(b"ok")

    service = add_service(
        transport, "svc", "1.0.0", middlewares=[tracing("s1", trace), tracing("s2", trace)]
    )
    outer = service.add_group("outer", middlewares=[tracing("g1", trace)])
    inner = outer.add_group("inner", middlewares=[tracing("g2", trace), tracing("g3", trace)])
    await inner.add_endpoint("ep", handler, middlewares=[tracing("e1", trace)])
    async with service:
        assert (await client.request("outer.inner.ep", timeout=WAIT)).data == b"ok"
    assert trace == [
        "s1>", "s2>", "g1>", "g2>", "g3>", "e1>", "handler",
        "<e1", "<g3", "<g2", "<g1", "<s2", "<s1",
    ]  # fmt: skip


async def test_group_middlewares_do_not_leak_to_siblings(
    connections: tuple[Transport, Transport],
) -> None:
    transport, client = connections
    trace: list[str] = []

    async def handler(request: Request) -> None:
        await request.respond(b"ok")

    service = add_service(transport, "svc", "1.0.0")
    await service.add_group("a", middlewares=[tracing("a", trace)]).add_endpoint(
        "ep_a", handler, subject="ep"
    )
    await service.add_group("b").add_endpoint("ep_b", handler, subject="ep")
    async with service:
        await client.request("b.ep", timeout=WAIT)
        assert trace == []
        await client.request("a.ep", timeout=WAIT)
        assert trace == ["a>", "<a"]


async def test_middleware_may_answer_without_calling_next(
    connections: tuple[Transport, Transport],
) -> None:
    transport, client = connections
    called: list[bool] = []

    async def guard(request: Request, call_next: Handler) -> None:
        if request.headers().get("token") != "secret":
            await request.respond_error(401, "unauthorized")
            return
        await call_next(request)

    async def handler(request: Request) -> None:
        called.append(True)
        await request.respond(b"welcome")

    async with add_service(transport, "svc", "1.0.0", middlewares=[guard]) as service:
        await service.add_endpoint("ep", handler)
        denied = await client.request("ep", timeout=WAIT)
        assert (denied.headers or {}).get("Nats-Service-Error-Code") == "401"
        allowed = await client.request("ep", headers={"token": "secret"}, timeout=WAIT)
        assert allowed.data == b"welcome"
        assert called == [True]
        stats = service.stats().endpoints[0]
        assert (stats.num_requests, stats.num_errors, stats.last_error) == (
            2,
            1,
            "401:unauthorized",
        )


async def test_middleware_exceptions_are_handled_like_handler_exceptions(
    connections: tuple[Transport, Transport],
) -> None:
    transport, client = connections

    async def translate(request: Request, call_next: Handler) -> None:
        try:
            await call_next(request)
        except KeyError as exc:
            raise ServiceError(404, f"unknown {exc.args[0]}") from exc

    async def handler(request: Request) -> None:
        raise KeyError("thing")

    async with add_service(transport, "svc", "1.0.0") as service:
        await service.add_endpoint("ep", handler, middlewares=[translate])
        reply = await client.request("ep", timeout=WAIT)
        assert dict(reply.headers or {}) == {
            "Nats-Service-Error": "unknown thing",
            "Nats-Service-Error-Code": "404",
        }


async def test_compose_is_done_once_and_is_free_without_middlewares() -> None:
    async def handler(request: Request) -> None:
        await request.respond(b"h")

    assert compose(handler, []) is handler
    trace: list[str] = []
    chained = compose(handler, [tracing("m", trace)])
    stubs = [make_request("x"), make_request("x")]
    for stub in stubs:
        await chained(stub)
    assert trace == ["m>", "<m", "m>", "<m"]
    assert [stub.response_data() for stub in stubs] == [b"h", b"h"]
