"""The coalescing PING/PONG barrier of ``NatsTransport`` (asyncio only).

A barrier returns once the server has processed everything this connection sent before it
was asked for.  ``subscribe``, ``unsubscribe``, ``drain`` and ``flush`` each need one; a
service starting or stopping asks for 9 + N of them at once.  nats-py's ``flush()`` sends one
PING per call and may send it *ahead* of commands still queued for its flusher task (so one
flush is not even a barrier, see ``bench/RESULTS.md``).

:class:`PingBarrier` makes every barrier asked for in the same event-loop turn share ONE
PING: the first request of a turn schedules the send with ``loop.call_soon``, so the tasks
already scheduled in that turn (e.g. the tasks of a service's concurrent subscribes) join
the batch before it goes out.  The send hands nats-py's queued commands to the socket followed
by the PING, in one write: every command of every member of the batch precedes it on the wire,
and the server answers in order, so its PONG is a barrier for all of them.  A request made
after the PING went out waits for the next one (its commands may follow that PING).

A barrier also takes back the wake-ups that the ``subscribe`` (or ``publish``) calls just
before it queued for nats-py's flusher task, so that the flusher does not write those
commands in a system call of its own just ahead of the PING.

:func:`queue_commands` queues commands for nats-py's flusher task without waiting (an
``UNSUB`` sent from a synchronous path).

It uses nats-py ``Client`` internals (``_pending``, ``_pending_data_size``, ``_pongs``,
``_transport``, ``_flush_queue``, ``_reading_task``), pinned by
``test_nats_internals_we_rely_on``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

from nats.aio.client import Client
from nats.errors import ConnectionClosedError, FlushTimeoutError

__all__ = ["PING_PROTO", "PingBarrier", "queue_commands"]

PING_PROTO = b"PING\r\n"


class _Batch:
    """The barriers waiting for one PING: ``waiters`` all, ``shared`` those whose timeout is
    the batch's (one timer for them all: a service's subscribes or drains)."""

    __slots__ = ("shared", "timeout", "timer", "waiters", "wakeups")

    def __init__(self, timeout: float) -> None:
        self.waiters: list[asyncio.Future[None]] = []
        self.shared: list[asyncio.Future[None]] = []
        # wake-ups taken back from nats-py's flusher: resolved once the send has written
        self.wakeups: list[asyncio.Future[Any]] = []
        self.timeout = timeout
        self.timer: asyncio.TimerHandle | None = None


class PingBarrier:
    """Barriers of one nats-py connection, coalesced per event-loop turn.

    A waiter fails with nats-py's ``ConnectionClosedError`` when the connection is closed
    before the PING could be sent, and with its ``FlushTimeoutError`` when no PONG came in
    time, like nats-py's own ``flush()`` (the owner maps them into the seam's errors).
    """

    __slots__ = ("_batch", "_nc")

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._batch: _Batch | None = None

    async def barrier(self, timeout: float, commands: Sequence[bytes] = ()) -> None:
        """Queue ``commands`` (unless reconnecting), then :meth:`wait` while connected with a
        live reader task; otherwise nats-py's own ``flush()``, after handing it what its
        flusher task would write next."""
        nc = self._nc
        if commands and nc.is_connected:
            queue_commands(nc, commands, wake=False)  # written by the send, ahead of its PING
        reader = nc._reading_task
        if nc.is_connected and reader is not None and not reader.done():
            await self.wait(timeout, claim_wakeup=True)
            return
        transport = nc._transport
        if nc._pending and transport is not None and nc.is_connected:
            transport.writelines(nc._pending)
            nc._pending = []
            nc._pending_data_size = 0
        await nc.flush(timeout)  # type: ignore[arg-type]  # annotated int, takes float

    async def wait(self, timeout: float, *, claim_wakeup: bool = False) -> None:
        """Return once the server answered a PING sent after everything sent so far.

        Raises ``FlushTimeoutError`` after ``timeout`` seconds without that answer and
        ``ConnectionClosedError`` (or what nats-py fails its pending PONGs with) when the
        connection closes first.  Cancelling the caller abandons only its own wait.

        With ``claim_wakeup``, the wake-ups queued for nats-py's flusher task (by the
        ``subscribe`` or ``publish`` calls just made) are taken back: the send writes what
        they were for, with the PING, in one write, instead of the flusher writing it first
        in a write of its own.  They are resolved once written, as the flusher would.
        """
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        batch = self._batch
        if batch is None:
            batch = self._batch = _Batch(timeout)
            batch.timer = loop.call_later(timeout, self._expire, batch.shared)
            loop.call_soon(self._send)
        flusher = self._nc._flush_queue
        if claim_wakeup and flusher is not None:
            while not flusher.empty():
                batch.wakeups.append(flusher.get_nowait())
        batch.waiters.append(waiter)
        if timeout == batch.timeout:
            batch.shared.append(waiter)
            await waiter
            return
        timer = loop.call_later(timeout, self._expire, [waiter])
        try:
            await waiter
        finally:
            timer.cancel()

    def fail_waiting(self, others: Iterable[asyncio.Future[Any]] = ()) -> None:
        """The connection closed: fail ``others`` (e.g. requests) and every PONG awaited
        (barriers, nats-py's flushes) with ``ConnectionClosedError``."""
        for future in [*others, *self._nc._pongs]:
            if not future.done():
                future.set_exception(ConnectionClosedError())

    def _expire(self, waiters: list[asyncio.Future[None]]) -> None:
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(FlushTimeoutError())

    def _send(self) -> None:
        """Close the batch: write what nats-py has queued, then one PING for the batch."""
        batch, self._batch = self._batch, None
        if batch is None:
            return
        try:
            self._write(batch)
        finally:
            for wakeup in batch.wakeups:
                if not wakeup.done():
                    wakeup.set_result(None)

    def _write(self, batch: _Batch) -> None:
        """Write nats-py's queued commands and the PING of ``batch``; settle it on failure."""
        nc = self._nc
        if nc.is_closed:
            _settle(batch, ConnectionClosedError())
            return
        transport = nc._transport
        if transport is None:  # no socket to ping on: the waiters time out, as nats-py's would
            return
        pong: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        nc._pongs.append(pong)  # nats-py's reader resolves them in order, one per PONG
        try:
            if nc._pending and nc.is_connected:
                # what nats-py's flusher task would write next, then the PING: one write
                # (one system call: on a loaded machine each costs more than the PING's wait)
                nc._pending.append(PING_PROTO)
                commands, nc._pending = nc._pending, []
                nc._pending_data_size = 0
                transport.writelines(commands)
            else:
                transport.write(PING_PROTO)
        except Exception as exc:
            nc._pongs.remove(pong)
            _settle(batch, exc)
            return
        pong.add_done_callback(partial(self._settle_from, batch))

    def _settle_from(self, batch: _Batch, pong: asyncio.Future[Any]) -> None:
        """The PONG came (or the connection failed it): release the batch accordingly."""
        _settle(batch, ConnectionClosedError() if pong.cancelled() else pong.exception())


def _settle(batch: _Batch, error: BaseException | None) -> None:
    """Release every waiter of ``batch`` still waiting, with ``error`` if there is one."""
    if batch.timer is not None:
        batch.timer.cancel()
    for waiter in batch.waiters:
        if not waiter.done():
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)


def queue_commands(nc: Client, commands: Iterable[bytes], *, wake: bool = True) -> None:
    """Queue ``commands`` for nats-py's flusher task and (``wake``) wake it, without waiting:
    what nats-py's ``_send_command`` and ``_flush_pending`` do, minus their ``await``s.  Does
    nothing unless connected (nats-py replays only its subscription table on reconnect)."""
    if not nc.is_connected:
        return
    for command in commands:
        nc._pending.append(command)
        nc._pending_data_size += len(command)
    flusher = nc._flush_queue
    if wake and flusher is not None and not flusher.full():  # full: it has wake-ups queued
        flusher.put_nowait(asyncio.get_running_loop().create_future())  # it resolves the future
