"""Listeners at run time: the handler every listener is compiled to.

Each listener becomes one core :data:`micro.request.Handler` (:func:`make_handler`), served
as an endpoint of the app's service (see ``micro.app.core``):

1. the payload is decoded with the listener's data type -- a failure is logged (once, here)
   and raised as ``ServiceError(400, <reason>)``, so a request gets an error reply carrying
   the NATS service error headers (``Nats-Service-Error``/``-Code``);
2. a :class:`~micro.app.Message` is built and passed through the app's middlewares
   (``listen_request`` when it has a reply subject, ``listen_publish`` otherwise) to the
   callback (a coroutine function in the loop; a plain function in a worker thread);
3. for a request, a returned value other than ``None`` is the reply, encoded by what it
   is -- the rule of every body the app sends: ``str`` as UTF-8 text, ``bytes`` as is,
   ``dict``/``list``/numbers as JSON, dataclass and model instances as JSON objects --
   whatever the listener's ``data_type`` (which says how requests decode).  A listener
   given its own :class:`~micro.app.data_types.Codec` replies through it.  ``None`` sends
   nothing (the listener may have answered through ``app.publish(msg.reply, ...)`` or
   left it to another service).

What a raising callback does is the endpoint's rule (:mod:`micro.endpoint`), with or
without a service name: a :class:`~micro.errors.ServiceError` becomes an error reply with
its code and description; anything else a ``500 Internal Server Error`` reply, a log record
with the traceback, and -- on a strict ``MemoryBroker`` -- an error re-raised in the test.
Either way the error counts in the endpoint's statistics and the listener keeps serving.
"""

from __future__ import annotations

import contextvars
import logging
from typing import Any

from micro.app.data_types import DecodeError, encode, is_custom_codec
from micro.app.message import Message
from micro.app.middleware import PUBLISH, REQUEST, MiddlewareStack
from micro.app.registry import ListenerSpec, call_user
from micro.errors import ServiceError
from micro.request import Handler, Request

__all__ = ["INSIDE_APP", "make_handler"]

_log = logging.getLogger("micro.app")

INSIDE_APP: contextvars.ContextVar[object | None] = contextvars.ContextVar(
    "micro_app_inside", default=None
)
"""The app whose listener or task the current context belongs to (``None`` elsewhere).

Calls that would wait for the app's own listeners or tasks to finish (``disconnect``,
``unsubscribe_*``) use it to avoid waiting for themselves.  Worker threads running
plain-function callbacks inherit it (anyio copies the context), and a blocking call
carries its caller's value into the loop (``AppCore.call_blocking``).
"""

DECODE_ERROR_CODE = 400


def make_handler(spec: ListenerSpec, middlewares: MiddlewareStack, app: object) -> Handler:
    """Compile ``spec`` into a core handler (see the module docstring)."""
    codec = spec.codec
    callback = spec.callback
    is_async = spec.is_async
    ssid = spec.ssid
    encode_reply = codec.encode if is_custom_codec(codec) else encode

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
        if reply:
            if result is not None:
                await request.respond(encode_reply(result))
            else:  # the listener answered itself (app.publish(msg.reply)) or left it to others
                request.answered_elsewhere()

    return handle
