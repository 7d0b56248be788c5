"""``python -m micro demo``: a sample service, discovered and called, with no server needed.

By default everything runs on a private in-process broker (``transports.memory``); with
``--server URL`` (or any connection flag, or a nats CLI context named with ``--context``)
the same happens on a real nats-server.  The demo starts two instances of
the sample service ``greeter`` (endpoints ``greeter.hello`` and ``greeter.echo``; ``hello``
answers an empty name with the error reply ``400: a name is required``), then shows what
``ls``, ``ping``, ``request`` (one of them failing with that error reply), ``info`` and
``stats`` print, stops the service and returns 0.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from micro.cli.commands import (
    CommandError,
    Invocation,
    run_info,
    run_ls,
    run_ping,
    run_request,
    run_stats,
)
from micro.cli.connection import ConnectTarget, open_connection
from micro.client import Client
from micro.request import Request
from micro.service import Service, add_service
from transports.base import Transport

__all__ = ["DEMO_SERVICE", "echo", "hello", "run_demo", "start_demo_service"]

DEMO_SERVICE = "greeter"
INSTANCES = 2


async def hello(request: Request) -> None:
    """Greet the name in the payload; an empty name gets the error reply 400."""
    name = request.data().decode("utf-8", errors="replace").strip()
    if not name:
        await request.respond_error(400, "a name is required", data=b"send a name as the payload")
        return
    await request.respond(f"Hello, {name}!".encode())


async def echo(request: Request) -> None:
    """Answer with the request payload and headers."""
    await request.respond(request.data(), headers=request.headers() or None)


async def start_demo_service(transport: Transport) -> Service:
    """Create and start one instance of the sample service on ``transport``."""
    service = add_service(
        transport,
        DEMO_SERVICE,
        "1.0.0",
        description="the sample service of 'python -m micro demo'",
        metadata={"example": "true"},
    )
    group = service.add_group("greeter")
    await group.add_endpoint("hello", hello, metadata={"payload": "a name"})
    await group.add_endpoint("echo", echo)
    await service.start()
    return service


@asynccontextmanager
async def _transports(target: ConnectTarget | None, count: int) -> AsyncIterator[list[Transport]]:
    async with AsyncExitStack() as stack:
        if target is None:
            from transports.memory import MemoryBroker

            broker = MemoryBroker()
            made: list[Transport] = []
            for _ in range(count):
                transport = await broker.connect()
                stack.push_async_callback(transport.close)
                made.append(transport)
            yield made
        else:
            yield [await stack.enter_async_context(open_connection(target)) for _ in range(count)]


async def run_demo(
    inv: Invocation, target: ConnectTarget | None = None, prog: str = "python -m micro"
) -> int:
    """Run the demo, writing to ``inv.out`` (commands shown as ``prog ...``); on
    ``target``'s server, else on a private in-memory broker.  0 when everything behaved as
    shown."""
    shown = target.shown_url if target is not None else None
    where = f"on {shown}" if shown else "(in-memory broker, no server needed)"
    option = f" --server {shown}" if shown else ""
    inv.json = False
    async with _transports(target, INSTANCES + 1) as connections:
        *service_connections, client_connection = connections
        services = [await start_demo_service(t) for t in service_connections]
        try:
            inv.print(
                f"Started {INSTANCES} instances of the sample service {DEMO_SERVICE!r} {where}."
            )
            client = Client(client_connection)

            def step(command: str) -> None:
                inv.print()
                inv.print(f"$ {prog} {command}{option}")

            step("ls")
            await run_ls(client, inv)
            step(f"ping {DEMO_SERVICE}")
            await run_ping(client, inv, DEMO_SERVICE, None)
            step("request greeter.hello world")
            await run_request(client, inv, "greeter.hello", b"world", None)
            step("request greeter.echo 'ping?' --header X-Demo:1")
            await run_request(client, inv, "greeter.echo", b"ping?", {"X-Demo": "1"})
            step("request greeter.hello ''")
            failed_as_expected = False
            try:
                await run_request(client, inv, "greeter.hello", b"", None)
            except CommandError as error:
                inv.print(f"error: {error}   (exit status {error.code})")
                failed_as_expected = True
            step(f"info {DEMO_SERVICE} {services[0].id}")
            await run_info(client, inv, DEMO_SERVICE, services[0].id)
            step(f"stats {DEMO_SERVICE}")
            await run_stats(client, inv, DEMO_SERVICE, None)
        finally:
            for service in services:
                await service.stop()
    inv.print()
    inv.print("Stopped the sample service.")
    return 0 if failed_as_expected else 1
