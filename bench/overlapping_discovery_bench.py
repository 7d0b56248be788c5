"""Overlapping discovery on the memory broker: four gatherings at once on one connection.

INFO and STATS under two control prefixes (``$SRV`` and ``$ALT``), two instances each, all
four gatherings started together -- as ``micro info --stats`` and the Prometheus exporter
(one gathering per prefix) run them.  Reports the wall time of the four and checks that each
found its two instances.  Before the fix of ``transports.runtime.all_tasks_blocked``, two
waiters kept each other busy on asyncio until ``max_wait`` (2 s) and each gathering returned
only its first reply.

Usage: ``python bench/overlapping_discovery_bench.py [--rounds 50]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import anyio

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from micro import Client, add_service
from transports.memory import MemoryBroker

PREFIXES = ("$SRV", "$ALT")


async def measure(rounds: int) -> tuple[list[float], int]:
    broker = MemoryBroker()
    services = []
    for prefix in PREFIXES:
        for _ in range(2):
            service = add_service(await broker.connect(), "bench", "1.0.0", api_prefix=prefix)
            await service.start()
            services.append(service)
    transport = await broker.connect()
    connections = [transport, *(service.transport for service in services)]
    times: list[float] = []
    short = 0
    for _ in range(rounds):
        found: list[int] = []

        async def gather(client: Client, verb: str, found: list[int]) -> None:
            documents = await getattr(client, verb)(max_wait=2.0)
            found.append(len(documents))

        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for prefix in PREFIXES:
                client = Client(transport, api_prefix=prefix)
                tg.start_soon(gather, client, "info", found)
                tg.start_soon(gather, client, "stats", found)
        times.append(time.perf_counter() - start)
        short += sum(1 for count in found if count != 2)
    for service in services:
        await service.stop()
    for connection in connections:
        await connection.close()
    return times, short


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    print("| backend | min ms | median ms | gatherings short of 2 instances |")
    print("|---|---|---|---|")
    for backend in ("asyncio", "trio"):
        times, short = anyio.run(measure, args.rounds, backend=backend)
        print(
            f"| {backend} | {min(times) * 1e3:.2f} | {statistics.median(times) * 1e3:.2f} "
            f"| {short} of {4 * args.rounds} |"
        )


if __name__ == "__main__":
    main()
