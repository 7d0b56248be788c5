"""The transport conformance suite, part of ``TransportConformance``: close, connection
drain and connection events."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from transports.base import (
    ConnectionClosedError,
    Msg,
    Subscription,
    SubscriptionClosedError,
    TransportEvent,
    TransportEventKind,
)

from ._suite_base import WAIT, Recorder, SuiteBase
from ._transport_support import connections, settle
from .backend import ConformanceBackend

__all__ = ["LifecycleCases"]


class LifecycleCases(SuiteBase):
    """Close, connection drain and connection events."""

    # ------------------------------------------------------------------ close, drain, events

    async def test_close_fails_a_pending_request(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        responder, requester = await connections(conformance_backend, 2)
        sub = await responder.subscribe("close.req")
        failed = anyio.Event()

        async def ask() -> None:
            with pytest.raises(ConnectionClosedError):
                await requester.request("close.req", b"x", timeout=WAIT * 3)
            failed.set()

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(ask)
                await sub.next_msg(timeout=WAIT)  # the request is now pending
                await requester.close()
        assert failed.is_set()

    async def test_close_ends_iteration_and_next_msg(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        transport = await conformance_backend.connect()
        sub = await transport.subscribe("close.iter")
        iterating = anyio.Event()
        got: list[Msg] = []

        async def consume() -> None:
            iterating.set()
            got.extend([msg async for msg in sub])

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                await iterating.wait()
                await transport.close()
        assert got == []
        assert not sub.is_active
        with pytest.raises(SubscriptionClosedError):
            await sub.next_msg(timeout=WAIT)

    async def test_operations_after_close_raise_connection_closed(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        transport = await conformance_backend.connect()
        sub = await transport.subscribe("closed.x")
        await transport.close()
        for attempt in (
            lambda: transport.publish("closed.x", b"x"),
            lambda: transport.subscribe("closed.x"),
            lambda: transport.request("closed.x", b"x", timeout=WAIT),
            lambda: transport.flush(),
        ):
            with anyio.fail_after(WAIT), pytest.raises(ConnectionClosedError):
                await attempt()
        with anyio.fail_after(WAIT):
            await transport.close()
            await transport.drain()
            await sub.unsubscribe()
            await sub.drain()

    async def test_close_is_idempotent_and_emits_closed_once(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        transport = await conformance_backend.connect()
        log = Recorder()
        transport.add_event_listener(log)
        await transport.close()
        assert transport.is_closed
        assert not transport.is_connected
        assert log.kinds() == [TransportEventKind.CLOSED]
        await transport.close()
        assert log.kinds() == [TransportEventKind.CLOSED]
        assert log.events[0].error is None

    async def test_transport_drain_delivers_buffers_then_closes(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await connections(conformance_backend, 2)
        log = Recorder()
        subscriber.add_event_listener(log)
        subs = [await subscriber.subscribe("tdrain.a"), await subscriber.subscribe("tdrain.b")]
        for number in range(5):
            await publisher.publish("tdrain.a", str(number).encode())
            await publisher.publish("tdrain.b", str(number).encode())
        await settle(publisher, subscriber)
        got: dict[str, list[int]] = {}

        async def consume(sub: Subscription) -> None:
            got[sub.subject] = [int(msg.data) async for msg in sub]

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                for sub in subs:
                    tg.start_soon(consume, sub)
                await subscriber.drain()
        assert got == {"tdrain.a": list(range(5)), "tdrain.b": list(range(5))}
        assert subscriber.is_closed
        assert not subscriber.is_connected
        assert log.kinds().count(TransportEventKind.CLOSED) == 1
        with pytest.raises(ConnectionClosedError):
            await subscriber.publish("tdrain.a", b"x")

    async def test_removed_listener_is_not_called(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        transport = await conformance_backend.connect()
        removed, kept = Recorder(), Recorder()
        remove = transport.add_event_listener(removed)
        transport.add_event_listener(kept)
        remove()
        await transport.close()
        assert removed.events == []
        assert kept.kinds() == [TransportEventKind.CLOSED]

    async def test_a_failing_listener_does_not_affect_others(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        transport = await conformance_backend.connect()
        calls: list[TransportEvent] = []

        def failing(event: TransportEvent) -> None:
            calls.append(event)
            raise RuntimeError("listener failure")

        kept = Recorder()
        transport.add_event_listener(failing)
        transport.add_event_listener(kept)
        await transport.close()
        assert [event.kind for event in calls] == [TransportEventKind.CLOSED]
        assert kept.kinds() == [TransportEventKind.CLOSED]
        assert transport.is_closed

    async def test_flush_then_close_loses_nothing(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await connections(conformance_backend, 2)
        sub = await subscriber.subscribe("flush.x")
        for number in range(100):
            await publisher.publish("flush.x", str(number).encode())
        with anyio.fail_after(WAIT):
            await publisher.flush()
        await publisher.close()
        got = [int((await sub.next_msg(timeout=WAIT)).data) for _ in range(100)]
        assert got == list(range(100))
