"""Middlewares: code that wraps every request of an endpoint.

A middleware is ``async def middleware(request: Request, next: Handler) -> None``.  It may
inspect the request, answer it itself (and not call ``next``), call ``await next(request)``
(possibly with a different :class:`~micro.request.Request`, e.g. a wrapper), and act after
it returns or raises.  Exceptions propagate like handler exceptions (see :mod:`micro.endpoint`).

Composition order, fixed once when the endpoint is added (never per message):

1. service middlewares (outermost),
2. group middlewares, the outermost group first,
3. endpoint middlewares,
4. the handler.

Within one level, list order: the first middleware is the outermost.

A middleware that needs to know which endpoint it wraps (to label traces or metrics, say)
also offers ``bind_endpoint(scope: EndpointScope) -> Middleware``: when an endpoint is
added, such a middleware is replaced in that endpoint's chain by what ``bind_endpoint``
returns (once per endpoint, never per message).  ``micro.tracing`` uses this.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from micro.request import Handler, Request

__all__ = ["EndpointScope", "Middleware", "bind_middlewares", "check_middlewares", "compose"]

Middleware = Callable[[Request, Handler], Awaitable[None]]
"""``async def middleware(request, next) -> None``: wraps the rest of the chain."""


@dataclass(frozen=True, slots=True)
class EndpointScope:
    """The endpoint a middleware is bound to (see ``bind_endpoint`` above).

    ``service``, ``version`` and ``service_id`` identify the service instance;
    ``endpoint`` is the endpoint name, ``subject`` its subscribed subject (group prefixes
    applied, wildcards kept) and ``queue_group`` its queue group (``None``: disabled).
    """

    service: str
    version: str
    service_id: str
    endpoint: str
    subject: str
    queue_group: str | None


def bind_middlewares(
    middlewares: Iterable[Middleware], scope: EndpointScope
) -> tuple[Middleware, ...]:
    """``middlewares`` with each one offering ``bind_endpoint`` replaced by
    ``middleware.bind_endpoint(scope)``; ``TypeError`` if that returns a non-callable."""
    bound: list[Middleware] = []
    for middleware in middlewares:
        bind = getattr(middleware, "bind_endpoint", None)
        if bind is not None:
            middleware = bind(scope)
            if not callable(middleware):
                raise TypeError(
                    f"bind_endpoint() of a middleware of endpoint {scope.endpoint!r} must "
                    f"return a callable (async def mw(request, next)), got {middleware!r}"
                )
        bound.append(middleware)
    return tuple(bound)


def check_middlewares(
    middlewares: Iterable[Middleware] | None, where: str
) -> tuple[Middleware, ...]:
    """Return ``middlewares`` as a tuple; ``TypeError`` naming ``where`` for a non-callable."""
    if middlewares is None:
        return ()
    if isinstance(middlewares, (str, bytes)) or callable(middlewares):
        raise TypeError(
            f"{where} middlewares must be a sequence of callables, got {type(middlewares).__name__}"
        )
    checked = tuple(middlewares)
    for index, middleware in enumerate(checked):
        if not callable(middleware):
            raise TypeError(
                f"{where} middleware #{index} must be callable "
                f"(async def mw(request, next)), got {type(middleware).__name__}"
            )
    return checked


def _link(middleware: Middleware, following: Handler) -> Handler:
    async def call(request: Request) -> None:
        await middleware(request, following)

    return call


def compose(handler: Handler, middlewares: Iterable[Middleware]) -> Handler:
    """Wrap ``handler`` in ``middlewares``; the first one is the outermost.

    With no middleware the handler itself is returned (no per-message overhead).
    """
    chained = handler
    for middleware in reversed(tuple(middlewares)):
        chained = _link(middleware, chained)
    return chained
