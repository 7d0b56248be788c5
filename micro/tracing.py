"""OpenTelemetry tracing of services, the request :class:`~micro.client.Client` and the App.

Needs the ``otel`` extra (``pip install 'nats-service-kit[otel]'``: ``opentelemetry-api`` only;
the SDK and an exporter are the application's choice).  ``import micro`` never imports
this module nor OpenTelemetry.

One :class:`Tracing` object, made once with a tracer provider (default: the global one)
and a text-map propagator (default: the global one, W3C ``traceparent``/``tracestate`` and
baggage unless configured otherwise), instruments each kind of participant:

* services: ``add_service(..., middlewares=[tracing.middleware])`` (or
  ``tracing.add_service(...)``, the same call with the middleware prepended): every
  endpoint, current and future, runs each request inside a span that continues the caller's
  trace from the request headers;
* requests: ``tracing.client(nc)`` is a :class:`~micro.client.Client` whose ``request``
  (and ``request_endpoint``) runs in a span and sends the trace context in the headers;
* the App: ``tracing.instrument_app(app)`` adds :class:`TracingAppMiddleware` (listeners,
  ``app.publish``, ``app.request``).

A handler's own calls through a traced client or app continue the trace: the span of the
request being handled is the current span while the handler runs (OpenTelemetry's context
lives in ``contextvars``, so this holds on asyncio and trio alike).

Spans follow the OpenTelemetry messaging semantic conventions: name
``"<messaging.operation.name> <destination>"``; ``messaging.system`` ``"nats"``,
``messaging.destination.name`` (the concrete subject), ``messaging.operation.type``
(``send`` / ``process``), ``messaging.operation.name`` (``request`` / ``publish`` /
``process``), ``messaging.message.body.size``; on failure ``error.type`` and an ERROR
status.  Kinds: a request/reply is a synchronous call, so the caller's span is CLIENT and
the service's SERVER; a plain publish is PRODUCER and its processing CONSUMER.  Service
spans add ``messaging.destination.template`` (the endpoint subject, wildcards kept; it is
also the span name's destination, which keeps names low-cardinality),
``messaging.consumer.group.name`` (the queue group) and the NATS service attributes
:data:`SERVICE_NAME`, :data:`SERVICE_VERSION`, :data:`SERVICE_INSTANCE_ID`,
:data:`ENDPOINT_NAME`.  An error reply -- a raised :class:`~micro.errors.ServiceError`, an
error sent with ``respond_error``, or the ``500`` of an exception -- sets
:data:`ERROR_CODE` to its code; ``error.type`` is that code for error replies, and the
exception's qualified class name for an exception that escaped (recorded as a span event).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.propagators.textmap import Getter, TextMapPropagator, default_getter
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode
except ImportError as _missing:  # pragma: no cover - exercised in a venv without the extra
    raise ImportError(
        "micro.tracing needs OpenTelemetry, which is not installed: "
        "pip install 'nats-service-kit[otel]' (installs opentelemetry-api)"
    ) from _missing

from micro.app.message import Message
from micro.app.middleware import ListenFunc, SendFunc
from micro.app.middleware import Middleware as AppMiddleware
from micro.client import Client
from micro.errors import ServiceError
from micro.middleware import EndpointScope, Middleware
from micro.request import Handler, Request, TransportRequest
from micro.service import Service, add_service
from transports.base import Msg, Transport

__all__ = [
    "ENDPOINT_NAME",
    "ERROR_CODE",
    "SERVICE_INSTANCE_ID",
    "SERVICE_NAME",
    "SERVICE_VERSION",
    "ServiceTracingMiddleware",
    "Tracing",
    "TracingAppMiddleware",
    "TracingClient",
]

INSTRUMENTATION_NAME = "micro.tracing"

# OpenTelemetry messaging semantic conventions
MESSAGING_SYSTEM = "messaging.system"
DESTINATION_NAME = "messaging.destination.name"
DESTINATION_TEMPLATE = "messaging.destination.template"
OPERATION_TYPE = "messaging.operation.type"
OPERATION_NAME = "messaging.operation.name"
BODY_SIZE = "messaging.message.body.size"
CONSUMER_GROUP = "messaging.consumer.group.name"
ERROR_TYPE = "error.type"

# NATS Service API attributes (system-specific ones live under messaging.<system>.*)
SERVICE_NAME = "messaging.nats.service.name"
"""Span attribute: the service name (ADR-32)."""
SERVICE_VERSION = "messaging.nats.service.version"
"""Span attribute: the service version."""
SERVICE_INSTANCE_ID = "messaging.nats.service.instance.id"
"""Span attribute: the service instance id."""
ENDPOINT_NAME = "messaging.nats.service.endpoint.name"
"""Span attribute: the endpoint name."""
ERROR_CODE = "messaging.nats.service.error.code"
"""Span attribute: the code of an error reply (``Nats-Service-Error-Code``), an int."""

NATS = "nats"
_CLIENT = SpanKind.CLIENT


def _qualified(exc: BaseException) -> str:
    cls = type(exc)
    return f"{cls.__module__}.{cls.__qualname__}"


def _record_failure(span: Span, exc: Exception) -> None:
    """Mark ``span`` failed by ``exc``: a ``ServiceError`` with its code and description,
    anything else (recorded with its traceback) as the ``500`` its endpoint answers."""
    if isinstance(exc, ServiceError):
        _fail(span, str(exc.code), exc.description, exc.code)
    else:
        span.record_exception(exc)
        _fail(span, _qualified(exc), f"{type(exc).__name__}: {exc}", 500)


def _record_send_failure(span: Span, exc: Exception) -> None:
    """Mark the span of a publish or request failed by ``exc``: an error reply
    (``ServiceError``) with its code and description, anything else (a transport error
    such as no responders or a timeout) by its type and message, without a code."""
    if isinstance(exc, ServiceError):
        _fail(span, str(exc.code), exc.description, exc.code)
    else:
        _fail(span, _qualified(exc), str(exc) or type(exc).__name__)


def _fail(span: Span, error_type: str, description: str, code: int | None = None) -> None:
    span.set_attribute(ERROR_TYPE, error_type)
    if code is not None:
        span.set_attribute(ERROR_CODE, code)
    span.set_status(Status(StatusCode.ERROR, description))


def _error_reply(span: Span, problem: str) -> None:
    """Mark ``span`` with an error reply recorded as ``"<code>:<description>"``."""
    code_text, _, description = problem.partition(":")
    try:
        code: int | None = int(code_text)
    except ValueError:  # a failed send: its text, no code
        _fail(span, "send_failed", problem)
        return
    _fail(span, code_text, description, code)


class _HeadersGetter(Getter[Mapping[str, str]]):
    """The propagators' read access to message headers: OpenTelemetry's default getter,
    minus its generic ``Iterable`` check for the usual case of a plain ``str`` value (NATS
    header values are strings); anything else goes through the default getter."""

    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            return None
        if value.__class__ is str:
            return [value]
        return default_getter.get(carrier, key)

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier)


_HEADERS = _HeadersGetter()


def _context_of(span: Span, parent: otel_context.Context) -> otel_context.Context:
    """The context to make current while ``span``, started under ``parent``, runs.

    A tracer that records nothing (the no-op provider) hands back the parent's own span;
    ``parent`` already holds it and is returned as it is, without building a copy.  It is
    still attached by the caller, so that whatever the code inside attaches and leaves is
    undone when the span's token is detached."""
    if span.is_recording() or span is not trace.get_current_span(parent):
        return trace.set_span_in_context(span, parent)
    return parent


class Tracing:
    """The tracer and propagator that every instrumented participant shares.

    ``tracer_provider`` defaults to OpenTelemetry's global provider (looked up when a span
    starts, so setting it later works); ``propagator`` to the global text-map propagator.
    Making one is cheap and does nothing else; it holds no connection.
    """

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        propagator: TextMapPropagator | None = None,
    ) -> None:
        self._tracer = trace.get_tracer(INSTRUMENTATION_NAME, tracer_provider=tracer_provider)
        self._propagator = propagator

    @property
    def tracer(self) -> trace.Tracer:
        return self._tracer

    @property
    def propagator(self) -> TextMapPropagator | None:
        """The propagator given (``None``: the global one, looked up on each use)."""
        return self._propagator

    @property
    def middleware(self) -> ServiceTracingMiddleware:
        """The service-level middleware: ``add_service(..., middlewares=[this])``."""
        return ServiceTracingMiddleware(self)

    def inject(
        self,
        headers: Mapping[str, str] | None,
        context: otel_context.Context | None = None,
    ) -> dict[str, str]:
        """A copy of ``headers`` plus the trace context (``traceparent``, ...) of
        ``context`` (default: the current one)."""
        carrier = dict(headers) if headers else {}
        (self._propagator or propagate.get_global_textmap()).inject(carrier, context)
        return carrier

    def extract(self, headers: Mapping[str, str] | None) -> otel_context.Context | None:
        """The trace context carried by ``headers`` (``None`` when there are none)."""
        if not headers:
            return None
        return (self._propagator or propagate.get_global_textmap()).extract(
            headers, getter=_HEADERS
        )

    def add_service(self, nc: Transport | Any, name: str, version: str, **options: Any) -> Service:
        """:func:`micro.add_service` with this tracing's middleware as the outermost one
        (before any ``middlewares=`` given); raises what ``add_service`` raises."""
        given: Sequence[Middleware] = options.pop("middlewares", ()) or ()
        return add_service(nc, name, version, middlewares=[self.middleware, *given], **options)

    def client(
        self,
        nc: Transport | Any,
        default_max_wait: float | None = None,
        api_prefix: str | None = None,
    ) -> TracingClient:
        """A :class:`TracingClient` on ``nc`` (arguments as :class:`~micro.client.Client`)."""
        return TracingClient(nc, default_max_wait, api_prefix, tracing=self)

    def instrument_app(self, app: Any) -> TracingAppMiddleware:
        """Add a :class:`TracingAppMiddleware` to ``app`` (a :class:`micro.app.App`) as its
        outermost middleware; returns it."""
        middleware: TracingAppMiddleware = app.add_middleware(TracingAppMiddleware, self)
        return middleware

    # ------------------------------------------------------------------ span plumbing

    def start(
        self,
        name: str,
        kind: SpanKind,
        attributes: dict[str, Any],
        parent: otel_context.Context | None = None,
    ) -> tuple[Span, object]:
        """Start a span and make it current; returns it and the token for :meth:`finish`."""
        span, _, token = self._open(name, kind, attributes, parent)
        return span, token

    def _open(
        self,
        name: str,
        kind: SpanKind,
        attributes: dict[str, Any],
        parent: otel_context.Context | None = None,
    ) -> tuple[Span, otel_context.Context, object]:
        """:meth:`start`, also returning the context it made current (for ``inject``).

        ``parent`` ``None`` means the current context, read once here."""
        if parent is None:
            parent = otel_context.get_current()
        span = self._tracer.start_span(name, parent, kind, attributes)
        context = _context_of(span, parent)
        return span, context, otel_context.attach(context)

    @staticmethod
    def finish(span: Span, token: object) -> None:
        """Restore the previous current context and end ``span``."""
        otel_context.detach(token)  # type: ignore[arg-type]
        span.end()


class ServiceTracingMiddleware:
    """The service middleware of a :class:`Tracing` (see ``Tracing.middleware``).

    Bound to each endpoint (``bind_endpoint``), it opens one span per request: SERVER for
    a request with a reply subject, CONSUMER for a published message, named
    ``"process <endpoint subject>"``, the child of the trace context in the request
    headers.  Used directly as a middleware (no endpoint known, e.g. on a test stub) it
    does the same with the concrete subject and no service attributes.
    """

    __slots__ = ("_tracing",)

    def __init__(self, tracing: Tracing) -> None:
        self._tracing = tracing

    def bind_endpoint(self, scope: EndpointScope) -> Middleware:
        """The middleware for one endpoint, its attributes computed once."""
        attributes: dict[str, Any] = {
            MESSAGING_SYSTEM: NATS,
            OPERATION_TYPE: "process",
            OPERATION_NAME: "process",
            DESTINATION_TEMPLATE: scope.subject,
            SERVICE_NAME: scope.service,
            SERVICE_VERSION: scope.version,
            SERVICE_INSTANCE_ID: scope.service_id,
            ENDPOINT_NAME: scope.endpoint,
        }
        if scope.queue_group is not None:
            attributes[CONSUMER_GROUP] = scope.queue_group
        return _endpoint_middleware(self._tracing, f"process {scope.subject}", attributes)

    async def __call__(self, request: Request, next: Handler) -> None:
        attributes: dict[str, Any] = {
            MESSAGING_SYSTEM: NATS,
            OPERATION_TYPE: "process",
            OPERATION_NAME: "process",
        }
        traced = _endpoint_middleware(self._tracing, f"process {request.subject()}", attributes)
        await traced(request, next)


def _endpoint_middleware(tracing: Tracing, name: str, attributes: dict[str, Any]) -> Middleware:
    # the per-request path: everything it can look up once is looked up here
    server, consumer = SpanKind.SERVER, SpanKind.CONSUMER
    start_span = tracing.tracer.start_span
    attach, detach, current = otel_context.attach, otel_context.detach, otel_context.get_current
    propagator, get_textmap, getter = tracing.propagator, propagate.get_global_textmap, _HEADERS

    async def traced(request: Request, next: Handler) -> None:
        if isinstance(request, TransportRequest):  # read the message as is: no copies
            msg = request.msg
            headers: Mapping[str, str] | None = msg.headers
            subject, size, reply = msg.subject, len(msg.data), msg.reply
        else:
            headers = request.headers()
            subject, size, reply = request.subject(), len(request.data()), request.reply()
        if headers:
            parent = (propagator or get_textmap()).extract(headers, getter=getter)
        else:
            parent = current()
        span = start_span(
            name,
            parent,
            server if reply else consumer,
            {**attributes, DESTINATION_NAME: subject, BODY_SIZE: size},
        )
        token = attach(_context_of(span, parent))
        try:
            await next(request)
        except Exception as exc:
            _record_failure(span, exc)
            raise
        else:
            problem = getattr(request, "problem", None)
            if problem is not None:
                _error_reply(span, problem if isinstance(problem, str) else str(problem))
        finally:
            detach(token)
            span.end()

    return traced


class TracingClient(Client):
    """A :class:`~micro.client.Client` whose requests are traced (``Tracing.client``).

    :meth:`request` (and so ``request_endpoint``) runs in a CLIENT span named
    ``"request <subject>"`` and sends the current trace context in the request headers
    (the caller's own headers are kept).  An error reply marks the span with its code; a
    transport error (no responders, timeout) with the exception's class.  Discovery calls
    (``ping``/``info``/``stats``) are not traced.
    """

    def __init__(
        self,
        nc: Transport | Any,
        default_max_wait: float | None = None,
        api_prefix: str | None = None,
        *,
        tracing: Tracing | None = None,
    ) -> None:
        super().__init__(nc, default_max_wait, api_prefix)
        self._tracing = tracing or Tracing()

    async def request(
        self,
        subject: str,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 1,
    ) -> Msg:
        tracing = self._tracing
        attributes = {
            MESSAGING_SYSTEM: NATS,
            DESTINATION_NAME: subject,
            OPERATION_TYPE: "send",
            OPERATION_NAME: "request",
            BODY_SIZE: len(data) if data else 0,
        }
        span, context, token = tracing._open(f"request {subject}", _CLIENT, attributes)
        try:
            return await super().request(subject, data, tracing.inject(headers, context), timeout)
        except Exception as exc:
            _record_send_failure(span, exc)
            raise
        finally:
            tracing.finish(span, token)


class TracingAppMiddleware(AppMiddleware):
    """An App middleware that traces ``app.publish`` (PRODUCER ``"publish <subject>"``),
    ``app.request`` (CLIENT ``"request <subject>"``) and every listener call (SERVER for a
    request, CONSUMER for a published message, ``"process <subject>"``), sending and
    continuing the trace context in the message headers.

    Add it with ``tracing.instrument_app(app)`` (or ``app.add_middleware(
    TracingAppMiddleware, tracing)``); as the outermost middleware its spans cover the
    others.
    """

    def __init__(self, tracing: Tracing | None = None) -> None:
        self._tracing = tracing or Tracing()

    async def _send(
        self,
        operation: str,
        kind: SpanKind,
        subject: str,
        message: Any,
        func: SendFunc,
        params: Any,
    ) -> Any:
        tracing = self._tracing
        raw = message if isinstance(message, (bytes, bytearray)) else None
        attributes: dict[str, Any] = {
            MESSAGING_SYSTEM: NATS,
            DESTINATION_NAME: subject,
            OPERATION_TYPE: "send",
            OPERATION_NAME: operation,
        }
        if raw is not None:
            attributes[BODY_SIZE] = len(raw)
        span, context, token = tracing._open(f"{operation} {subject}", kind, attributes)
        try:
            params["headers"] = tracing.inject(params.get("headers"), context)
            return await func(subject, message, **params)
        except Exception as exc:
            _record_send_failure(span, exc)
            raise
        finally:
            tracing.finish(span, token)

    async def send_publish(
        self, subject: str, message: Any, publish_func: SendFunc, **params: Any
    ) -> None:
        await self._send("publish", SpanKind.PRODUCER, subject, message, publish_func, params)

    async def send_request(
        self, subject: str, message: Any, request_func: SendFunc, **params: Any
    ) -> Any:
        return await self._send("request", SpanKind.CLIENT, subject, message, request_func, params)

    async def listen_any(self, msg: Message, callback: ListenFunc) -> Any:
        tracing = self._tracing
        attributes = {
            MESSAGING_SYSTEM: NATS,
            DESTINATION_NAME: msg.subject,
            OPERATION_TYPE: "process",
            OPERATION_NAME: "process",
            BODY_SIZE: len(msg.raw),
        }
        kind = SpanKind.SERVER if msg.reply else SpanKind.CONSUMER
        parent = tracing.extract(msg.headers)
        span, token = tracing.start(f"process {msg.subject}", kind, attributes, parent)
        try:
            return await callback(msg)
        except Exception as exc:
            _record_failure(span, exc)
            raise
        finally:
            tracing.finish(span, token)
