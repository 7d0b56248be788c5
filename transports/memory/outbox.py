"""``Outbox``: what a disconnected memory connection holds until it reconnects.

While ``MemoryTransport.force_disconnect`` holds, a connection behaves as nats-py does
while it reconnects: what it publishes is buffered (bounded by the ``pending_size``
connect option, 2 MiB by default as in nats-py) and sent on reconnection in publish
order, and a ``flush`` waits for the reconnection.  This module keeps that state; the
connection decides when it is disconnected.
"""

from __future__ import annotations

from collections.abc import Callable

from transports.base import ConnectionClosedError, FlushTimeoutError, Msg, TransportError
from transports.runtime import Expiry, Waiter, fail, new_waiter, wait, wake

__all__ = ["Outbox"]


class Outbox:
    """Publishes buffered while disconnected, and the flushes waiting for the reconnection.

    ``pending_size`` bounds the buffer in bytes of payload plus headers (each header
    counted as ``name: value\\r\\n``); ``0`` or less disables buffering.
    """

    __slots__ = ("_bytes", "_messages", "_pending_size", "_waiters")

    def __init__(self, pending_size: int) -> None:
        self._pending_size = pending_size
        self._messages: list[Msg] = []
        self._bytes = 0
        self._waiters: list[Waiter[None]] = []

    @property
    def size(self) -> int:
        """Bytes (payload plus headers) of the messages held."""
        return self._bytes

    def hold(self, msg: Msg) -> None:
        """Buffer ``msg`` for the reconnection.

        Raises :class:`TransportError` (and does not buffer it) when it would take the
        buffer past ``pending_size``.
        """
        size = len(msg.data)
        if msg.headers:
            size += sum(len(name) + len(value.encode()) + 4 for name, value in msg.headers.items())
        if self._pending_size <= 0 or self._bytes + size > self._pending_size:
            raise TransportError(
                "reconnecting and the outbound buffer (pending_size) is full: "
                f"{self._bytes} + {size} bytes > {self._pending_size}"
            )
        self._messages.append(msg)
        self._bytes += size

    def reconnected(self, send: Callable[[Msg], object]) -> None:
        """The connection is back: ``send`` every message held, in publish order, then
        release the waiting flushes.  The outbox is empty afterwards."""
        messages, self._messages, self._bytes = self._messages, [], 0
        for msg in messages:
            send(msg)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            wake(waiter, None)

    def discard(self) -> None:
        """The connection closed: drop the messages held (as nats-py does) and fail the
        waiting flushes with :class:`ConnectionClosedError`."""
        self._messages.clear()
        self._bytes = 0
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            fail(waiter, ConnectionClosedError())

    async def wait_reconnected(self, timeout: float, expiry: Expiry) -> None:
        """Return at the next :meth:`reconnected`.

        Raises :class:`FlushTimeoutError` after ``timeout`` seconds (timed by ``expiry``)
        and :class:`ConnectionClosedError` at :meth:`discard`.
        """
        waiter: Waiter[None] = new_waiter()
        self._waiters.append(waiter)
        try:
            await wait(waiter, timeout, expiry)
        except TimeoutError:
            raise FlushTimeoutError(
                f"flush timed out after {timeout:g} s: the connection is disconnected"
            ) from None
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
