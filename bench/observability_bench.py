"""Observability benchmark (issue 15): exporter scrape, tracing overhead, uvloop; one run.

Run: ``python bench/observability_bench.py [--rounds 5] [--sections exporter,tracing,uvloop]``
(``spans`` is a fourth section, not run by default)
(needs ``pip install -e '.[dev]'``: the SDK, prometheus-client and uvloop are dev deps).
Prints markdown tables; copy them into ``bench/RESULTS.md``.  Every section runs its cases in
interleaved rounds and compares them within the run.

* ``exporter``: 10 services x 3 instances (ours, in a child process, each instance on its own
  connection) on a loopback nats-server.  A full scrape of the exporter over HTTP (``GET
  /metrics``: gather every ``$SRV.STATS`` reply, build and render the metrics) against a raw
  nats-py gather of ``$SRV.STATS`` (subscribe an inbox, publish, read replies) that ends on
  the same rule -- the first silence of ``window`` seconds, as neither knows how many
  instances exist -- and against a raw gather that knows the count (stops at the 30th reply).
  Windows: 0.3 s (the default) and 0.05 s (makes the exporter's own work visible).
* ``tracing``: requests over NATS to an echo service in its own child process (one per
  case), from a client in this process, both ends uninstrumented, instrumented with a no-op
  tracer provider, or with the SDK's ``TracerProvider`` + ``BatchSpanProcessor`` (an
  exporter that drops the batches: the SDK's work without the I/O), and with the SDK
  sampling 10 % of traces (``ParentBased(TraceIdRatioBased(0.1))``); sequential and 50 in
  flight.  Rates in requests/s; ratios to uninstrumented.  The ``@service`` cases
  instrument the service alone, as issue 15's target reads ("instrumented services lose at
  most ..."): a plain client sends every request with a sampled caller's ``traceparent``
  (what a traced caller in another process sends), against an uninstrumented service
  receiving the same header.  Besides the rates, each case records the CPU time the echo
  service's process spent per request (every thread, from Linux's ``/proc/<pid>/task/*/
  schedstat``, in ns), and prints ``uninstrumented CPU / instrumented CPU``: a second view
  of the cost, not disturbed by the other processes' scheduling as the rates are, but still
  not the instrumentation's cost alone (sequentially each request pays the process's wake-up;
  in flight a slower service handles fewer messages per wake-up).  Two more cases measure the SDK's
  floor in the same run: the same spans (names, kinds, attributes) made with bare
  ``start_span`` / ``end`` calls at both ends (:class:`_BareSpans`), without and with the
  W3C propagation (``inject`` / ``extract`` of ``traceparent``), and nothing else (no current
  span while the handler runs, no error handling): what any instrumentation must pay.
* ``spans``: the pieces of a traced request in one process without I/O, microseconds per
  call: bare SDK spans (the attributes of ours), the W3C propagator's ``extract`` and
  ``inject``, and each end's floor (:class:`_BareSpans`) against ours, with the SDK and with
  a no-op provider.  ``--span-case NAME --calls N`` runs one case untimed, for callgrind.
* ``uvloop``: the request round trip through a service on the memory transport and over
  NATS, each on a fresh asyncio loop and on a fresh uvloop loop, alternating.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anyio
import nats
from opentelemetry.propagate import get_global_textmap
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import NoOpTracerProvider, SpanKind, set_span_in_context

from bench._harness import Result, run_interleaved, table
from micro import Client, Request, add_service
from micro.metrics import StatsExporter, serve_exporter
from micro.middleware import EndpointScope
from micro.request import TransportRequest
from micro.tracing import Tracing
from testing.nats_server import NatsServer
from transports.base import Msg
from transports.memory import MemoryBroker
from transports.nats import NatsTransport

SERVICES = 10
INSTANCES = 3


# --------------------------------------------------------------------------- exporter


async def _serve_instances(url: str) -> None:
    """Child process: 10 services x 3 instances until stdin closes."""

    async def ok(request: Request) -> None:
        await request.respond(b"ok")

    services = []
    for index in range(SERVICES):
        for _ in range(INSTANCES):
            service = add_service(await NatsTransport.connect(url), f"svc{index}", "1.0.0")
            await service.start()
            for endpoint in ("a", "b"):
                await service.add_endpoint(endpoint, ok, subject=f"svc{index}.{endpoint}")
            services.append(service)
    print("ready", flush=True)
    await anyio.to_thread.run_sync(sys.stdin.read)
    for service in services:
        await service.stop()
        await service.transport.close()


async def exporter_section(url: str, rounds: int) -> None:
    child = subprocess.Popen(  # noqa: ASYNC220 - once, before anything is measured
        [sys.executable, __file__, "--serve-instances", url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    if child.stdout.readline().strip() != "ready":
        raise RuntimeError("the services process did not start")
    expected = SERVICES * INSTANCES
    raw = await nats.connect(url)
    transport = await NatsTransport.connect(url)
    servers = AsyncExitStack()
    try:
        cases: dict[str, Callable[[], Awaitable[float]]] = {}
        for window in (0.3, 0.05):
            exporter = StatsExporter(transport, max_wait=5, max_interval=window)
            server = await servers.enter_async_context(serve_exporter(exporter, "127.0.0.1:0"))

            def scrape_case(
                server_url: str = server.url,
            ) -> Callable[[], Awaitable[float]]:
                async def case() -> float:
                    def get() -> bytes:
                        with urllib.request.urlopen(server_url, timeout=10) as response:
                            return bytes(response.read())

                    start = time.perf_counter()
                    body = await anyio.to_thread.run_sync(get)
                    elapsed = (time.perf_counter() - start) * 1e3
                    found = body.count(b"nats_service_up{")
                    if found != expected:
                        raise AssertionError(f"scrape saw {found} instances, not {expected}")
                    return elapsed

                return case

            def raw_case(
                window: float = window, known: bool = False
            ) -> Callable[[], Awaitable[float]]:
                async def case() -> float:
                    start = time.perf_counter()
                    inbox = raw.new_inbox()
                    sub = await raw.subscribe(inbox)
                    await raw.publish("$SRV.STATS", b"", reply=inbox)
                    replies = []
                    while True:
                        if known and len(replies) == expected:
                            break
                        try:
                            replies.append(await sub.next_msg(timeout=window if not known else 5))
                        except nats.errors.TimeoutError:
                            break
                    await sub.unsubscribe()
                    elapsed = (time.perf_counter() - start) * 1e3
                    if len(replies) != expected:
                        raise AssertionError(f"raw gather got {len(replies)}, not {expected}")
                    return elapsed

                return case

            cases[f"exporter scrape over HTTP, {window} s window"] = scrape_case()
            cases[f"raw nats-py $SRV.STATS gather, {window} s window"] = raw_case()
        cases["raw nats-py $SRV.STATS gather, stops at the 30th reply"] = raw_case(known=True)
        results = await run_interleaved(cases, rounds=rounds)
    finally:
        await servers.aclose()
        await raw.close()
        await transport.close()
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
    print(f"## Exporter scrape, {SERVICES} services x {INSTANCES} instances (ms per scrape)\n")
    print(table(results, "ms/scrape"))
    print()
    for window in (0.3, 0.05):
        scrape = results[f"exporter scrape over HTTP, {window} s window"]
        gather = results[f"raw nats-py $SRV.STATS gather, {window} s window"]
        print(
            f"- scrape / raw gather, {window} s window: {scrape.median / gather.median:.3f} "
            f"(medians), {_paired(scrape, gather):.3f} (median of per-round ratios)"
        )
    print()


def _paired(slow: Result, fast: Result) -> float:
    return statistics.median(s / f for s, f in zip(slow.samples, fast.samples, strict=True))


# --------------------------------------------------------------------------- tracing


class _DropExporter(SpanExporter):
    """The SDK's export path without the I/O: batches are accepted and dropped."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


class _BareSpans:
    """The SDK floor: the spans ``micro.tracing`` makes, from bare SDK calls.

    ``middleware`` (bound per endpoint, as ours is) opens the same SERVER span with the same
    eleven attributes around the handler; ``client`` the same CLIENT span with the same five
    around a plain ``Client.request``.  With ``propagate`` the client injects the span's
    ``traceparent`` and the service extracts it as the parent; without, neither does.
    """

    def __init__(self, provider: TracerProvider, propagate: bool) -> None:
        self.tracer = provider.get_tracer("bench.floor")
        self.propagate = propagate
        self.middleware = self

    async def __call__(self, request: Request, next: Any) -> None:
        raise AssertionError("used only bound to an endpoint (bind_endpoint)")

    def bind_endpoint(self, scope: EndpointScope) -> Callable[[Request, Any], Awaitable[None]]:
        tracer, textmap = self.tracer, get_global_textmap() if self.propagate else None
        name = f"process {scope.subject}"
        attributes = {
            "messaging.system": "nats",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.template": scope.subject,
            "messaging.nats.service.name": scope.service,
            "messaging.nats.service.version": scope.version,
            "messaging.nats.service.instance.id": scope.service_id,
            "messaging.nats.service.endpoint.name": scope.endpoint,
        }
        if scope.queue_group is not None:
            attributes["messaging.consumer.group.name"] = scope.queue_group

        async def bare(request: Request, next: Any) -> None:
            assert isinstance(request, TransportRequest)
            msg = request.msg
            headers = msg.headers
            parent = textmap.extract(headers) if textmap is not None and headers else None
            span = tracer.start_span(
                name,
                parent,
                SpanKind.SERVER,
                {
                    **attributes,
                    "messaging.destination.name": msg.subject,
                    "messaging.message.body.size": len(msg.data),
                },
            )
            await next(request)
            span.end()

        return bare

    def client(self, nc: NatsTransport) -> Client:
        floor = self

        class BareClient(Client):
            async def request(
                self,
                subject: str,
                data: bytes | None = None,
                headers: Any = None,
                timeout: float = 1,  # noqa: ASYNC109 - Client.request's signature
            ) -> Any:
                span = floor.tracer.start_span(
                    f"request {subject}",
                    None,
                    SpanKind.CLIENT,
                    {
                        "messaging.system": "nats",
                        "messaging.destination.name": subject,
                        "messaging.operation.type": "send",
                        "messaging.operation.name": "request",
                        "messaging.message.body.size": len(data) if data else 0,
                    },
                )
                if floor.propagate:
                    headers = {}
                    get_global_textmap().inject(headers, set_span_in_context(span))
                reply = await super().request(subject, data, headers, timeout)
                span.end()
                return reply

        return BareClient(nc)


def _tracing_for(mode: str) -> tuple[Tracing | _BareSpans | None, TracerProvider | None]:
    if mode == "none":
        return None, None
    if mode == "noop":
        return Tracing(tracer_provider=NoOpTracerProvider()), None
    # "sdk": every trace recorded; "sdk10": 10 % of new traces (callers' decisions followed)
    sampler = ParentBased(TraceIdRatioBased(0.1)) if mode == "sdk10" else None
    sdk = TracerProvider(sampler=sampler)
    sdk.add_span_processor(BatchSpanProcessor(_DropExporter()))
    if mode.startswith("bare"):
        return _BareSpans(sdk, propagate=mode == "bare+w3c"), sdk
    return Tracing(tracer_provider=sdk), sdk


SERVICE_ONLY = "@service"


def _cpu_ns(pid: int) -> int:
    """The CPU time every thread of process ``pid`` has used so far, in ns (Linux)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that ended while we read
            total += int((task / "schedstat").read_text().split()[0])
    return total


def _echo_subject(mode: str) -> str:
    return "echo." + mode.replace("+", "_").replace("@", "_")


async def _serve_echo(url: str, mode: str) -> None:
    """Child process: one echo service instrumented as ``mode`` until stdin closes."""
    tracing, sdk = _tracing_for(mode.removesuffix(SERVICE_ONLY))

    async def echo(request: Request) -> None:
        await request.respond(request.data())

    transport = await NatsTransport.connect(url)
    middlewares = [tracing.middleware] if tracing else []
    service = add_service(transport, "echo", "1.0.0", middlewares=middlewares)
    await service.start()
    await service.add_endpoint("echo", echo, subject=_echo_subject(mode), max_concurrency=64)
    print("ready", flush=True)
    await anyio.to_thread.run_sync(sys.stdin.read)
    await service.stop()
    await transport.close()
    if sdk is not None:
        sdk.shutdown()


MODES = {
    "none": "uninstrumented",
    "noop": "no-op tracer provider",
    "sdk": "SDK + BatchSpanProcessor",
    "sdk10": "SDK, 10 % of traces sampled",
    "bare": "floor: the same SDK spans, bare calls, no propagation",
    "bare+w3c": "floor: the same SDK spans, bare calls, + traceparent",
    "none@service": "service only: uninstrumented, caller sends traceparent",
    "noop@service": "service only: no-op tracer provider",
    "sdk@service": "service only: SDK + BatchSpanProcessor",
    "bare+w3c@service": "service only: floor, the same SDK span + extract, bare calls",
}


def _baseline(mode: str) -> str:
    return "none@service" if mode.endswith(SERVICE_ONLY) else "none"


async def tracing_section(url: str, rounds: int) -> None:
    children = {}
    for mode in MODES:
        child = subprocess.Popen(  # noqa: ASYNC220 - once, before anything is measured
            [sys.executable, __file__, "--serve-echo", url, mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the {mode} echo service did not start")
        children[mode] = child
    clients: dict[str, Client] = {}
    providers = []
    for mode in MODES:
        tracing, sdk = _tracing_for("none" if mode.endswith(SERVICE_ONLY) else mode)
        caller = await NatsTransport.connect(url)
        clients[mode] = tracing.client(caller) if tracing else Client(caller)
        if sdk is not None:
            providers.append(sdk)

    cpu: dict[str, list[float]] = {}  # case name -> the service's CPU µs per request, a round each

    def sequential(mode: str, count: int = 1000) -> Callable[[], Awaitable[float]]:
        client, subject = clients[mode], _echo_subject(mode)
        headers = _TRACEPARENT if mode.endswith(SERVICE_ONLY) else None
        pid, samples = children[mode].pid, cpu.setdefault(f"{MODES[mode]}, sequential", [])

        async def case() -> float:
            used = _cpu_ns(pid)
            start = time.perf_counter()
            for _ in range(count):
                await client.request(subject, b"x" * 64, headers, timeout=5)
            rate = count / (time.perf_counter() - start)
            samples.append((_cpu_ns(pid) - used) / count / 1000)
            return rate

        return case

    def in_flight(mode: str, count: int = 3000, width: int = 50) -> Callable[[], Awaitable[float]]:
        client, subject = clients[mode], _echo_subject(mode)
        headers = _TRACEPARENT if mode.endswith(SERVICE_ONLY) else None

        pid, samples = children[mode].pid, cpu.setdefault(f"{MODES[mode]}, 50 in flight", [])

        async def worker(share: int) -> None:
            for _ in range(share):
                await client.request(subject, b"x" * 64, headers, timeout=5)

        async def case() -> float:
            used = _cpu_ns(pid)
            start = time.perf_counter()
            async with anyio.create_task_group() as group:
                for _ in range(width):
                    group.start_soon(worker, count // width)
            rate = count / (time.perf_counter() - start)
            samples.append((_cpu_ns(pid) - used) / count / 1000)
            return rate

        return case

    cases = {}
    for mode, name in MODES.items():
        cases[f"{name}, sequential"] = sequential(mode)
    for mode, name in MODES.items():
        cases[f"{name}, 50 in flight"] = in_flight(mode)
    try:
        results = await run_interleaved(cases, rounds=rounds)
    finally:
        for client in clients.values():
            await client.transport.close()
        for sdk in providers:
            sdk.shutdown()
        for child in children.values():
            assert child.stdin is not None
            child.stdin.close()
            child.wait(timeout=30)
    print("## Tracing overhead over NATS: service and client each in its own process (req/s)\n")
    lines = [
        "| case | req/s, max / median | service CPU µs/request, min / median |",
        "|---|---|---|",
    ]
    for result in results.values():
        used = cpu[result.name]
        lines.append(
            f"| {result.name} | {max(result.samples):,.0f} / {result.median:,.0f} "
            f"| {min(used):.1f} / {statistics.median(used):.1f} |"
        )
    print("\n".join(lines))
    print()
    compared = [  # (instrumented case, its uninstrumented baseline)
        (f"{name}, {mode}", f"{MODES[_baseline(key)]}, {mode}")
        for mode in ("sequential", "50 in flight")
        for key, name in MODES.items()
        if key != _baseline(key)
    ]
    for traced_name, base_name in compared:
        traced_cpu, base_cpu = cpu[traced_name], cpu[base_name]
        kept = (b / t for b, t in zip(base_cpu, traced_cpu, strict=True))
        print(
            f"- service CPU: {base_name} / {traced_name}: "
            f"{statistics.median(base_cpu) / statistics.median(traced_cpu):.3f} (medians), "
            f"{statistics.median(kept):.3f} (median of per-round ratios)"
        )
    print()
    for traced_name, base_name in compared:
        traced, base = results[traced_name], results[base_name]
        print(
            f"- {traced_name} / {base_name}: {traced.median / base.median:.3f} "
            f"(medians), {_paired(traced, base):.3f} (median of per-round ratios)"
        )
    for mode in ("sequential", "50 in flight"):
        for ours_key, floor in (
            ("sdk", "bare"),
            ("sdk", "bare+w3c"),
            ("sdk@service", "bare+w3c@service"),
        ):
            ours = results[f"{MODES[ours_key]}, {mode}"]
            bare = results[f"{MODES[floor]}, {mode}"]
            print(
                f"- {MODES[ours_key]} / {MODES[floor]}, {mode}: {ours.median / bare.median:.3f} "
                f"(medians), {_paired(ours, bare):.3f} (median of per-round ratios)"
            )
    print()


# --------------------------------------------------------------------------- spans

_TRACEPARENT = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
_SCOPE = EndpointScope("echo", "1.0.0", "0123456789ABCDEFGHIJKL", "echo", "echo", "q")


async def _span_cases() -> tuple[dict[str, Callable[[], Awaitable[None]]], TracerProvider]:
    """One call of each piece of a traced request, single process, no I/O: the SDK's spans,
    the propagator, the bare-call floor of each end and ours (see ``spans_section``)."""
    sdk = TracerProvider()
    sdk.add_span_processor(BatchSpanProcessor(_DropExporter()))
    tracing, noop = Tracing(tracer_provider=sdk), Tracing(tracer_provider=NoOpTracerProvider())
    tracer, textmap = tracing.tracer, get_global_textmap()
    floor = _BareSpans(sdk, propagate=True)
    message = Msg("echo", b"x" * 64, _TRACEPARENT, "_INBOX.reply")
    untraced = Msg("echo", b"x" * 64, None, "_INBOX.reply")  # a caller without a trace
    reply = Msg("_INBOX.reply", b"x" * 64)
    connection = await MemoryBroker().connect()

    async def canned(subject: str, data: bytes, headers: Any = None, timeout: float = 1) -> Msg:  # noqa: ASYNC109
        return reply

    connection.request = canned  # type: ignore[method-assign]  # requests answered at once
    plain, ours_client = Client(connection), tracing.client(connection)
    noop_client, floor_client = noop.client(connection), floor.client(connection)  # type: ignore[arg-type]
    parent = textmap.extract(_TRACEPARENT)
    server_attributes = {
        "messaging.system": "nats",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.template": "echo",
        "messaging.nats.service.name": "echo",
        "messaging.nats.service.version": "1.0.0",
        "messaging.nats.service.instance.id": "0123456789ABCDEFGHIJKL",
        "messaging.nats.service.endpoint.name": "echo",
        "messaging.consumer.group.name": "q",
        "messaging.destination.name": "echo",
        "messaging.message.body.size": 64,
    }
    client_attributes = {
        "messaging.system": "nats",
        "messaging.destination.name": "echo",
        "messaging.operation.type": "send",
        "messaging.operation.name": "request",
        "messaging.message.body.size": 64,
    }
    sampled = set_span_in_context(tracer.start_span("a sampled parent"))

    async def handler(request: Request) -> None:
        pass

    def through(middleware: Any, msg: Msg = message) -> Callable[[], Awaitable[None]]:
        async def case() -> None:
            await middleware(TransportRequest(connection, msg), handler)

        return case

    def requesting(client: Client) -> Callable[[], Awaitable[None]]:
        async def case() -> None:
            await client.request("echo", b"x" * 64)

        return case

    async def bare_span() -> None:
        tracer.start_span("x").end()

    async def server_span() -> None:
        tracer.start_span("process echo", parent, SpanKind.SERVER, server_attributes).end()

    async def client_span() -> None:
        tracer.start_span("request echo", None, SpanKind.CLIENT, client_attributes).end()

    async def extract() -> None:
        textmap.extract(_TRACEPARENT)

    async def inject() -> None:
        textmap.inject({}, sampled)

    async def bare_handler() -> None:
        await handler(TransportRequest(connection, message))

    cases = {
        "SDK span, no attributes, no parent": bare_span,
        "SDK SERVER span, 11 attributes, remote parent": server_span,
        "SDK CLIENT span, 5 attributes": client_span,
        "W3C extract (global propagator)": extract,
        "W3C inject (global propagator)": inject,
        "service: the handler alone": bare_handler,
        "service: floor (extract + the same span, bare calls)": through(
            floor.bind_endpoint(_SCOPE)
        ),
        "service: ours, SDK": through(tracing.middleware.bind_endpoint(_SCOPE)),
        "service: ours, no-op provider": through(noop.middleware.bind_endpoint(_SCOPE)),
        "service: ours, no-op provider, no trace context": through(
            noop.middleware.bind_endpoint(_SCOPE), untraced
        ),
        "client: Client.request alone (canned reply)": requesting(plain),
        "client: floor (the same span + inject, bare calls)": requesting(floor_client),
        "client: ours, SDK": requesting(ours_client),
        "client: ours, no-op provider": requesting(noop_client),
    }
    return cases, sdk


async def spans_section(rounds: int, calls: int = 1000) -> None:
    """Microseconds per call of each piece (``_span_cases``), interleaved rounds.

    ``calls`` stays under the batch processor's queue (2,048 spans): a tight loop outruns
    its export thread, and dropped spans cost a log record each.  The queue is flushed
    after each sample, untimed."""
    cases, sdk = await _span_cases()

    def timed(case: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[float]]:
        async def run() -> float:
            start = time.perf_counter()
            for _ in range(calls):
                await case()
            elapsed = time.perf_counter() - start
            sdk.force_flush()
            return elapsed / calls * 1e6

        return run

    results = await run_interleaved({name: timed(case) for name, case in cases.items()}, rounds)
    sdk.shutdown()
    print(f"## The pieces of a traced request, single process ({calls:,} calls per sample)\n")
    print(table(results, "µs/call"))
    print()
    for side in ("service", "client"):
        alone = "the handler alone" if side == "service" else "Client.request alone (canned reply)"
        floor_name = next(name for name in results if name.startswith(f"{side}: floor"))
        for stat in ("best", "median"):
            base = getattr(results[f"{side}: {alone}"], stat)
            floor = getattr(results[floor_name], stat) - base
            ours = getattr(results[f"{side}: ours, SDK"], stat) - base
            print(
                f"- {side} side, {stat} minus {alone!r}: floor {floor:.1f} µs, ours {ours:.1f} "
                f"µs (ours adds {ours - floor:.1f} µs, {(ours - floor) / ours:.0%} of our span)"
            )
    print()


async def _run_span_case(name: str, calls: int) -> None:
    """Run one ``_span_cases`` case ``calls`` times, untimed (for callgrind: run it with two
    counts and difference the instruction totals)."""
    cases, sdk = await _span_cases()
    case = cases[name]
    for _ in range(calls):
        await case()
    sdk.shutdown()


# --------------------------------------------------------------------------- uvloop


async def _round_trips(url: str | None, count: int) -> float:
    async def echo(request: Request) -> None:
        await request.respond(request.data())

    if url is None:
        broker = MemoryBroker()
        server_side, client_side = await broker.connect(), await broker.connect()
    else:
        server_side, client_side = (
            await NatsTransport.connect(url),
            await NatsTransport.connect(url),
        )
    service = add_service(server_side, "echo", "1.0.0")
    await service.start()
    await service.add_endpoint("echo", echo)
    for _ in range(200):  # warm-up
        await client_side.request("echo", b"x", timeout=5)
    start = time.perf_counter()
    for _ in range(count):
        await client_side.request("echo", b"x", timeout=5)
    rate = count / (time.perf_counter() - start)
    await service.stop()
    await server_side.close()
    await client_side.close()
    return rate


def uvloop_section(url: str, rounds: int) -> None:
    cases = {
        "memory, asyncio": (None, False, 20000),
        "memory, uvloop": (None, True, 20000),
        "NATS, asyncio": (url, False, 3000),
        "NATS, uvloop": (url, True, 3000),
    }
    results = {name: Result(name) for name in cases}
    for _ in range(rounds):
        for name, (target, use_uvloop, count) in cases.items():
            rate = anyio.run(
                _round_trips, target, count, backend_options={"use_uvloop": use_uvloop}
            )
            results[name].samples.append(rate)
    print("## uvloop: sequential round trips through a service (requests/s, max / median)\n")
    lines = ["| case | req/s, max / median |", "|---|---|"]
    for result in results.values():
        lines.append(f"| {result.name} | {max(result.samples):,.0f} / {result.median:,.0f} |")
    print("\n".join(lines))
    print()
    for where in ("memory", "NATS"):
        fast, base = results[f"{where}, uvloop"], results[f"{where}, asyncio"]
        print(
            f"- {where}: uvloop / asyncio {fast.median / base.median:.3f} (medians), "
            f"{_paired(fast, base):.3f} (median of per-round ratios)"
        )
    print()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sections", default="exporter,tracing,uvloop")
    parser.add_argument(
        "--span-case", metavar="NAME", help="run one case of the spans section, untimed"
    )
    parser.add_argument("--calls", type=int, default=1000, help="calls per spans sample")
    parser.add_argument("--serve-instances", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--serve-echo", nargs=2, metavar=("URL", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_instances:
        anyio.run(_serve_instances, args.serve_instances)
        return
    if args.serve_echo:
        anyio.run(_serve_echo, *args.serve_echo)
        return
    if args.span_case:
        anyio.run(_run_span_case, args.span_case, args.calls)
        return
    sections = set(args.sections.split(","))
    with open("/proc/loadavg") as load:
        print(f"load average at start: {load.read().split()[:3]}\n")
    if "spans" in sections:
        anyio.run(spans_section, args.rounds, args.calls)
    with NatsServer() as server:
        if "exporter" in sections:
            anyio.run(exporter_section, server.url, args.rounds)
        if "tracing" in sections:
            anyio.run(tracing_section, server.url, args.rounds)
        if "uvloop" in sections:
            uvloop_section(server.url, args.rounds)
    with open("/proc/loadavg") as load:
        print(f"load average at end: {load.read().split()[:3]}")


if __name__ == "__main__":
    main()
