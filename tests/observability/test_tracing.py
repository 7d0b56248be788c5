"""Tracing (``micro.tracing``) with the OpenTelemetry SDK's in-memory exporter.

One trace across client -> service A -> service B on the memory broker (asyncio and trio)
and on a real nats-server, with the exact parent/child structure, kinds, names and
attributes; error replies and exceptions mark spans; the App's listeners, publish and
request join the same trace.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import anyio
import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from micro import Request, ServiceError, add_service
from micro.app import App, Message
from micro.tracing import (
    ENDPOINT_NAME,
    ERROR_CODE,
    SERVICE_INSTANCE_ID,
    SERVICE_NAME,
    SERVICE_VERSION,
    Tracing,
)
from testing import make_request
from transports.base import NoRespondersError, Transport

Connect = Callable[..., Awaitable[Transport]]
WAIT = 10.0


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracing(exporter: InMemorySpanExporter) -> Iterator[Tracing]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield Tracing(tracer_provider=provider)
    provider.shutdown()


def _by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    named = {span.name: span for span in spans}
    assert len(named) == len(spans), [span.name for span in spans]
    return named


def _parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def _remote_caller() -> otel_context.Context:
    """The context of a caller in another process: its sampled span (trace
    ``0af7651916cd43dd8448eb211c80319c``, span ``b7ad6b7169203331``, ``tracestate``
    ``vendor=v1``) and the baggage ``tenant=acme``."""
    caller = trace.NonRecordingSpan(
        trace.SpanContext(
            trace_id=0x0AF7651916CD43DD8448EB211C80319C,
            span_id=0xB7AD6B7169203331,
            is_remote=True,
            trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
            trace_state=trace.TraceState([("vendor", "v1")]),
        )
    )
    return baggage.set_baggage("tenant", "acme", trace.set_span_in_context(caller))


@pytest.mark.micro_both_transports
async def test_one_trace_from_client_through_service_a_to_service_b(
    micro_connect: Connect, tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    a_to_b = tracing.client(await micro_connect())

    async def greet(request: Request) -> None:  # A calls B and answers with B's reply
        reply = await a_to_b.request("b.upper", request.data(), timeout=WAIT)
        await request.respond(b"hello " + reply.data)

    async def upper(request: Request) -> None:
        await request.respond(request.data().upper())

    service_a = add_service(
        await micro_connect(),
        "svc_a",
        "1.0.0",
        middlewares=[tracing.middleware],
        id_generator=lambda: "A1",
    )
    service_b = tracing.add_service(
        await micro_connect(), "svc_b", "2.0.0", id_generator=lambda: "B1"
    )
    client = tracing.client(await micro_connect())
    async with service_a, service_b:
        await service_a.add_group("a").add_endpoint("greet", greet)
        await service_b.add_group("b", queue_group="uppers").add_endpoint("upper", upper)
        reply = await client.request("a.greet", b"ada", headers={"x-own": "kept"}, timeout=WAIT)
        assert reply.data == b"hello ADA"
    # both services stopped: every handler (and so every server span) has finished
    spans = _by_name(exporter.get_finished_spans())
    assert set(spans) == {
        "request a.greet",
        "process a.greet",
        "request b.upper",
        "process b.upper",
    }
    root, in_a, a_calls_b, in_b = (
        spans[name]
        for name in ("request a.greet", "process a.greet", "request b.upper", "process b.upper")
    )
    assert root.parent is None
    assert _parent_of(in_a) == _id(root)
    assert _parent_of(a_calls_b) == _id(in_a)
    assert _parent_of(in_b) == _id(a_calls_b)
    assert {span.context.trace_id for span in spans.values() if span.context} == {
        root.context.trace_id if root.context else 0
    }
    assert in_a.parent is not None
    assert in_a.parent.is_remote
    assert [s.kind for s in (root, in_a, a_calls_b, in_b)] == [
        SpanKind.CLIENT,
        SpanKind.SERVER,
        SpanKind.CLIENT,
        SpanKind.SERVER,
    ]
    assert dict(root.attributes or {}) == {
        "messaging.system": "nats",
        "messaging.destination.name": "a.greet",
        "messaging.operation.type": "send",
        "messaging.operation.name": "request",
        "messaging.message.body.size": 3,
    }
    assert dict(in_b.attributes or {}) == {
        "messaging.system": "nats",
        "messaging.destination.name": "b.upper",
        "messaging.destination.template": "b.upper",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.message.body.size": 3,
        "messaging.consumer.group.name": "uppers",
        SERVICE_NAME: "svc_b",
        SERVICE_VERSION: "2.0.0",
        SERVICE_INSTANCE_ID: "B1",
        ENDPOINT_NAME: "upper",
    }
    assert in_a.attributes is not None
    assert in_a.attributes[SERVICE_NAME] == "svc_a"
    assert all(span.status.status_code is StatusCode.UNSET for span in spans.values())


@pytest.mark.micro_both_transports
@pytest.mark.micro_broker(strict=False)  # the handler that raises is on purpose
async def test_error_replies_and_exceptions_mark_both_ends(
    micro_connect: Connect, tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    async def teapot(request: Request) -> None:
        raise ServiceError(418, "I'm a teapot")

    async def broken(request: Request) -> None:
        raise ZeroDivisionError("nope")

    async def refuse(request: Request) -> None:
        await request.respond_error(403, "forbidden")

    service = tracing.add_service(await micro_connect(), "errs", "1.0.0")
    client = tracing.client(await micro_connect())
    async with service:
        for name, handler in (("teapot", teapot), ("broken", broken), ("refuse", refuse)):
            await service.add_endpoint(name, handler)
        for subject, code in (("teapot", 418), ("broken", 500), ("refuse", 403)):
            with pytest.raises(ServiceError) as caught:
                await client.request(subject, b"", timeout=WAIT)
            assert caught.value.code == code
        with pytest.raises(NoRespondersError):
            await client.request("nobody.here", b"", timeout=WAIT)
    spans = _by_name(exporter.get_finished_spans())
    expected_types = {
        "teapot": ("418", "418"),
        "broken": ("builtins.ZeroDivisionError", "500"),
        "refuse": ("403", "403"),
    }
    for name, (server_type, client_type) in expected_types.items():
        server, caller = spans[f"process {name}"], spans[f"request {name}"]
        assert _parent_of(server) == _id(caller)
        for span, error_type in ((server, server_type), (caller, client_type)):
            assert span.status.status_code is StatusCode.ERROR, span.name
            assert span.attributes is not None
            assert span.attributes["error.type"] == error_type
            assert span.attributes[ERROR_CODE] == int(client_type)
    assert spans["process teapot"].status.description == "I'm a teapot"
    assert [event.name for event in spans["process broken"].events] == ["exception"]
    lost = spans["request nobody.here"]
    assert lost.status.status_code is StatusCode.ERROR
    assert lost.attributes is not None
    assert lost.attributes["error.type"] == "transports.base.NoRespondersError"
    assert ERROR_CODE not in lost.attributes


@pytest.mark.anyio
async def test_the_middleware_works_unbound_on_a_stub_request(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    async def handler(request: Request) -> None:
        await request.respond(b"ok")

    stub = make_request("stub.subject", b"12345")
    await tracing.middleware(stub, handler)
    [span] = exporter.get_finished_spans()
    assert (span.name, span.kind) == ("process stub.subject", SpanKind.SERVER)
    assert span.attributes is not None
    assert span.attributes["messaging.message.body.size"] == 5
    assert span.attributes.get("messaging.destination.name") == "stub.subject"


@pytest.mark.micro_both_transports
async def test_app_listeners_publish_and_request_continue_the_trace(
    micro_connect: Connect, tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    app = App(transport=await micro_connect())
    tracing.instrument_app(app)
    noticed = anyio.Event()

    @app.listen(subject="app.ask", data_type=str)
    async def ask(msg: Message) -> str:
        await app.publish("app.note", b"asked")  # a publish made while handling a request
        return f"answer to {msg.data}"

    @app.listen(subject="app.note", data_type=bytes)
    async def note(msg: Message) -> None:
        noticed.set()

    client = tracing.client(await micro_connect())
    async with app:
        reply = await client.request("app.ask", b"q", timeout=WAIT)
        assert reply.data == b"answer to q"
        with anyio.fail_after(WAIT):
            await noticed.wait()
    spans = _by_name(exporter.get_finished_spans())
    assert set(spans) == {
        "request app.ask",
        "process app.ask",
        "publish app.note",
        "process app.note",
    }
    assert _parent_of(spans["process app.ask"]) == _id(spans["request app.ask"])
    assert _parent_of(spans["publish app.note"]) == _id(spans["process app.ask"])
    assert _parent_of(spans["process app.note"]) == _id(spans["publish app.note"])
    assert [spans[n].kind for n in ("process app.ask", "publish app.note", "process app.note")] == [
        SpanKind.SERVER,
        SpanKind.PRODUCER,
        SpanKind.CONSUMER,
    ]


@pytest.mark.micro_both_transports
async def test_tracestate_and_baggage_travel_to_the_handler(
    micro_connect: Connect, tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    seen: list[tuple[object, str]] = []

    async def handler(request: Request) -> None:
        state = trace.get_current_span().get_span_context().trace_state
        seen.append((baggage.get_baggage("tenant"), state.to_header()))
        await request.respond(b"ok")

    service = tracing.add_service(await micro_connect(), "bag", "1.0.0")
    client = tracing.client(await micro_connect())
    context = _remote_caller()
    async with service:
        await service.add_endpoint("bag", handler)
        token = otel_context.attach(context)
        try:
            await client.request("bag", b"", timeout=WAIT)
        finally:
            otel_context.detach(token)
    assert seen == [("acme", "vendor=v1")]
    spans = _by_name(exporter.get_finished_spans())
    assert spans["request bag"].context is not None
    assert spans["request bag"].context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert _parent_of(spans["request bag"]) == 0xB7AD6B7169203331


@pytest.mark.micro_both_transports
async def test_a_no_op_provider_passes_the_callers_trace_through_a_service(
    micro_connect: Connect,
) -> None:
    """With a tracer that records nothing, a traced service still hands its caller's
    ``traceparent``, ``tracestate`` and baggage on to the calls its handler makes, a
    request that carries no trace context makes the handler's calls carry none either, and
    what a handler attaches and leaves does not outlive its request (the endpoint is
    serial: every request is handled in the same task)."""
    noop = Tracing(tracer_provider=trace.NoOpTracerProvider())
    received: list[dict[str, str]] = []
    a_to_b = noop.client(await micro_connect())

    async def forward(request: Request) -> None:
        before = otel_context.get_current()
        await a_to_b.request("b.record", request.data(), timeout=WAIT)
        assert otel_context.get_current() is before  # the client restored what it found
        otel_context.attach(baggage.set_baggage("leaked", "yes"))  # never detached
        await request.respond(b"ok")

    async def record(request: Request) -> None:  # B is not traced: it sees the headers
        received.append(dict(request.headers()))
        await request.respond(b"ok")

    service_a = noop.add_service(await micro_connect(), "noop_a", "1.0.0")
    service_b = add_service(await micro_connect(), "noop_b", "1.0.0")
    client = noop.client(await micro_connect())
    context = _remote_caller()
    async with service_a, service_b:
        await service_a.add_group("a").add_endpoint("forward", forward)
        await service_b.add_group("b").add_endpoint("record", record)
        outside = otel_context.get_current()
        await client.request("a.forward", b"untraced", timeout=WAIT)
        assert otel_context.get_current() is outside
        token = otel_context.attach(context)
        try:
            await client.request("a.forward", b"traced", timeout=WAIT)
            assert otel_context.get_current() is context
        finally:
            otel_context.detach(token)
        await client.request("a.forward", b"untraced again", timeout=WAIT)
    assert received == [
        {},
        {
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "tracestate": "vendor=v1",
            "baggage": "tenant=acme",
        },
        {},  # nothing that a handler leaked while handling an earlier request
    ]


@pytest.mark.anyio
async def test_a_no_op_span_makes_its_parent_context_current_as_it_is() -> None:
    """``Tracing.start`` with a tracer that records nothing makes the parent context itself
    current (it already holds the span: no copy is built), and ``finish`` restores the
    context found before, undoing what the code inside attached and left."""
    noop = Tracing(tracer_provider=trace.NoOpTracerProvider())
    before = otel_context.get_current()
    span, token = noop.start("x", SpanKind.INTERNAL, {})
    assert otel_context.get_current() is before
    assert span is trace.get_current_span()
    otel_context.attach(baggage.set_baggage("leaked", "yes"))  # never detached
    noop.finish(span, token)
    assert otel_context.get_current() is before
    parent = baggage.set_baggage("tenant", "acme")
    span, token = noop.start("y", SpanKind.SERVER, {}, parent)
    assert otel_context.get_current() is parent
    noop.finish(span, token)
    assert otel_context.get_current() is before
