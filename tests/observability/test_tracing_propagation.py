"""``Tracing.extract`` / ``Tracing.inject``: the trace context read from and written to
message headers is exactly what the configured propagator reads and writes with
OpenTelemetry's default getter and the given (or current) context."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider

from micro.tracing import Tracing

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def tracing() -> Iterator[Tracing]:
    provider = TracerProvider()
    yield Tracing(tracer_provider=provider)
    provider.shutdown()


def _span_context(context: otel_context.Context | None) -> trace.SpanContext:
    return trace.get_current_span(context).get_span_context()


@pytest.mark.parametrize(
    "headers",
    [
        {"traceparent": TRACEPARENT, "tracestate": "vendor=v1", "baggage": "tenant=acme"},
        {"traceparent": TRACEPARENT},
        {"traceparent": [TRACEPARENT], "tracestate": ["a=1", "b=2"]},  # multi-valued fields
        {"traceparent": "00-not-a-trace-id"},
        {"other": "x"},
    ],
)
def test_extract_reads_what_the_default_getter_reads(
    tracing: Tracing, headers: dict[str, object]
) -> None:
    ours = tracing.extract(headers)  # type: ignore[arg-type]
    reference = propagate.extract(headers)
    assert _span_context(ours) == _span_context(reference)
    assert baggage.get_all(ours) == baggage.get_all(reference)


def test_extract_of_no_headers_is_none(tracing: Tracing) -> None:
    assert tracing.extract(None) is None
    assert tracing.extract({}) is None


def test_inject_writes_the_given_context_else_the_current_one(tracing: Tracing) -> None:
    given = tracing.tracer.start_span("given")
    current = tracing.tracer.start_span("current")
    token = otel_context.attach(trace.set_span_in_context(current))
    try:
        explicit = tracing.inject({"x-own": "kept"}, trace.set_span_in_context(given))
        implicit = tracing.inject(None)
    finally:
        otel_context.detach(token)
    assert explicit["x-own"] == "kept"
    assert _span_context(propagate.extract(explicit)).span_id == given.get_span_context().span_id
    assert _span_context(propagate.extract(implicit)).span_id == current.get_span_context().span_id
