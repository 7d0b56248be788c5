"""A :class:`Transport` that delegates to another and lets a test inject connection events
and deny subscriptions: only the ``Transport`` protocol itself is visible through it (none of
the optional extensions), as with a third-party transport that implements nothing optional.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from transports.base import (
    EventListener,
    Headers,
    Msg,
    PermissionViolationError,
    Subscription,
    Transport,
    TransportEvent,
)

__all__ = ["TappedTransport"]


class TappedTransport:
    """A :class:`Transport` delegating to ``inner``, with two test hooks.

    :meth:`inject` emits a fake connection event to the listeners added through it;
    :meth:`deny` makes later subscribes to a subject fail like a permissions violation.
    """

    def __init__(self, inner: Transport) -> None:
        self._inner = inner
        self._listeners: list[EventListener] = []
        self._denied: set[str] = set()

    def inject(self, event: TransportEvent) -> None:
        for listener in list(self._listeners):
            listener(event)

    def deny(self, subject: str) -> None:
        self._denied.add(subject)

    @property
    def max_payload(self) -> int:
        return self._inner.max_payload

    @property
    def is_connected(self) -> bool:
        return self._inner.is_connected

    @property
    def is_closed(self) -> bool:
        return self._inner.is_closed

    def new_inbox(self) -> str:
        return self._inner.new_inbox()

    async def publish(
        self,
        subject: str,
        data: bytes = b"",
        *,
        reply: str | None = None,
        headers: Headers | None = None,
    ) -> None:
        await self._inner.publish(subject, data, reply=reply, headers=headers)

    async def subscribe(
        self,
        subject: str,
        *,
        queue: str | None = None,
        pending_msgs_limit: int | None = None,
        pending_bytes_limit: int | None = None,
    ) -> Subscription:
        if subject in self._denied:
            raise PermissionViolationError("subscribe", subject)
        return await self._inner.subscribe(
            subject,
            queue=queue,
            pending_msgs_limit=pending_msgs_limit,
            pending_bytes_limit=pending_bytes_limit,
        )

    async def request(
        self,
        subject: str,
        data: bytes = b"",
        *,
        headers: Headers | None = None,
        timeout: float = 1.0,
    ) -> Msg:
        return await self._inner.request(subject, data, headers=headers, timeout=timeout)

    async def flush(self, timeout: float = 10.0) -> None:
        await self._inner.flush(timeout)

    async def drain(self) -> None:
        await self._inner.drain()

    async def close(self) -> None:
        await self._inner.close()

    def add_event_listener(self, listener: EventListener) -> Callable[[], None]:
        remove_inner = self._inner.add_event_listener(listener)
        self._listeners.append(listener)

        def remove() -> None:
            remove_inner()
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    async def __aenter__(self) -> TappedTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
