"""The App on a real nats-server (fixture ``micro_nats_server``): async, sync and thread calls."""

from __future__ import annotations

import functools
import json
import queue
import threading
import uuid
from typing import Any

import anyio
import pytest

from micro.app import App, Message, SyncCallInLoopError
from micro.errors import ServiceError
from testing.nats_server import NatsServer
from transports.base import NoRespondersError, RequestTimeoutError

WAIT = 10.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # nats-py is asyncio-only


@pytest.fixture
def prefix() -> str:
    """A subject prefix no other test uses (the server is shared by the session)."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.mark.anyio
async def test_every_async_call_on_nats(micro_nats_server: NatsServer, prefix: str) -> None:
    server = App(micro_nats_server.url, service_name=f"svc_{prefix}", service_version="1.0.0")
    notes: list[Message] = []
    noted = anyio.Event()

    @server.listen(subject=f"{prefix}.double")
    async def double(msg: Message) -> Any:
        if msg.data == "boom":
            raise ServiceError(418, "teapot")
        return {"double": msg.data * 2, "trace": (msg.headers or {}).get("Trace")}

    @server.listen(subject=f"{prefix}.note", data_type=str)
    async def note(msg: Message) -> None:
        notes.append(msg)
        if len(notes) == 2:
            noted.set()

    client = App(micro_nats_server.url)
    with anyio.fail_after(WAIT):
        async with server, client:
            answer = await client.request(
                subject=f"{prefix}.double", message=21, timeout=WAIT, headers={"Trace": "t1"}
            )
            assert answer == {"double": 42, "trace": "t1"}
            with pytest.raises(ServiceError, match="418:teapot"):
                await client.request(f"{prefix}.double", "boom", data_type="json")
            with pytest.raises(ServiceError, match="400:cannot decode payload as json"):
                await client.request(f"{prefix}.double", "not json")
            with pytest.raises(NoRespondersError):
                await client.request(f"{prefix}.nobody", 1)

            await client.publish(f"{prefix}.note", "hello", headers={"H": "1"})
            await client.nats.publish(
                subject=f"{prefix}.note", message="world", reply_to=f"{prefix}.x", force=True
            )
            await noted.wait()
            assert [(m.data, m.headers, m.reply) for m in notes] == [
                ("hello", {"H": "1"}, None),
                ("world", None, f"{prefix}.x"),
            ]

            async def upper(msg: Message) -> str:
                return str(msg.data).upper()

            ssid = await server.subscribe_new_subject(f"{prefix}.upper", upper, data_type=str)
            assert await client.request(f"{prefix}.upper", "abc", response_data_type=str) == "ABC"
            info = await client.request(f"$SRV.INFO.svc_{prefix}")
            assert [e["subject"] for e in info["endpoints"]] == [
                f"{prefix}.double",
                f"{prefix}.note",
                f"{prefix}.upper",
            ]
            stats = await client.request(f"$SRV.STATS.svc_{prefix}")
            assert stats["endpoints"][0]["num_requests"] == 3
            assert stats["endpoints"][0]["num_errors"] == 2
            await server.unsubscribe_ssid(ssid)
            with pytest.raises(NoRespondersError):
                await client.request(f"{prefix}.upper", "abc")
            await server.nats.unsubscribe_subject(f"{prefix}.note")
            info = await client.request(f"$SRV.INFO.svc_{prefix}")
            assert [e["name"] for e in info["endpoints"]] == ["double"]

            await server.disconnect()
            assert server.transport is not None
            assert server.transport.is_closed
            with pytest.raises(NoRespondersError):
                await client.request(f"$SRV.PING.svc_{prefix}")


@pytest.mark.anyio
async def test_threads_call_into_an_app_in_the_test_loop(
    micro_nats_server: NatsServer, prefix: str
) -> None:
    app = App(micro_nats_server.url)
    handed: list[Any] = []
    got_it = anyio.Event()

    @app.listen(subject=f"{prefix}.echo")
    async def echo(msg: Message) -> Any:
        with pytest.raises(SyncCallInLoopError, match=r"await app\.request"):
            app.request_sync(f"{prefix}.x", 1)  # must wait for a result: refused in the loop
        app.publish_sync(f"{prefix}.handed", msg.data)  # queued, sent after this returns
        return msg.data

    @app.listen(subject=f"{prefix}.handed")
    async def handed_over(msg: Message) -> None:
        handed.append(msg.data)
        got_it.set()

    def in_a_thread_with_its_own_loop() -> Any:
        call = functools.partial(
            app.request_from_another_thread, f"{prefix}.echo", [1, 2], timeout=WAIT
        )
        return anyio.run(call)

    with anyio.fail_after(WAIT):
        async with app:
            reply = await anyio.to_thread.run_sync(in_a_thread_with_its_own_loop)
            assert reply == [1, 2]
            await got_it.wait()
            assert handed == [[1, 2]]
            await anyio.to_thread.run_sync(
                lambda: app.nats.publish_from_another_thread(f"{prefix}.echo", 3, force=True)
            )


def test_every_blocking_call_on_nats(micro_nats_server: NatsServer, prefix: str) -> None:
    app = App(micro_nats_server.url)

    @app.listen(subject=f"{prefix}.echo")
    async def echo(msg: Message) -> Any:
        return msg.data

    got: queue.Queue[Any] = queue.Queue()
    try:
        assert app.request_sync(f"{prefix}.echo", {"a": 1}, timeout=WAIT) == {"a": 1}
        assert app.nats.request_sync(f"{prefix}.echo", 2, timeout=WAIT) == 2
        ssid = app.subscribe_new_subject_sync(
            f"{prefix}.collect", lambda msg: got.put(msg.data), ordered=True
        )
        app.publish_sync(f"{prefix}.collect", {"n": 1}, force=True)
        app.nats.publish_sync(f"{prefix}.collect", {"n": 2}, force=True)
        app.publish_from_another_thread(f"{prefix}.collect", {"n": 3}, force=True)
        app.nats.publish_from_another_thread(f"{prefix}.collect", {"n": 4}, force=True)
        assert [got.get(timeout=WAIT) for _ in range(4)] == [{"n": n} for n in (1, 2, 3, 4)]
        app.unsubscribe_ssid_sync(ssid)
        with pytest.raises(NoRespondersError):
            app.request_sync(f"{prefix}.collect", 1, timeout=WAIT)
        app.nats.subscribe_new_subject_sync(f"{prefix}.quiet", lambda msg: None)
        with pytest.raises(RequestTimeoutError):
            app.request_sync(f"{prefix}.quiet", 1, timeout=0.2)
        app.unsubscribe_subject_sync(f"{prefix}.quiet")
        with pytest.raises(NoRespondersError):
            app.request_sync(f"{prefix}.quiet", 1, timeout=WAIT)

        results: queue.Queue[Any] = queue.Queue()
        threads = [
            threading.Thread(
                target=lambda n=n: results.put(
                    anyio.run(
                        functools.partial(
                            app.request_from_another_thread, f"{prefix}.echo", n, timeout=WAIT
                        )
                    )
                )
            )
            for n in range(5)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        assert sorted(results.get_nowait() for _ in range(5)) == [0, 1, 2, 3, 4]
    finally:
        app.nats.disconnect_sync()
    assert not app.is_running


def test_start_on_nats_serves_until_a_task_disconnects(
    micro_nats_server: NatsServer, prefix: str
) -> None:
    app = App(micro_nats_server.url, service_name=f"svc_{prefix}", service_version="0.1.0")
    seen: list[Any] = []

    @app.listen(subject=f"{prefix}.hello", data_type=str)
    async def hello(msg: Message) -> str:
        return f"hello {msg.data}"

    @app.task()
    async def check() -> None:
        seen.append(await app.request(f"{prefix}.hello", "nats", response_data_type=str))
        ping = await app.request(f"$SRV.PING.svc_{prefix}")
        seen.append(json.dumps(ping["name"]))
        await app.disconnect()

    app.start()
    assert seen == ["hello nats", json.dumps(f"svc_{prefix}")]
