"""What a user coming from Panini relies on, on every transport: memory (asyncio and trio)
and a real nats-server (asyncio).  Each test pins a row of the "Coming from Panini" table
in docs/app.md.
"""

from __future__ import annotations

import functools
import json
import uuid
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

from micro.app import App, Message, Middleware, SyncCallInLoopError
from transports.base import Transport

pytestmark = pytest.mark.anyio

WAIT = 10.0

WHERE = ["memory-asyncio", "memory-trio", "nats-asyncio"]


@pytest.fixture(params=WHERE)
def where(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def anyio_backend(where: str) -> str:
    return where.split("-")[1]


@pytest.fixture
def url(where: str, request: pytest.FixtureRequest) -> str:
    """A broker of the test's own: a fresh memory broker, or the session's nats-server."""
    if where.startswith("nats"):
        return str(request.getfixturevalue("micro_nats_server").url)
    return f"memory://panini-{uuid.uuid4().hex}"


@pytest.fixture
def p() -> str:
    """A subject prefix no other test uses (the nats-server is shared by the session)."""
    return f"p{uuid.uuid4().hex[:12]}"


# --------------------------------------------------------------------------- 1. concurrency


async def test_a_listener_handles_messages_concurrently_and_stats_count_each(
    url: str, p: str
) -> None:
    """Five requests to a listener that waits until all five are inside: handled one at a
    time this would never finish.  The service's stats count all five."""
    app = App(url, service_name="conc", service_version="1.0.0")
    inside = 0
    all_in = anyio.Event()

    @app.listen(subject=f"{p}.slow")
    async def slow(msg: Message) -> int:
        nonlocal inside
        inside += 1
        if inside == 5:
            all_in.set()
        await all_in.wait()
        return int(msg.data)

    with anyio.fail_after(WAIT):
        async with app:
            results: list[Any] = []

            async def ask(n: int) -> None:
                results.append(await app.request(f"{p}.slow", n, timeout=WAIT))

            async with anyio.create_task_group() as group:
                for n in range(5):
                    group.start_soon(ask, n)
            assert sorted(results) == [0, 1, 2, 3, 4]
            assert app.service is not None
            (endpoint,) = app.service.stats().endpoints
            assert (endpoint.num_requests, endpoint.num_errors) == (5, 0)


async def test_ordered_listeners_take_one_message_at_a_time_in_order(url: str, p: str) -> None:
    app = App(url)
    seen: list[int] = []
    inside = most = 0
    done = anyio.Event()

    @app.listen(subject=f"{p}.seq", ordered=True)
    async def sequential(msg: Message) -> None:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        await anyio.lowlevel.checkpoint()
        await anyio.lowlevel.checkpoint()
        seen.append(msg.data)
        inside -= 1
        if len(seen) == 20:
            done.set()

    with anyio.fail_after(WAIT):
        async with app:
            for n in range(20):
                await app.publish(f"{p}.seq", n)
            await done.wait()
    assert seen == list(range(20))
    assert most == 1


async def test_the_app_wide_bound_holds_across_listeners(url: str, p: str) -> None:
    app = App(url, max_concurrency=2)
    inside = most = 0
    two_in, release = anyio.Event(), anyio.Event()

    async def hold(msg: Message) -> str:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        if inside == 2:
            two_in.set()
        await release.wait()
        inside -= 1
        return 1

    app.listen(subject=[f"{p}.a", f"{p}.b"])(hold)

    with anyio.fail_after(WAIT):
        async with app, anyio.create_task_group() as group:
            for subject in ("a", "b", "a", "b"):
                group.start_soon(
                    functools.partial(app.request, f"{p}.{subject}", None, timeout=WAIT)
                )
            await two_in.wait()
            release.set()
    assert most == 2


def test_concurrency_options_are_checked_at_once() -> None:
    app = App("memory://")
    with pytest.raises(ValueError, match="contradicts max_concurrency=3"):
        app.listen("a", ordered=True, max_concurrency=3)
    with pytest.raises(ValueError, match="max_concurrency 0"):
        app.listen("a", max_concurrency=0)
    with pytest.raises(ValueError, match="max_concurrency 0"):
        App("memory://", max_concurrency=0)


# --------------------------------------------------------------------------- 2. other threads


async def test_a_thread_with_its_own_loop_awaits_request_from_another_thread(
    url: str, p: str
) -> None:
    app = App(url)
    arrived = anyio.Event()
    got: list[Any] = []

    @app.listen(subject=f"{p}.echo")
    async def echo(msg: Message) -> Any:
        return msg.data

    @app.listen(subject=f"{p}.note", data_type=str)  # a str is sent as text
    async def note(msg: Message) -> None:
        got.append(msg.data)
        arrived.set()

    def in_another_thread() -> Any:
        async def main() -> Any:  # a coroutine of that thread's own event loop
            reply = await app.request_from_another_thread(f"{p}.echo", {"n": 1}, timeout=WAIT)
            assert app.nats.publish_from_another_thread(f"{p}.note", "hi") is None
            return reply

        return anyio.run(main, backend="asyncio")  # whatever the app's own loop runs

    with anyio.fail_after(WAIT):
        async with app:
            assert await anyio.to_thread.run_sync(in_another_thread) == {"n": 1}
            await arrived.wait()
    assert got == ["hi"]


# --------------------------------------------------------------------------- 3. reply bodies


@dataclass
class Point:
    x: int
    y: int


async def test_replies_are_encoded_by_what_the_listener_returns(
    url: str, p: str, where: str
) -> None:
    app = App(url)

    @app.listen(subject=f"{p}.reply", data_type=str)  # requests: text
    async def reply(msg: Message) -> Any:
        return {"text": "hello", "bytes": b"\x00\xff", "dict": {"a": 1}, "list": [1, "x"]}.get(
            msg.data, Point(1, 2)
        )

    with anyio.fail_after(WAIT):
        async with app:
            assert await app.request(f"{p}.reply", "text", response_data_type=str) == "hello"
            assert await app.request(f"{p}.reply", "bytes", response_data_type=bytes) == (
                b"\x00\xff"
            )
            assert await app.request(f"{p}.reply", "dict") == {"a": 1}
            assert await app.request(f"{p}.reply", "list") == [1, "x"]
            assert await app.request(f"{p}.reply", "point", response_data_type=Point) == Point(1, 2)
            transport = app.transport
            assert isinstance(transport, Transport)
            raw = await transport.request(f"{p}.reply", b"text", timeout=WAIT)
            assert raw.data == b"hello"  # text on the wire, not the JSON string
            raw = await transport.request(f"{p}.reply", b"point", timeout=WAIT)
            assert json.loads(raw.data) == {"x": 1, "y": 2}


async def test_publish_and_request_bodies_follow_the_same_rule(url: str, p: str) -> None:
    app = App(url)
    bodies: list[bytes] = []
    arrived = anyio.Event()

    @app.listen(subject=f"{p}.raw", data_type=bytes, ordered=True)
    async def raw(msg: Message) -> None:
        bodies.append(msg.data)
        if len(bodies) == 4:
            arrived.set()

    with anyio.fail_after(WAIT):
        async with app:
            for body in ("text", b"\x01", {"k": [1]}, Point(3, 4)):
                await app.publish(f"{p}.raw", body)
            await arrived.wait()
    assert bodies == [b"text", b"\x01", b'{"k":[1]}', b'{"x":3,"y":4}']


# --------------------------------------------------------------------------- 4. blocking in loop


async def test_publish_sync_in_the_apps_loop_schedules_and_returns(url: str, p: str) -> None:
    app = App(url)
    forwarded: list[Any] = []
    arrived = anyio.Event()
    refusal: list[str] = []

    @app.listen(subject=f"{p}.in")
    async def forward(msg: Message) -> None:
        app.publish_sync(f"{p}.out", {"seen": msg.data})  # Panini style: no await
        try:
            app.request_sync(f"{p}.out", 1)
        except SyncCallInLoopError as exc:
            refusal.append(str(exc))

    @app.listen(subject=f"{p}.out")
    async def out(msg: Message) -> None:
        forwarded.append(msg.data)
        arrived.set()

    with anyio.fail_after(WAIT):
        async with app:
            await app.publish(f"{p}.in", 7)
            await arrived.wait()
    assert forwarded == [{"seen": 7}]
    assert len(refusal) == 1
    assert "use 'await app.request(...)' there" in refusal[0]


# --------------------------------------------------------------------------- 5. middlewares


class Envelope(Middleware):  # written for Panini: only the import differs
    """Wraps what is sent in an envelope and unwraps what is received."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.opened = 0

    async def send_publish(
        self, subject: str, message: Any, publish_func: Any, *args: Any, **kwargs: Any
    ) -> None:
        await publish_func(subject, {"payload": message}, *args, **kwargs)

    async def send_request(
        self, subject: str, message: Any, request_func: Any, *args: Any, **kwargs: Any
    ) -> Any:
        return await request_func(subject, {"payload": message}, *args, **kwargs)

    async def listen_publish(self, msg: Any, callback: Any) -> None:
        msg.data = msg.data["payload"]
        self.opened += 1
        await callback(msg)

    async def listen_request(self, msg: Any, callback: Any) -> Any:
        msg.data = msg.data["payload"]
        msg.context["opened_by"] = "Envelope"
        self.opened += 1
        return await callback(msg)


async def test_a_panini_middleware_ports_unchanged(url: str, p: str) -> None:
    app = App(url)
    received: list[Any] = []
    arrived = anyio.Event()

    @app.listen(subject=f"{p}.mw")
    async def handle(msg: Message) -> Any:
        received.append(msg.data)
        if msg.is_request:
            return {"echo": msg.data, "by": msg.context.get("opened_by")}
        arrived.set()
        return None

    envelope = app.add_middleware(Envelope)
    assert isinstance(envelope, Envelope)
    with anyio.fail_after(WAIT):
        async with app:
            assert await app.request(f"{p}.mw", [1, 2], timeout=WAIT) == {
                "echo": [1, 2],
                "by": "Envelope",
            }
            await app.publish(f"{p}.mw", "plain")
            await arrived.wait()
    assert received == [[1, 2], "plain"]
    assert envelope.opened == 2


async def test_middleware_order_is_panini_s_last_added_outermost(url: str, p: str) -> None:
    app = App(url)
    order: list[str] = []

    class Named(Middleware):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

        async def send_request(
            self, subject: str, message: Any, request_func: Any, *args: Any, **kwargs: Any
        ) -> Any:
            order.append(f"{self.name} send")
            return await request_func(subject, message, *args, **kwargs)

        async def listen_request(self, msg: Any, callback: Any) -> Any:
            order.append(f"{self.name} listen")
            return await callback(msg)

    @app.listen(subject=f"{p}.order")
    async def handle(msg: Message) -> int:
        return 1

    app.add_middleware(Named, "first")
    app.add_middleware(Named, "second")
    with anyio.fail_after(WAIT):
        async with app:
            await app.request(f"{p}.order", None, timeout=WAIT)
    assert order == ["second send", "first send", "second listen", "first listen"]


# --------------------------------------------------------------------------- 6. task intervals


async def test_a_task_interval_is_measured_from_the_start_of_each_run(url: str) -> None:
    """A 0.2 s interval with a body of at least 0.1 s waits at most 0.1 s between runs
    (measured from the start of each run, not 0.2 s after the body)."""
    waits: list[float] = []

    async def recording_sleep(seconds: float) -> None:
        waits.append(seconds)
        await anyio.sleep(seconds)

    app = App(url, sleep=recording_sleep)
    runs = 0

    @app.task(interval=0.2)
    async def tick() -> None:
        nonlocal runs
        runs += 1
        await anyio.sleep(0.1)  # the body: never shorter than 0.1 s
        if runs == 3:
            await app.disconnect()

    with anyio.fail_after(WAIT):
        await app.run(handle_signals=False)
    assert len(waits) >= 2
    assert all(0 < wait <= 0.1 + 1e-6 for wait in waits[:2]), waits


# --------------------------------------------------------------------------- 7. subject lists


async def test_listen_takes_a_list_of_subjects(url: str, p: str) -> None:
    app = App(url, service_name="lists", service_version="1.0.0")

    @app.listen(subject=[f"{p}.one", f"{p}.two"])
    async def both(msg: Message) -> str:
        return msg.subject

    with anyio.fail_after(WAIT):
        async with app:
            for subject in (f"{p}.one", f"{p}.two"):
                assert await app.request(subject, None, response_data_type=str) == subject
            assert app.service is not None
            endpoints = app.service.info().endpoints
            assert [(e.name, e.subject) for e in endpoints] == [
                ("both", f"{p}.one"),
                ("both_2", f"{p}.two"),
            ]


# --------------------------------------------------------------------------- 8. load balancing


async def test_replicas_of_a_service_app_share_the_requests(url: str, p: str) -> None:
    runs: list[str] = []
    broadcasts: list[str] = []
    both_heard = anyio.Event()

    def replica(name: str) -> App:
        app = App(url, service_name="replicated", service_version="1.0.0")

        @app.listen(subject=f"{p}.work")
        async def work(msg: Message) -> str:
            runs.append(name)
            return name

        @app.listen(subject=f"{p}.all", queue=None)  # the explicit opt-out: every replica
        async def every(msg: Message) -> None:
            broadcasts.append(name)
            if len(broadcasts) == 2:
                both_heard.set()

        return app

    first, second = replica("first"), replica("second")
    with anyio.fail_after(WAIT):
        async with first, second:
            for n in range(4):
                await first.request(f"{p}.work", n, response_data_type=str, timeout=WAIT)
            await first.publish(f"{p}.all", None)
            await both_heard.wait()
            assert first.service is not None
            groups = {e.name: e.queue_group for e in first.service.info().endpoints}
    assert len(runs) == 4  # 4 requests, 4 handler runs: one replica each
    assert sorted(broadcasts) == ["first", "second"]
    assert groups == {"work": "q", "every": None}
