"""Every async call of the App Functions page on the memory transport (asyncio and trio)."""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any

import anyio
import pytest

from micro.app import App, AppError, AppNotRunningError, DecodeError, EncodeError, Message
from micro.errors import ERROR_CODE_HEADER, ERROR_HEADER, ServiceError
from transports.base import (
    BadQueueError,
    BadSubjectError,
    NoRespondersError,
    RequestTimeoutError,
    Transport,
)

pytestmark = pytest.mark.anyio

WAIT = 5.0


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@dataclasses.dataclass
class Order:
    item: str
    quantity: int


# --------------------------------------------------------------------------- publish


async def test_publish_reaches_listeners_and_other_connections(url: str, client: Transport) -> None:
    app = App(url)
    received: list[Message] = []
    done = anyio.Event()

    @app.listen(subject="some.subject", data_type=bytes, ordered=True)  # compared in order
    async def listener(msg: Message) -> None:
        received.append(msg)
        if len(received) == 4:
            done.set()

    outside = await client.subscribe("some.subject")
    async with app:
        await app.publish(subject="some.subject", message={"some": "message"})
        await app.publish("some.subject", "text", headers={"X-Trace": "1"})
        await app.publish("some.subject", b"\x00bytes", reply_to="answers.here")
        await app.publish("some.subject", Order("tea", 2), force=True)
        with anyio.fail_after(WAIT):
            await done.wait()
            raw = [await outside.next_msg(WAIT) for _ in range(4)]
    assert [m.data for m in received] == [m.raw for m in received]
    assert [m.raw for m in received] == [
        b'{"some":"message"}',
        b"text",
        b"\x00bytes",
        b'{"item":"tea","quantity":2}',
    ]
    assert [r.data for r in raw] == [m.raw for m in received]
    assert received[1].headers == {"X-Trace": "1"}
    assert received[2].reply == "answers.here"
    assert raw[2].reply == "answers.here"
    assert all(m.subject == "some.subject" and m.ssid == "1" for m in received)


async def test_publish_with_data_type_checks_the_value_before_sending(
    url: str, client: Transport
) -> None:
    outside = await client.subscribe("typed")
    async with App(url) as app:
        with pytest.raises(EncodeError, match="needs a str value, got dict"):
            await app.publish("typed", {"a": 1}, data_type=str)
        with pytest.raises(TypeError, match="unsupported data_type"):
            await app.publish("typed", b"x", data_type=int)
        await app.publish("typed", "ok", data_type=str, force=True)
        with anyio.fail_after(WAIT):
            assert (await outside.next_msg(WAIT)).data == b"ok"
    assert outside.pending_msgs == 0


async def test_publish_errors_reach_the_caller(url: str) -> None:
    async with App(url) as app:
        with pytest.raises(BadSubjectError, match=r"bad\.\.subject"):
            await app.publish("bad..subject", b"")
        with pytest.raises(EncodeError):
            await app.publish("ok", {1, 2})


# --------------------------------------------------------------------------- request


async def test_a_listener_return_value_is_the_reply(url: str, client: Transport) -> None:
    app = App(url)
    seen_headers: list[Any] = []

    @app.listen(subject="orders", data_type=Order)
    async def take(msg: Message) -> dict[str, Any]:
        seen_headers.append(msg.headers)
        order = msg.data
        assert isinstance(order, Order)
        return {"accepted": order.item, "total": order.quantity * 3}

    async with app:
        response = await app.request(
            subject="orders", message=Order("pen", 2), timeout=WAIT, headers={"Who": "me"}
        )
        assert response == {"accepted": "pen", "total": 6}
        raw = await client.request("orders", b'{"item":"ink","quantity":1}', timeout=WAIT)
        assert raw.data == b'{"accepted":"ink","total":3}'
        assert raw.headers is None
    assert seen_headers == [{"Who": "me"}, None]


async def test_request_response_data_type(url: str) -> None:
    app = App(url)

    @app.listen(subject="greet", data_type=str)
    async def greet(msg: Message) -> str:
        return f"hello {msg.data}"

    async with app:
        assert await app.request("greet", "bob", response_data_type=str) == "hello bob"
        assert await app.request("greet", "bob", response_data_type=bytes) == b"hello bob"
        with pytest.raises(DecodeError, match="cannot decode payload as json"):
            await app.request("greet", "bob")
        with pytest.raises(TypeError, match="unsupported data_type"):
            await app.request("greet", "bob", response_data_type=set)


async def test_request_without_responders_fails_promptly(url: str) -> None:
    async with App(url) as app:
        with anyio.fail_after(WAIT), pytest.raises(NoRespondersError):
            await app.request("nobody.home", {}, timeout=60)


async def test_request_timeout_when_the_listener_does_not_reply(url: str) -> None:
    app = App(url, request_timeout=0.05)
    calls: list[Any] = []

    @app.listen(subject="silent")
    async def silent(msg: Message) -> None:
        calls.append(msg.data)

    async with app:
        with pytest.raises(RequestTimeoutError) as caught:
            await app.request("silent", 1)
        assert caught.value.timeout == 0.05
        with pytest.raises(RequestTimeoutError):
            await app.request("silent", 2, timeout=0.01)
    assert calls == [1, 2]


async def test_listener_errors_become_error_replies_and_it_keeps_serving(
    url: str, client: Transport, caplog: pytest.LogCaptureFixture
) -> None:
    app = App(url)

    @app.listen(subject="fragile")
    async def fragile(msg: Message) -> Any:
        if msg.data == "typed":
            raise ServiceError(404, "no such thing")
        if msg.data == "boom":
            raise RuntimeError("kaboom")
        return "fine"

    async with app:
        with pytest.raises(ServiceError) as typed:
            await app.request("fragile", "typed", data_type="json")
        assert (typed.value.code, typed.value.description) == (404, "no such thing")
        with (
            caplog.at_level(logging.ERROR, logger="micro.app"),
            pytest.raises(ServiceError) as untyped,
        ):
            await app.request("fragile", "boom", data_type="json")
        assert (untyped.value.code, untyped.value.description) == (500, "Internal Server Error")
        assert any("kaboom" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)
        assert (
            await app.request("fragile", 1, response_data_type=str) == "fine"
        )  # a str reply is text
        raw = await client.request("fragile", b'"typed"', timeout=WAIT)
        assert raw.headers is not None
        assert raw.headers[ERROR_CODE_HEADER] == "404"


async def test_a_request_that_does_not_decode_gets_a_400_error_reply(
    url: str, client: Transport, caplog: pytest.LogCaptureFixture
) -> None:
    app = App(url)
    handled: list[Any] = []

    @app.listen(subject="strict", data_type=dict)
    async def strict(msg: Message) -> str:
        handled.append(msg.data)
        return "ok"

    async with app:
        with caplog.at_level(logging.WARNING, logger="micro.app"):
            raw = await client.request("strict", b"[1, 2]", timeout=WAIT)
        assert raw.headers is not None
        assert raw.headers[ERROR_CODE_HEADER] == "400"
        assert "cannot decode payload as dict" in raw.headers[ERROR_HEADER]
        assert any("expected JSON an object" in r.getMessage() for r in caplog.records)
        with pytest.raises(ServiceError, match="400:cannot decode"):
            await app.request("strict", b"not json")
        assert await app.request("strict", {"a": 1}, response_data_type=str) == "ok"
    assert handled == [{"a": 1}]


async def test_a_published_message_that_does_not_decode_is_logged_not_lost(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = App(url)
    got: list[Any] = []
    done = anyio.Event()

    @app.listen(subject="feed", data_type=list)
    async def feed(msg: Message) -> None:
        got.append(msg.data)
        done.set()

    with caplog.at_level(logging.WARNING, logger="micro.app"):
        async with app:
            await app.publish("feed", {"not": "a list"})
            await app.publish("feed", [1])
            with anyio.fail_after(WAIT):
                await done.wait()
    assert got == [[1]]
    assert any("cannot decode payload as list" in r.getMessage() for r in caplog.records)


async def test_a_plain_function_listener_runs_in_a_worker_thread(url: str) -> None:
    app = App(url)
    threads: list[int] = []

    @app.listen(subject="blocking", data_type=str)
    def blocking(msg: Message) -> str:
        threads.append(threading.get_ident())
        app.publish_sync("blocking.seen", msg.data)  # allowed: not the loop's thread
        return str(msg.data).upper()

    seen = anyio.Event()

    @app.listen(subject="blocking.seen", data_type=str)
    async def on_seen(msg: Message) -> None:
        seen.set()

    async with app:
        assert await app.request("blocking", "abc", response_data_type=str) == "ABC"
        with anyio.fail_after(WAIT):
            await seen.wait()
    assert threads
    assert threads[0] != threading.get_ident()


async def test_a_plain_function_returning_an_awaitable_is_awaited_in_the_loop(url: str) -> None:
    """A plain ``def`` listener or task that returns an awaitable (e.g. a coroutine it did
    not await): the function runs in a worker thread, the awaitable in the event loop, on
    both backends alike (trio refuses a coroutine as a worker thread's result)."""
    app = App(url)
    threads: list[int] = []
    ran = anyio.Event()

    async def answer(text: str) -> str:
        threads.append(threading.get_ident())
        return text.upper()

    @app.listen(subject="deferred", data_type=str)
    def deferred(msg: Message) -> Any:
        return answer(str(msg.data))

    async def finish() -> None:
        ran.set()

    @app.task()
    def task() -> Any:
        return finish()

    async with app:
        with anyio.fail_after(WAIT):
            assert await app.request("deferred", "abc", response_data_type=str) == "ABC"
            await ran.wait()
    assert threads == [threading.get_ident()]  # the coroutine ran in the loop's thread


async def test_wildcards_and_queue_groups(url: str) -> None:
    app = App(url)
    subjects: list[str] = []
    members: list[str] = []

    @app.listen(subject="wild.*.card")
    async def wild(msg: Message) -> None:
        subjects.append(msg.subject)

    @app.listen(subject="work", queue="workers")
    async def worker_a(msg: Message) -> str:
        members.append("a")
        return "a"

    @app.listen(subject="work", queue="workers")
    async def worker_b(msg: Message) -> str:
        members.append("b")
        return "b"

    async with app:
        await app.publish("wild.one.card", 1)
        answers = [await app.request("work", i, response_data_type=str) for i in range(20)]
    assert subjects == ["wild.one.card"]
    assert len(members) == 20
    assert answers == members


# --------------------------------------------------------------------------- subscriptions


async def test_subscribe_new_subject_returns_an_ssid_and_is_live_at_once(
    url: str, client: Transport
) -> None:
    async with App(url) as app:

        async def callback(msg: Message) -> Any:
            return {"got": msg.data}

        ssid = await app.subscribe_new_subject(subject="dyn.subject", callback=callback)
        assert isinstance(ssid, str)
        assert app.subscriptions[ssid] == "dyn.subject"
        reply = await client.request("dyn.subject", b"5", timeout=WAIT)
        assert reply.data == b'{"got":5}'
        other = await app.subscribe_new_subject("dyn.other", callback, data_type=str)
        assert other != ssid
        assert await app.request("dyn.other", "x") == {"got": "x"}

        await app.unsubscribe_ssid(ssid=ssid)
        assert ssid not in app.subscriptions
        with pytest.raises(NoRespondersError):
            await app.request("dyn.subject", 1)
        assert await app.request("dyn.other", "still") == {"got": "still"}


async def test_unsubscribe_subject_removes_every_listener_on_it(url: str) -> None:
    app = App(url)

    @app.listen(subject="shared")
    async def first(msg: Message) -> None:
        pass

    async with app:
        await app.subscribe_new_subject("shared", first)
        await app.subscribe_new_subject("kept", first)
        assert sorted(app.subscriptions.values()) == ["kept", "shared", "shared"]
        await app.unsubscribe_subject(subject="shared")
        assert list(app.subscriptions.values()) == ["kept"]
        with pytest.raises(NoRespondersError):
            await app.request("shared", 1)


async def test_unsubscribe_of_unknown_names_says_what_is_known(url: str) -> None:
    app = App(url)

    @app.listen(subject="some.subject")
    async def listener(msg: Message) -> None:
        pass

    async with app:
        with pytest.raises(
            ValueError, match=r"unknown ssid 'some.subject'.*use unsubscribe_subject"
        ):
            await app.unsubscribe_ssid(ssid="some.subject")
        with pytest.raises(
            ValueError, match=r"unknown ssid '42': known subscription ids are \['1'\]"
        ):
            await app.unsubscribe_ssid("42")
        with pytest.raises(TypeError, match="ssid must be a str"):
            await app.unsubscribe_ssid(1)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"no listener is subscribed to 'other'"):
            await app.unsubscribe_subject("other")


async def test_unsubscribe_lets_received_messages_finish(url: str) -> None:
    app = App(url)
    release = anyio.Event()
    handled: list[int] = []
    started = anyio.Event()

    async def slow(msg: Message) -> None:
        started.set()
        await release.wait()
        handled.append(msg.data)

    async with app:
        ssid = await app.subscribe_new_subject("slow", slow)
        for i in range(3):
            await app.publish("slow", i)
        with anyio.fail_after(WAIT):
            await started.wait()
            async with anyio.create_task_group() as group:
                group.start_soon(app.unsubscribe_ssid, ssid)
                await app.publish("slow", 99)  # may or may not arrive before interest stops
                release.set()
    assert sorted(handled[:3]) == [0, 1, 2]  # handled concurrently: any order


async def test_a_listener_can_unsubscribe_itself(url: str) -> None:
    app = App(url)
    calls: list[Any] = []

    @app.listen(subject="once")
    async def once(msg: Message) -> str:
        calls.append(msg.data)
        await app.unsubscribe_subject("once")  # must not wait for itself
        return "bye"

    async with app:
        with anyio.fail_after(WAIT):
            assert await app.request("once", 1, response_data_type=str) == "bye"
        await anyio.wait_all_tasks_blocked()  # the background drain has begun
        with anyio.fail_after(WAIT), pytest.raises(NoRespondersError):
            await app.request("once", 2, timeout=WAIT)
    assert calls[0] == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"subject": "a..b"}, BadSubjectError, "a..b"),
        ({"subject": "a", "queue": "bad queue"}, BadQueueError, "bad queue"),
        ({"subject": "a", "data_type": int}, TypeError, "unsupported data_type"),
        ({"subject": "a", "name": "bad name"}, ValueError, "invalid endpoint name"),
    ],
)
async def test_subscribe_new_subject_validates_at_once(
    url: str, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    async with App(url) as app:

        async def callback(msg: Message) -> None:
            pass

        with pytest.raises(error, match=match):
            await app.subscribe_new_subject(callback=callback, **kwargs)
        assert app.subscriptions == {}


# --------------------------------------------------------------------------- disconnect


async def test_disconnect_drains_listeners_and_is_idempotent(url: str, client: Transport) -> None:
    app = App(url)
    release = anyio.Event()
    first = anyio.Event()
    handled: list[int] = []

    @app.listen(subject="jobs")
    async def job(msg: Message) -> None:
        first.set()
        await release.wait()
        handled.append(msg.data)

    await app.__aenter__()
    for i in range(3):
        await client.publish("jobs", str(i).encode())
    await client.flush()
    with anyio.fail_after(WAIT):
        await first.wait()
        async with anyio.create_task_group() as group:
            group.start_soon(app.disconnect)
            await anyio.wait_all_tasks_blocked()
            assert not app.is_running  # stopping: waits for the listener
            release.set()
    assert sorted(handled) == [0, 1, 2]  # handled concurrently: any order
    assert not app.is_running
    await app.disconnect()
    await app.nats.disconnect()
    await app.__aexit__(None, None, None)
    assert app.transport is not None
    assert app.transport.is_closed
    with pytest.raises(AppNotRunningError, match="has stopped"):
        await app.publish("jobs", 1)


async def test_a_given_transport_is_not_closed(client: Transport) -> None:
    app = App(transport=client)
    async with app:
        await app.publish("x", 1)
    assert not client.is_closed
    assert app.transport is client


async def test_calls_need_a_running_app(url: str) -> None:
    app = App(url)
    with pytest.raises(AppNotRunningError, match=r"app.publish\(\).*is not running.*async with"):
        await app.publish("a", 1)
    with pytest.raises(AppNotRunningError):
        await app.request("a", 1)
    with pytest.raises(AppNotRunningError):
        await app.nats.subscribe_new_subject("a", print)
    await app.disconnect()  # before start: the app is simply over
    with pytest.raises(AppNotRunningError, match="has stopped"):
        async with app:
            pass


async def test_decorators_only_before_start(url: str) -> None:
    async with App(url) as app:
        with pytest.raises(AppError, match="subscribe_new_subject"):
            app.listen(subject="late")
        with pytest.raises(AppError, match="before the app starts"):
            app.task()


# --------------------------------------------------------------------------- app.nats facade


CALL_NAMES = [
    "publish",
    "publish_sync",
    "publish_from_another_thread",
    "request",
    "request_sync",
    "request_from_another_thread",
    "subscribe_new_subject",
    "subscribe_new_subject_sync",
    "unsubscribe_subject",
    "unsubscribe_subject_sync",
    "unsubscribe_ssid",
    "unsubscribe_ssid_sync",
    "disconnect",
    "disconnect_sync",
]


def test_every_call_is_on_the_app_and_on_app_nats() -> None:
    app = App("memory://never-started")
    for name in CALL_NAMES:
        assert callable(getattr(app, name)), name
        assert callable(getattr(app.nats, name)), name
    assert app.nats.app is app


async def test_app_nats_calls_act_on_the_same_app(url: str) -> None:
    app = App(url)

    @app.listen(subject="echo")
    async def echo(msg: Message) -> Any:
        return msg.data

    got: list[Any] = []
    done = anyio.Event()

    async def collect(msg: Message) -> None:
        got.append(msg.data)
        done.set()

    async with app:
        ssid = await app.nats.subscribe_new_subject("collected", collect)
        await app.nats.publish("collected", {"n": 1}, force=True)
        assert await app.nats.request("echo", [1]) == [1]
        with anyio.fail_after(WAIT):
            await done.wait()
        await app.nats.unsubscribe_ssid(ssid)
        await app.nats.subscribe_new_subject("collected2", collect)
        await app.nats.unsubscribe_subject("collected2")
        assert list(app.subscriptions.values()) == ["echo"]
        await app.nats.disconnect()
        assert not app.is_running
    assert got == [{"n": 1}]


# --------------------------------------------------------------------------- construction


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ValueError, "exactly one of url"),
        ({"url": "memory://", "transport": object()}, ValueError, "exactly one of url"),
        ({"url": 5}, TypeError, "url must be a str"),
        ({"transport": object()}, TypeError, "transport must be a transports.base.Transport"),
        ({"url": "memory://", "service_name": "svc"}, ValueError, "go together"),
        (
            {"url": "memory://", "service_name": "bad name", "service_version": "1.0.0"},
            ValueError,
            "invalid service name",
        ),
        (
            {"url": "memory://", "service_name": "svc", "service_version": "one"},
            ValueError,
            "version",
        ),
        ({"url": "memory://", "request_timeout": 0}, ValueError, "request_timeout"),
        ({"url": "memory://", "shutdown_timeout": -1}, ValueError, "shutdown_timeout"),
        ({"url": "memory://", "sleep": 3}, TypeError, "sleep must be"),
    ],
)
def test_constructor_rejects_bad_arguments(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        App(**kwargs)


async def test_an_unknown_url_scheme_fails_the_start_clearly() -> None:
    app = App("carrier-pigeon://coop")
    with pytest.raises(ValueError, match="unknown transport URL"):
        async with app:
            pass
    assert not app.is_running
    with pytest.raises(AppNotRunningError):
        await app.publish("a", 1)
