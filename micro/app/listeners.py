"""Listeners at run time: the handler every listener is compiled to, and where it runs.

Each listener becomes one core :data:`micro.request.Handler` (:func:`make_handler`):

1. the payload is decoded with the listener's data type -- a failure is logged and
   raised as ``ServiceError(400, <reason>)``, so a request gets an error reply carrying
   the NATS service error headers (``Nats-Service-Error``/``-Code``);
2. a :class:`~micro.app.Message` is built and passed through the app's middlewares
   (``listen_request`` when it has a reply subject, ``listen_publish`` otherwise) to the
   callback (a coroutine function in the loop; a plain function in a worker thread);
3. for a request, a returned value other than ``None`` is the reply.  It is encoded with
   the listener's own data type when the value fits it (a listener replies in the format
   it listens in: a JSON listener returning ``"x"`` replies the JSON string ``"x"``), and
   by the value's type otherwise (``bytes`` raw, ``str`` as text, ``dict`` as JSON...).
   ``None`` sends nothing (the listener may have answered through
   ``app.publish(msg.reply, ...)`` or left it to another service).

When the app is a service, that handler is an endpoint of the core
:class:`~micro.service.Service` (statistics, error replies, ``$SRV`` discovery).
Otherwise :func:`serve_plain` runs it on a plain subscription with the same error-reply
rules as an endpoint: a :class:`~micro.errors.ServiceError` becomes its code and
description, any other exception ``500 Internal Server Error`` (logged with traceback).
"""

from __future__ import annotations

import contextvars
import logging
from dataclasses import dataclass, field
from typing import Any

import anyio

from micro.app.data_types import DecodeError, EncodeError, encode
from micro.app.message import Message
from micro.app.middleware import PUBLISH, REQUEST, MiddlewareStack
from micro.app.registry import ListenerSpec, call_user
from micro.endpoint import INTERNAL_ERROR_DESCRIPTION, Endpoint
from micro.errors import ServiceError
from micro.request import Handler, Request, TransportRequest
from transports.base import Subscription, Transport

__all__ = ["INSIDE_APP", "ActiveListener", "make_handler", "serve_plain"]

_log = logging.getLogger("micro.app")

INSIDE_APP: contextvars.ContextVar[object | None] = contextvars.ContextVar(
    "micro_app_inside", default=None
)
"""The app whose listener or task the current context belongs to (``None`` elsewhere).

Calls that would wait for the app's own listeners or tasks to finish (``disconnect``,
``unsubscribe_*``) use it to avoid waiting for themselves.  Worker threads running
plain-function callbacks inherit it (anyio copies the context).
"""

DECODE_ERROR_CODE = 400


@dataclass(slots=True, eq=False)
class ActiveListener:
    """A listener that is (being) subscribed: its spec, its handler and where it runs."""

    spec: ListenerSpec
    handler: Handler
    endpoint: Endpoint | None = None
    subscription: Subscription | None = None
    scope: anyio.CancelScope | None = None
    done: anyio.Event = field(default_factory=anyio.Event)
    removed: bool = False


def make_handler(spec: ListenerSpec, middlewares: MiddlewareStack, app: object) -> Handler:
    """Compile ``spec`` into a core handler (see the module docstring)."""
    codec = spec.codec
    callback = spec.callback
    is_async = spec.is_async
    ssid = spec.ssid

    async def final(msg: Message) -> Any:
        return await call_user(callback, is_async, msg)

    async def handle(request: Request) -> None:
        INSIDE_APP.set(app)
        raw = request.data()
        try:
            data = codec.decode(raw)
        except DecodeError as exc:
            _log.warning("%s: %s", spec.description, exc)
            raise ServiceError(DECODE_ERROR_CODE, str(exc)) from exc
        reply = request.reply()
        headers = request.headers() or None
        msg = Message(request.subject(), data, reply, headers, raw, ssid)
        if middlewares:
            chain = middlewares.listen_chain(REQUEST if reply else PUBLISH, final)
            result = await chain(msg)
        else:
            result = await final(msg)
        if reply and result is not None:
            try:
                payload = codec.encode(result)
            except EncodeError:
                payload = encode(result)
            await request.respond(payload)

    return handle


async def _failed(spec: ListenerSpec, request: TransportRequest, exc: Exception) -> None:
    """Log a listener failure and, for an unanswered request, send the error reply."""
    if isinstance(exc, ServiceError):
        code, description = exc.code, exc.description
        data, headers = exc.data or None, exc.headers or None
        if not isinstance(exc.__cause__, DecodeError):  # decode failures are logged already
            _log.warning("%s answered %s", spec.description, exc)
    else:
        code, description, data, headers = 500, INTERNAL_ERROR_DESCRIPTION, None, None
        _log.error("%s failed on %r", spec.description, request.subject(), exc_info=exc)
    if not request.reply() or request.responded or request.send_error is not None:
        return
    try:
        await request.respond_error(code, description, data, headers)
    except Exception as send_exc:
        _log.warning("%s could not send the error reply: %s", spec.description, send_exc)


async def serve_plain(
    active: ActiveListener, subscription: Subscription, transport: Transport
) -> BaseException | None:
    """Run ``active``'s handler for every message of ``subscription`` until it ends.

    Never raises an ``Exception``: returns the error that ended the loop, if any.  Sets
    ``active.done`` when it returns (also when cancelled).
    """
    handler = active.handler
    spec = active.spec
    try:
        with anyio.CancelScope() as scope:
            active.scope = scope
            async for msg in subscription:
                request = TransportRequest(transport, msg)
                try:
                    await handler(request)
                except Exception as exc:
                    await _failed(spec, request, exc)
    except Exception as exc:
        _log.exception("%s stopped receiving", spec.description)
        return exc
    finally:
        active.done.set()
    return None
