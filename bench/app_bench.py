"""micro.App: concurrent listeners, and what handling each message in a task costs.

1. **100 requests at once to a listener that awaits 50 ms**, on memory (asyncio, trio) and
   on a loopback nats-server: the wall time of the whole burst (target: within 2x 50 ms,
   where one-at-a-time handling takes 100 x 50 ms), with the listener's statistics checked
   to count all 100.
2. **Sequential round trips through an App listener** on memory: the default (a task per
   message, bounded by ``max_concurrency``) vs ``ordered=True`` (no task per message) vs
   a core service endpoint, interleaved in rounds; ratios in one run.

Usage: ``python bench/app_bench.py [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from micro import add_service
from micro.app import App, Message
from testing.nats_server import NatsServer
from transports.memory import MemoryBroker

BURST = 100
NAP = 0.05
SEQUENTIAL = 3_000


async def burst(url: str) -> tuple[float, int]:
    """Seconds for ``BURST`` concurrent requests to a listener that awaits ``NAP``."""
    app = App(url, service_name="burst", service_version="1.0.0")

    @app.listen(subject="burst.nap")
    async def nap(msg: Message) -> int:
        await anyio.sleep(NAP)
        return 1

    async with app:
        caller = App(url)
        async with caller:
            await caller.request("burst.nap", None, timeout=5)  # warm: connected, routed
            started = time.perf_counter()
            async with anyio.create_task_group() as group:
                for _ in range(BURST):
                    group.start_soon(_ask, caller)
            elapsed = time.perf_counter() - started
        assert app.service is not None
        (endpoint,) = app.service.stats().endpoints
        return elapsed, endpoint.num_requests


async def _ask(app: App) -> None:
    await app.request("burst.nap", None, timeout=5)


def _trio_burst() -> tuple[float, int]:
    return anyio.run(burst, "memory://trio-burst", backend="trio")


async def _app_rtt(ordered: bool) -> float:
    """Microseconds per sequential request through an App listener on memory."""
    app = App(f"memory://rtt-{ordered}")

    @app.listen(subject="rtt.echo", data_type=bytes, ordered=ordered)
    async def echo(msg: Message) -> bytes:
        return msg.raw

    async with app:
        transport = app.transport
        assert transport is not None
        return await _time_requests(lambda: transport.request("rtt.echo", b"x", timeout=5))


async def _service_rtt() -> float:
    broker = MemoryBroker()
    connection = await broker.connect()
    service = add_service(connection, "rtt", "1.0.0")

    async def echo(request: Any) -> None:
        await request.respond(request.data())

    await service.add_endpoint("echo", echo, subject="rtt.echo")
    await service.start()
    try:
        return await _time_requests(lambda: connection.request("rtt.echo", b"x", timeout=5))
    finally:
        await service.stop()
        await connection.close()


async def _time_requests(call: Callable[[], Awaitable[Any]]) -> float:
    for _ in range(200):
        await call()
    started = time.perf_counter()
    for _ in range(SEQUENTIAL):
        await call()
    return (time.perf_counter() - started) / SEQUENTIAL * 1e6


async def main(rounds: int) -> None:
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    with NatsServer() as server:
        cases: dict[str, Callable[[], Awaitable[tuple[float, int]]]] = {
            "memory (asyncio)": lambda: burst("memory://asyncio-burst"),
            "memory (trio)": lambda: anyio.to_thread.run_sync(_trio_burst),
            "nats-server": lambda: burst(server.url),
        }
        walls: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(rounds):
            for name, case in cases.items():
                elapsed, counted = await case()
                assert counted == BURST + 1, f"{name}: stats counted {counted}"
                walls[name].append(elapsed)
    print(f"\n### {BURST} requests at once, listener awaits {NAP * 1000:.0f} ms\n")
    print("| where | best | median | median / 50 ms | stats counted |")
    print("|---|---|---|---|---|")
    for name, samples in walls.items():
        samples.sort()
        median = samples[len(samples) // 2]
        print(
            f"| {name} | {samples[0] * 1000:.1f} ms | {median * 1000:.1f} ms | "
            f"{median / NAP:.2f}x | {BURST} (+1 warm-up) |"
        )

    rtts: dict[str, list[float]] = {"App (default)": [], "App ordered=True": [], "service": []}
    for _ in range(rounds):
        rtts["App (default)"].append(await _app_rtt(False))
        rtts["App ordered=True"].append(await _app_rtt(True))
        rtts["service"].append(await _service_rtt())
    print(f"\n### sequential round trip on memory, {SEQUENTIAL:,} requests per round\n")
    print("| case | best µs | median µs | median / service |")
    print("|---|---|---|---|")
    base = sorted(rtts["service"])[rounds // 2]
    for name, samples in rtts.items():
        samples.sort()
        median = samples[rounds // 2]
        print(f"| {name} | {samples[0]:.1f} | {median:.1f} | {median / base:.2f} |")
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    anyio.run(main, parser.parse_args().rounds)
