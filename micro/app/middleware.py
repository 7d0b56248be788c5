"""App middlewares: code around every send (publish, request) and every received message.

Subclass :class:`Middleware` and override any of the hooks; register the class with
``app.add_middleware(cls, *args, **kwargs)`` (the app creates the instance):

* ``send_publish(subject, message, publish_func, **params)`` -- around ``app.publish``;
* ``send_request(subject, message, request_func, **params) -> response`` -- around
  ``app.request``;
* ``listen_publish(msg, callback)`` -- around a listener given a published message;
* ``listen_request(msg, callback) -> reply value`` -- around a listener given a request;
* fallbacks: ``send_any`` (what ``send_publish``/``send_request`` do unless overridden) and
  ``listen_any`` (likewise for the listen hooks).

A hook continues the chain by awaiting the function it was given (with the same or
changed arguments) and returns its result; it may also answer by itself, or raise.  A
listen hook may change the message it is handed (``msg.data = ...``, ``msg.context[...]``):
the listener gets that same object.
``params`` are the keyword arguments of the call (``publish``: ``reply_to``, ``force``,
``data_type``, ``headers``; ``request``: ``timeout``, ``data_type``,
``response_data_type``, ``headers``).  Listen hooks see the :class:`~micro.app.Message`
with its body already decoded; the value the chain returns for a request becomes the
reply.

Order: the middleware added last is the outermost (it runs first on the way in and last
on the way out).  Every middleware applies to every later call and message, including
those of listeners added before or after it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from micro.app.message import Message

__all__ = [
    "ErrorLoggingMiddleware",
    "ListenFunc",
    "Middleware",
    "MiddlewareStack",
    "SendFunc",
    "Timing",
    "TimingMiddleware",
]

SendFunc = Callable[..., Awaitable[Any]]
"""``async send(subject, message, **params) -> result`` (``None`` for a publish)."""
ListenFunc = Callable[[Message], Awaitable[Any]]
"""``async callback(msg) -> result`` (the reply value for a request)."""

PUBLISH = "publish"
REQUEST = "request"
_KINDS = (PUBLISH, REQUEST)


class Middleware:
    """Base class of app middlewares; every hook passes through unchanged by default.

    Hook names, arguments and order are Panini's, so a Panini middleware ports by changing
    its import (``from micro.app import Middleware``).  Like Panini's base class, the
    constructor accepts and ignores any arguments, so subclasses that pass theirs up with
    ``super().__init__(*args, **kwargs)`` keep working.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Accept and ignore ``args``/``kwargs`` (a subclass stores what it needs)."""

    async def send_publish(
        self, subject: str, message: Any, publish_func: SendFunc, **params: Any
    ) -> None:
        """Around ``app.publish``; by default defers to :meth:`send_any`."""
        await self.send_any(subject, message, publish_func, **params)

    async def send_request(
        self, subject: str, message: Any, request_func: SendFunc, **params: Any
    ) -> Any:
        """Around ``app.request``; returns the response. By default defers to :meth:`send_any`."""
        return await self.send_any(subject, message, request_func, **params)

    async def send_any(self, subject: str, message: Any, send_func: SendFunc, **params: Any) -> Any:
        """Fallback for both send hooks: ``await send_func(subject, message, **params)``."""
        return await send_func(subject, message, **params)

    async def listen_publish(self, msg: Message, callback: ListenFunc) -> Any:
        """Around a listener given a published message; by default :meth:`listen_any`."""
        return await self.listen_any(msg, callback)

    async def listen_request(self, msg: Message, callback: ListenFunc) -> Any:
        """Around a listener given a request; returns the reply value.

        By default defers to :meth:`listen_any`.
        """
        return await self.listen_any(msg, callback)

    async def listen_any(self, msg: Message, callback: ListenFunc) -> Any:
        """Fallback for both listen hooks: ``await callback(msg)``."""
        return await callback(msg)


def _overrides(middleware: Middleware, *names: str) -> bool:
    cls = type(middleware)
    return any(getattr(cls, name) is not getattr(Middleware, name) for name in names)


async def _send_link(
    hook: Callable[..., Awaitable[Any]],
    following: SendFunc,
    subject: str,
    message: Any,
    **params: Any,
) -> Any:
    return await hook(subject, message, following, **params)


async def _listen_link(
    hook: Callable[[Message, ListenFunc], Awaitable[Any]], following: ListenFunc, msg: Message
) -> Any:
    return await hook(msg, following)


class MiddlewareStack:
    """The middlewares of one app, in the order they were added, and their composed chains.

    Middlewares that override none of the hooks of a direction are skipped for it (no
    cost).  Send chains are composed once per change; listen chains per message (their
    innermost function is the listener).
    """

    def __init__(self) -> None:
        self._items: list[Middleware] = []
        self._send_hooks: dict[str, list[Callable[..., Awaitable[Any]]]] = {k: [] for k in _KINDS}
        self._listen_hooks: dict[str, list[Callable[..., Awaitable[Any]]]] = {k: [] for k in _KINDS}
        self._send_chains: dict[tuple[str, SendFunc], SendFunc] = {}

    def __len__(self) -> int:
        return len(self._items)

    @property
    def items(self) -> tuple[Middleware, ...]:
        """The middlewares, first added first (innermost)."""
        return tuple(self._items)

    def add(self, middleware: Middleware) -> None:
        """Add ``middleware`` as the new outermost one."""
        if not isinstance(middleware, Middleware):
            raise TypeError(f"expected a Middleware instance, got {type(middleware).__name__}")
        self._items.append(middleware)
        for kind in _KINDS:
            if _overrides(middleware, f"send_{kind}", "send_any"):
                self._send_hooks[kind].append(getattr(middleware, f"send_{kind}"))
            if _overrides(middleware, f"listen_{kind}", "listen_any"):
                self._listen_hooks[kind].append(getattr(middleware, f"listen_{kind}"))
        self._send_chains.clear()

    def send_chain(self, kind: str, final: SendFunc) -> SendFunc:
        """``final`` wrapped in every send hook of ``kind`` (``"publish"``/``"request"``)."""
        key = (kind, final)
        chain = self._send_chains.get(key)
        if chain is None:
            chain = final
            for hook in self._send_hooks[kind]:
                chain = partial(_send_link, hook, chain)
            self._send_chains[key] = chain
        return chain

    def listen_chain(self, kind: str, final: ListenFunc) -> ListenFunc:
        """``final`` wrapped in every listen hook of ``kind``."""
        chain = final
        for hook in self._listen_hooks[kind]:
            chain = partial(_listen_link, hook, chain)
        return chain


# --------------------------------------------------------------------------- built-ins


class _AroundEveryHook(Middleware):
    """Base of the built-ins: the same code around all four hooks, :meth:`_around`."""

    async def _around(self, hook: str, subject: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``await call()`` (the rest of the chain) for ``hook`` on ``subject``."""
        raise NotImplementedError

    async def send_publish(
        self, subject: str, message: Any, publish_func: SendFunc, **params: Any
    ) -> None:
        await self._around(
            "send_publish", subject, partial(publish_func, subject, message, **params)
        )

    async def send_request(
        self, subject: str, message: Any, request_func: SendFunc, **params: Any
    ) -> Any:
        return await self._around(
            "send_request", subject, partial(request_func, subject, message, **params)
        )

    async def listen_publish(self, msg: Message, callback: ListenFunc) -> Any:
        return await self._around("listen_publish", msg.subject, partial(callback, msg))

    async def listen_request(self, msg: Message, callback: ListenFunc) -> Any:
        return await self._around("listen_request", msg.subject, partial(callback, msg))


_FAILED_WHAT = {
    "send_publish": "publish to",
    "send_request": "request to",
    "listen_publish": "listener for message on",
    "listen_request": "listener for request on",
}


class ErrorLoggingMiddleware(_AroundEveryHook):
    """Logs every exception raised inside the chain (sends and listeners), then re-raises it.

    ``logger`` defaults to ``logging.getLogger("micro.app")``; ``level`` to ``ERROR``.
    Behaviour is otherwise unchanged: callers and the app still see the exception.
    """

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.ERROR) -> None:
        self.logger = logger or logging.getLogger("micro.app")
        self.level = level

    async def _around(self, hook: str, subject: str, call: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await call()
        except Exception as exc:
            what = _FAILED_WHAT[hook]
            self.logger.log(self.level, "%s %r failed: %r", what, subject, exc, exc_info=exc)
            raise


@dataclass(slots=True)
class Timing:
    """Accumulated durations (seconds) of one hook on one subject."""

    count: int = 0
    failures: int = 0
    total: float = 0.0
    max: float = 0.0

    @property
    def average(self) -> float:
        return self.total / self.count if self.count else 0.0


class TimingMiddleware(_AroundEveryHook):
    """Measures how long each send and each listener call takes, per hook and subject.

    :attr:`timings` maps ``(hook, subject)`` -- hook one of ``send_publish``,
    ``send_request``, ``listen_publish``, ``listen_request`` -- to a :class:`Timing`
    (failed calls count too, and in ``failures``).  ``clock`` (seconds, default
    ``time.perf_counter``) is injectable; with ``logger`` every duration is also logged at
    ``level`` (default ``DEBUG``).
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.perf_counter,
        logger: logging.Logger | None = None,
        level: int = logging.DEBUG,
    ) -> None:
        self._clock = clock
        self._logger = logger
        self._level = level
        self._timings: dict[tuple[str, str], Timing] = {}

    @property
    def timings(self) -> dict[tuple[str, str], Timing]:
        """A snapshot copy of the accumulated timings."""
        return {
            key: Timing(t.count, t.failures, t.total, t.max) for key, t in self._timings.items()
        }

    def reset(self) -> None:
        """Forget every timing."""
        self._timings.clear()

    def _record(self, hook: str, subject: str, started: float, failed: bool) -> None:
        elapsed = self._clock() - started
        timing = self._timings.get((hook, subject))
        if timing is None:
            timing = self._timings[(hook, subject)] = Timing()
        timing.count += 1
        timing.failures += failed
        timing.total += elapsed
        timing.max = max(timing.max, elapsed)
        if self._logger is not None:
            self._logger.log(self._level, "%s %r took %.6f s", hook, subject, elapsed)

    async def _around(self, hook: str, subject: str, call: Callable[[], Awaitable[Any]]) -> Any:
        started = self._clock()
        try:
            result = await call()
        except BaseException:
            self._record(hook, subject, started, True)
            raise
        self._record(hook, subject, started, False)
        return result


def check_middleware_class(cls: object) -> type[Middleware]:
    """Return ``cls`` if it is a :class:`Middleware` subclass; ``TypeError`` otherwise."""
    if isinstance(cls, Middleware):
        raise TypeError(
            f"add_middleware() takes the middleware class and its arguments, got an instance "
            f"of {type(cls).__name__}: use add_middleware({type(cls).__name__}, *args, **kwargs)"
        )
    if not isinstance(cls, type) or not issubclass(cls, Middleware):
        raise TypeError(f"add_middleware() needs a subclass of micro.app.Middleware, got {cls!r}")
    return cls
