"""Discovery on the memory broker: 3 instances, default limits, asyncio and trio (issue 14.3).

Run: ``python bench/discovery_memory_bench.py [--rounds 5]`` (needs ``pip install -e '.[dev]'``).
Prints markdown tables; copy them into ``bench/RESULTS.md``.  Never part of the test suite
(``tests/conformance`` checks the answers, on memory and on NATS).

Setup: one ``MemoryBroker``, 3 instances of one service, each on its own connection, and a
client connection.  Cases, in interleaved rounds (µs per call, min / median of the rounds'
averages), all with the default limits (``max_wait`` 2 s, 0.3 s of silence, no
``max_count``), as a test calls them:

* ``Client.ping()`` / ``info()`` / ``stats()``: the memory transport ends the gathering
  once every receiver is done (``transports.extensions.ReplyGatherer``);
* ``Client.ping()`` through a transport wrapper that hides the extension (what every call
  cost before: it waits out the 0.3 s of silence after the last reply).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import Case, ratio, run_interleaved, table
from micro.client import Client
from micro.service import Service, add_service
from testing.conformance._tapped_transport import TappedTransport
from transports.memory import MemoryBroker

INSTANCES = 3
REPEAT = 200


def _per_call_ms(repeat: int, call: Callable[[], Awaitable[int]]) -> Case:
    async def case() -> float:
        start = time.perf_counter()
        for _ in range(repeat):
            got = await call()
            if got != INSTANCES:
                raise AssertionError(f"expected {INSTANCES} replies, got {got}")
        return (time.perf_counter() - start) / repeat * 1e6

    return case


async def bench(rounds: int) -> str:
    broker = MemoryBroker()
    services: list[Service] = []
    for _ in range(INSTANCES):
        service = add_service(await broker.connect(), "bench", "1.0.0")
        await service.start()
        services.append(service)
    transport = await broker.connect()
    client = Client(transport)
    hidden = Client(TappedTransport(transport))

    async def ping() -> int:
        return len(await client.ping())

    async def info() -> int:
        return len(await client.info("bench"))

    async def stats() -> int:
        return len(await client.stats("bench"))

    async def ping_waiting() -> int:
        return len(await hidden.ping())

    try:
        await ping()  # warm up (first imports)
        results = await run_interleaved(
            {
                "Client.ping()": _per_call_ms(REPEAT, ping),
                "Client.info('bench')": _per_call_ms(REPEAT, info),
                "Client.stats('bench')": _per_call_ms(REPEAT, stats),
                "Client.ping(), extension hidden (waits 0.3 s)": _per_call_ms(2, ping_waiting),
            },
            rounds=rounds,
        )
    finally:
        for service in services:
            await service.stop()
            await service.transport.close()
        await transport.close()
    speedup = ratio(results, "Client.ping(), extension hidden (waits 0.3 s)", "Client.ping()")
    return f"{table(results, 'µs/call')}\n\n- ping: {speedup:,.0f}x faster than waiting"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for backend in ("asyncio", "trio"):
        output = anyio.run(bench, args.rounds, backend=backend)
        print(f"## Discovery of {INSTANCES} instances on memory, {backend} (µs per call)\n")
        print(output)
        print()


if __name__ == "__main__":
    main()
