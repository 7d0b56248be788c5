"""The transport conformance suite, part of ``TransportConformance``: connections on other
threads and event loops reach the same broker, like clients in other processes.

Two apps each started from its own thread, a synchronous test thread calling an async
service, asyncio beside trio: each thread runs its own event loop and its own connections,
and they talk through the broker.  Needs the :data:`~testing.conformance.backend.CAP_THREADS`
capability (and :data:`~testing.conformance.backend.CAP_TRIO` for the trio thread).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import anyio
import anyio.to_thread
import pytest

from transports.base import Transport

from ._suite_base import WAIT, SuiteBase
from ._transport_support import connections
from .backend import CAP_THREADS, CAP_TRIO, ConformanceBackend

__all__ = ["ThreadCases"]


def _require(backend: ConformanceBackend, *capabilities: str) -> None:
    for capability in capabilities:
        if capability not in backend.capabilities:
            pytest.skip(f"the backend does not declare the {capability!r} capability")


@contextmanager
def _thread(
    main: Callable[[threading.Event, threading.Event], Awaitable[None]], backend: str
) -> Iterator[threading.Event]:
    """Run ``main(ready, stop)`` in its own thread on its own ``backend`` event loop; yields
    ``ready`` once it was set (bounded); on exit sets ``stop``, joins, re-raises its error."""
    ready, stop = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            anyio.run(main, ready, stop, backend=backend)
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)
            ready.set()

    thread = threading.Thread(target=run, name=f"conformance-{backend}", daemon=True)
    thread.start()
    try:
        if not ready.wait(WAIT):
            raise AssertionError(f"the {backend} thread did not get ready within {WAIT} s")
        if errors:
            raise errors[0]
        yield ready
    finally:
        stop.set()
        thread.join(WAIT)
        if thread.is_alive():
            raise AssertionError(f"the {backend} thread did not finish within {WAIT} s")
    if errors:
        raise errors[0]


def _echo_service(
    connect: Callable[[], Awaitable[Transport]], subject: str, queue: str | None = None
) -> Callable[[threading.Event, threading.Event], Awaitable[None]]:
    """A responder on its own connection that answers ``re:<data>`` until stopped."""

    async def main(ready: threading.Event, stop: threading.Event) -> None:
        connection = await connect()
        try:
            sub = await connection.subscribe(subject, queue=queue)

            async def serve() -> None:
                async for msg in sub:
                    if msg.reply is not None:
                        await connection.publish(msg.reply, b"re:" + msg.data)

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(serve)
                ready.set()
                await anyio.to_thread.run_sync(stop.wait, abandon_on_cancel=True)
                tasks.cancel_scope.cancel()
        finally:
            await connection.close()

    return main


class ThreadCases(SuiteBase):
    """Connections on other threads and event loops share the broker."""

    async def test_a_service_on_another_thread_answers_requests(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        _require(conformance_backend, CAP_THREADS)
        service = _echo_service(conformance_backend.connect, "threads.echo")
        (requester,) = await connections(conformance_backend, 1)
        with _thread(service, "asyncio"):
            for n in range(20):
                reply = await requester.request("threads.echo", b"%d" % n, timeout=WAIT)
                assert reply.data == b"re:%d" % n

    async def test_two_apps_on_their_own_threads_talk_to_each_other(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        """Two threads, each with its own loop and connection: one serves, one asks."""
        _require(conformance_backend, CAP_THREADS)
        service = _echo_service(conformance_backend.connect, "threads.apps")
        answers: list[bytes] = []

        async def caller(ready: threading.Event, stop: threading.Event) -> None:
            connection = await conformance_backend.connect()
            try:
                for n in range(10):
                    reply = await connection.request("threads.apps", b"%d" % n, timeout=WAIT)
                    answers.append(reply.data)
            finally:
                await connection.close()
                ready.set()

        with _thread(service, "asyncio"), _thread(caller, "asyncio"):
            pass
        assert answers == [b"re:%d" % n for n in range(10)]

    async def test_synchronous_code_on_another_thread_calls_a_service_here(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        """A plain thread with no loop of its own calls the service through a short
        ``anyio.run`` per call (each a new event loop), as synchronous test code does."""
        _require(conformance_backend, CAP_THREADS)
        (responder,) = await connections(conformance_backend, 1)
        sub = await responder.subscribe("threads.sync")
        answers: list[bytes] = []
        done = threading.Event()

        async def one_call(n: int) -> bytes:
            connection = await conformance_backend.connect()
            try:
                reply = await connection.request("threads.sync", b"%d" % n, timeout=WAIT)
                return reply.data
            finally:
                await connection.close()

        def synchronous_code() -> None:
            try:
                for n in range(3):
                    answers.append(anyio.run(one_call, n))
            finally:
                done.set()

        async def serve() -> None:
            async for msg in sub:
                assert msg.reply is not None
                await responder.publish(msg.reply, b"re:" + msg.data)

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(serve)
                thread = threading.Thread(target=synchronous_code, daemon=True)
                thread.start()
                await anyio.to_thread.run_sync(done.wait)
                tasks.cancel_scope.cancel()
        thread.join(WAIT)
        assert answers == [b"re:0", b"re:1", b"re:2"]

    async def test_services_on_two_threads_share_a_queue_group(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        """Two members of one queue group, each on its own thread (one on trio where the
        transport declares it, so asyncio and trio connections share the broker): every
        request from here is answered exactly once."""
        _require(conformance_backend, CAP_THREADS)
        other = "trio" if CAP_TRIO in conformance_backend.capabilities else "asyncio"
        first = _echo_service(conformance_backend.connect, "threads.group", queue="q")
        second = _echo_service(conformance_backend.connect, "threads.group", queue="q")
        (requester,) = await connections(conformance_backend, 1)
        with _thread(first, other), _thread(second, "asyncio"):
            replies = [
                (await requester.request("threads.group", b"x", timeout=WAIT)).data
                for _ in range(20)
            ]
        assert replies == [b"re:x"] * 20

    async def test_a_subscriber_on_another_thread_gets_every_message_in_order(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        _require(conformance_backend, CAP_THREADS)
        received: list[bytes] = []

        async def subscriber(ready: threading.Event, stop: threading.Event) -> None:
            connection = await conformance_backend.connect()
            try:
                sub = await connection.subscribe("threads.order")
                ready.set()
                with anyio.fail_after(WAIT):
                    async for msg in sub:
                        if msg.data == b"end":
                            return
                        received.append(msg.data)
            finally:
                await connection.close()

        (publisher,) = await connections(conformance_backend, 1)
        with _thread(subscriber, "asyncio"):
            for n in range(100):
                await publisher.publish("threads.order", b"%d" % n)
            await publisher.publish("threads.order", b"end")
            await publisher.flush()
        assert received == [b"%d" % n for n in range(100)]
