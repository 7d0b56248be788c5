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
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from micro.request import Handler, Request

__all__ = ["Middleware", "check_middlewares", "compose"]

Middleware = Callable[[Request, Handler], Awaitable[None]]
"""``async def middleware(request, next) -> None``: wraps the rest of the chain."""


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
