"""Blocking calls (``*_sync``, ``*_from_another_thread``), ``app.start()`` and stop signals.

Every blocking call is the async call run through the app's one blocking portal.  These
tests run in plain threads (no event loop) unless marked ``anyio``.
"""

from __future__ import annotations

import inspect
import os
import pydoc
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from micro.app import (
    App,
    AppError,
    AppFailedError,
    AppNotRunningError,
    Message,
    SyncCallInLoopError,
)
from micro.errors import ServiceError
from transports.base import BadSubjectError, NoRespondersError, RequestTimeoutError

WAIT = 5.0
ROOT = Path(__file__).resolve().parents[2]


def _app_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("micro-app-")]


@pytest.fixture
def echo_app(url: str) -> Iterator[App]:
    app = App(url)

    @app.listen(subject="echo")
    async def echo(msg: Message) -> Any:
        return msg.data

    yield app
    app.disconnect_sync()


def test_blocking_calls_start_the_app_in_its_own_thread(echo_app: App) -> None:
    app = echo_app
    assert not app.is_running
    assert app.request_sync(subject="echo", message={"some": "message"}) == {"some": "message"}
    assert app.is_running
    assert any(name == "micro-app-app" for name in _app_threads())
    assert app.nats.request_sync("echo", [1], timeout=WAIT) == [1]
    assert app.request_sync("echo", "x", data_type="json", response_data_type=str) == "x"
    assert app.nats.request_sync("echo", 2, headers={"H": "v"}) == 2
    app.disconnect_sync()
    assert not app.is_running
    assert "micro-app-app" not in _app_threads()
    with pytest.raises(AppNotRunningError):
        app.publish_sync("echo", 1)
    app.disconnect_sync()  # idempotent


def test_publish_sync_has_handed_the_message_over_when_it_returns(echo_app: App) -> None:
    app = echo_app
    got: queue.Queue[Any] = queue.Queue()

    def collect(msg: Message) -> None:  # a plain function: runs in a worker thread
        got.put((msg.subject, msg.data, msg.reply))

    ssid = app.subscribe_new_subject_sync("collected", collect, ordered=True)
    assert app.subscriptions[ssid] == "collected"
    app.publish_sync(subject="collected", message={"n": 1}, force=True)
    app.nats.publish_sync("collected", {"n": 2}, reply_to="replies.here")
    app.publish_from_another_thread("collected", {"n": 3})
    app.nats.publish_from_another_thread(subject="collected", message={"n": 4}, force=True)
    assert [got.get(timeout=WAIT) for _ in range(4)] == [
        ("collected", {"n": 1}, None),
        ("collected", {"n": 2}, "replies.here"),
        ("collected", {"n": 3}, None),
        ("collected", {"n": 4}, None),
    ]


def test_subscribe_and_unsubscribe_sync(echo_app: App) -> None:
    app = echo_app
    ssid = app.subscribe_new_subject_sync("upper", lambda msg: msg.data.upper(), data_type=str)
    assert app.request_sync("upper", "abc", response_data_type=str) == "ABC"
    app.unsubscribe_ssid_sync(ssid)
    with pytest.raises(NoRespondersError):
        app.request_sync("upper", "abc")
    app.nats.subscribe_new_subject_sync("lower", lambda msg: msg.data.lower(), data_type=str)
    assert app.request_sync("lower", "ABC", response_data_type=str) == "abc"
    app.nats.unsubscribe_subject_sync("lower")
    with pytest.raises(NoRespondersError):
        app.request_sync("lower", "abc")
    app.nats.unsubscribe_ssid_sync(app.subscribe_new_subject_sync("x", print))
    with pytest.raises(ValueError, match="unknown ssid"):
        app.unsubscribe_ssid_sync("nope")


def test_errors_reach_the_blocking_caller(echo_app: App) -> None:
    app = echo_app

    async def refuse(msg: Message) -> None:
        raise ServiceError(403, "forbidden")

    app.subscribe_new_subject_sync("refuse", refuse)
    with pytest.raises(BadSubjectError):
        app.publish_sync("bad subject", 1)
    with pytest.raises(NoRespondersError):
        app.request_sync("nobody", 1)
    with pytest.raises(ServiceError, match="403:forbidden"):
        app.request_sync("refuse", 1)
    app.subscribe_new_subject_sync("quiet", lambda msg: None)
    with pytest.raises(RequestTimeoutError):
        app.request_sync("quiet", 1, timeout=0.05)
    assert app.request_sync("echo", 1) == 1  # still fine


def test_many_threads_call_in_concurrently(echo_app: App) -> None:
    app = echo_app
    results: queue.Queue[Any] = queue.Queue()

    def worker(number: int) -> None:  # a thread with an event loop of its own
        async def ask() -> None:
            for i in range(10):
                results.put(await app.request_from_another_thread("echo", [number, i]))

        anyio.run(ask)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    answers = sorted(tuple(results.get_nowait()) for _ in range(40))
    assert answers == sorted((n, i) for n in range(4) for i in range(10))


def test_a_blocking_call_from_the_app_loop_raises_instead_of_deadlocking(echo_app: App) -> None:
    app = echo_app

    async def misuse(msg: Message) -> str:
        try:
            app.request_sync("echo", 1)
        except SyncCallInLoopError as exc:
            return str(exc)
        return "no error"

    app.subscribe_new_subject_sync("misuse", misuse)
    text = app.request_sync("misuse", None, response_data_type=str, timeout=WAIT)
    assert "app.request_sync() blocks" in text
    assert "use 'await app.request(...)' there" in text


def test_start_runs_until_a_task_disconnects(url: str) -> None:
    app = App(url)
    log: list[Any] = []

    @app.listen(subject="ping")
    async def ping(msg: Message) -> str:
        return "pong"

    @app.task()
    async def work() -> None:
        log.append(await app.request("ping", None, response_data_type=str))
        await app.disconnect()

    app.start()
    assert log == ["pong"]
    assert not app.is_running
    assert "micro-app-app" not in _app_threads()
    with pytest.raises(AppNotRunningError, match="has stopped"):
        app.start()


def test_start_raises_when_a_task_stops_the_app(url: str) -> None:
    app = App(url)

    @app.task(on_error="stop")
    def fatal() -> None:
        raise LookupError("missing")

    with pytest.raises(AppFailedError, match="missing") as caught:
        app.start()
    assert isinstance(caught.value.__cause__, LookupError)
    assert "micro-app-app" not in _app_threads()


def test_start_stops_gracefully_on_sigterm(url: str) -> None:
    app = App(url, backend="trio")
    drained: list[str] = []

    @app.task()
    async def kill_me() -> None:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            await anyio.sleep_forever()
        finally:
            drained.append("task cancelled")

    before = signal.getsignal(signal.SIGTERM)
    app.start()
    assert drained == ["task cancelled"]
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_thread_home_can_run_trio(url: str) -> None:
    app = App(url, backend="trio")

    @app.listen(subject="which")
    async def which(msg: Message) -> str:
        import sniffio

        return sniffio.current_async_library()

    try:
        assert app.request_sync("which", None, response_data_type=str) == "trio"
    finally:
        app.disconnect_sync()


def test_an_app_given_a_transport_must_first_run_in_its_loop() -> None:
    async def make() -> Any:
        from transports.memory import MemoryBroker

        return await MemoryBroker().connect()

    transport = anyio.run(make)
    app = App(transport=transport)
    with pytest.raises(AppError, match="given a transport"):
        app.publish_sync("a", 1)
    with pytest.raises(AppError, match="given a transport"):
        app.start()
    app.disconnect_sync()


def test_disconnect_sync_before_any_use_ends_the_app(url: str) -> None:
    app = App(url)
    app.disconnect_sync()
    with pytest.raises(AppNotRunningError):
        app.publish_sync("a", 1)


def test_an_app_left_running_is_stopped_cleanly_at_exit(tmp_path: Path) -> None:
    script = tmp_path / "left_running.py"
    script.write_text(
        textwrap.dedent(
            """
            import anyio
            from micro.app import App

            app = App("memory://")

            @app.task()
            async def background() -> None:
                try:
                    await anyio.sleep_forever()
                finally:
                    print("stopped cleanly", flush=True)

            app.publish_sync("anything", 1)
            print("leaving without disconnect", flush=True)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["leaving without disconnect", "stopped cleanly"]


# --------------------------------------------------------------------------- loop homes


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.anyio
async def test_other_threads_call_into_an_app_running_in_their_loop(url: str) -> None:
    app = App(url)

    @app.listen(subject="echo")
    async def echo(msg: Message) -> Any:
        return msg.data

    async with app:
        assert await anyio.to_thread.run_sync(lambda: app.request_sync("echo", {"t": 1})) == {
            "t": 1
        }
        # in the app's own loop the cross-thread request is the request itself
        assert await app.request_from_another_thread("echo", {"t": 2}) == {"t": 2}
        await anyio.to_thread.run_sync(lambda: app.nats.publish_from_another_thread("echo", 1))
        with pytest.raises(SyncCallInLoopError, match=r"await app.request\(\.\.\.\)"):
            app.request_sync("echo", 1)
        with pytest.raises(SyncCallInLoopError, match=r"await app.run\(\.\.\.\)"):
            app.start()
    with pytest.raises(AppNotRunningError):
        await anyio.to_thread.run_sync(lambda: app.publish_sync("echo", 1))
    with pytest.raises(AppNotRunningError):
        await anyio.to_thread.run_sync(lambda: app.publish_from_another_thread("echo", 1))


@pytest.mark.anyio
async def test_await_from_another_thread_is_refused(url: str) -> None:
    async with App(url) as app:

        def other_loop() -> None:
            async def call() -> None:
                await app.publish("x", 1)

            anyio.run(call)

        with pytest.raises(AppError, match=r"must run in the app's event loop"):
            await anyio.to_thread.run_sync(other_loop)


@pytest.mark.anyio
async def test_run_stops_gracefully_on_sigterm(url: str) -> None:
    app = App(url)
    stopped: list[str] = []

    @app.task()
    async def kill_me() -> None:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            await anyio.sleep_forever()
        finally:
            stopped.append("cancelled")

    with anyio.fail_after(WAIT):
        await app.run()
    assert stopped == ["cancelled"]


# --------------------------------------------------------------------------- generated forms

BLOCKING_FORMS = [
    ("publish_sync", "publish"),
    ("request_sync", "request"),
    ("subscribe_new_subject_sync", "subscribe_new_subject"),
    ("unsubscribe_subject_sync", "unsubscribe_subject"),
    ("unsubscribe_ssid_sync", "unsubscribe_ssid"),
    ("disconnect_sync", "disconnect"),
]


@pytest.mark.parametrize(("blocking_name", "async_name"), BLOCKING_FORMS)
def test_blocking_forms_are_generated_from_the_async_call(
    blocking_name: str, async_name: str
) -> None:
    app = App("memory://never-started")
    for owner in (app, app.nats, App):
        blocking, awaitable = getattr(owner, blocking_name), getattr(owner, async_name)
        assert inspect.signature(blocking) == inspect.signature(awaitable)
        assert inspect.iscoroutinefunction(awaitable)
        assert not inspect.iscoroutinefunction(blocking)
        assert blocking.__name__ == blocking_name
        assert blocking.__doc__.startswith(f"Blocking form of :meth:`{async_name}`")
        assert inspect.getdoc(awaitable) in blocking.__doc__  # the call's contract follows
    shown = pydoc.render_doc(getattr(App, blocking_name), renderer=pydoc.plaintext)
    # pydoc puts a long signature one parameter a line since 3.13: compare without whitespace
    signature = f"{blocking_name}{inspect.signature(getattr(App, async_name))}"
    assert "".join(signature.split()) in "".join(shown.split())
    assert getattr(App, blocking_name).__qualname__ == f"Calls.{blocking_name}"


@pytest.mark.parametrize(
    ("name", "async_name", "kind"),
    [
        ("publish_from_another_thread", "publish", "Non-waiting form of"),
        ("request_from_another_thread", "request", "Form of"),
    ],
)
def test_the_cross_thread_forms_are_generated_from_the_async_call(
    name: str, async_name: str, kind: str
) -> None:
    """``publish_from_another_thread`` is a plain call that does not wait;
    ``request_from_another_thread`` a coroutine function (awaited in another loop)."""
    for owner in (App("memory://never-started"), App):
        form, awaitable = getattr(owner, name), getattr(owner, async_name)
        assert inspect.signature(form) == inspect.signature(awaitable)
        assert inspect.iscoroutinefunction(form) is (async_name == "request")
        assert form.__doc__.startswith(f"{kind} :meth:`{async_name}`")
        assert inspect.getdoc(awaitable) in form.__doc__


def test_blocking_forms_return_what_the_async_call_returns(echo_app: App) -> None:
    ssid: str = echo_app.subscribe_new_subject_sync("typed", lambda msg: msg.data)
    assert echo_app.subscriptions[ssid] == "typed"
    assert echo_app.publish_sync("typed", 1, force=True) is None
    assert echo_app.request_sync("typed", [2]) == [2]


def test_publish_from_another_thread_returns_at_once_and_keeps_the_order(url: str) -> None:
    """The page's non-waiting call: returns before the app's loop has sent anything, and
    what one thread hands over arrives in that order; a failure is logged, not lost."""
    app = App(url)
    got: queue.Queue[Any] = queue.Queue()
    entered, release = threading.Event(), threading.Event()

    @app.listen(subject="ordered.in", ordered=True)
    async def collect(msg: Message) -> None:
        got.put(msg.data)

    @app.listen(subject="hold")
    async def hold(msg: Message) -> None:
        entered.set()
        release.wait(WAIT)  # blocks the app's event loop itself until the test says

    try:
        app.publish_sync("hold", None)
        assert entered.wait(WAIT)
        for n in range(50):  # the app's loop is blocked: these cannot wait for it
            assert app.publish_from_another_thread("ordered.in", n) is None
        assert not release.is_set()
        release.set()
        assert [got.get(timeout=WAIT) for _ in range(50)] == list(range(50))
    finally:
        release.set()
        app.disconnect_sync()


@pytest.mark.parametrize("where", ["memory", "nats"])
def test_two_apps_each_on_its_own_thread_talk_to_each_other(
    url: str, where: str, request: pytest.FixtureRequest
) -> None:
    """Two apps on one broker URL, each started in a thread of its own (its own event
    loop): requests between them are answered, on memory as on a real server."""
    if where == "nats":
        url = request.getfixturevalue("micro_nats_server").url
    server, client = App(url), App(url)
    subject = f"two.apps.{uuid.uuid4().hex[:8]}"

    @server.listen(subject=subject)
    async def greet(msg: Message) -> Any:
        return {"hello": msg.data["name"]}

    try:
        server.publish_sync("two.apps.warm-up", {})  # starts it: its listener is live
        reply = client.request_sync(subject, {"name": "you"}, timeout=WAIT)
        assert reply == {"hello": "you"}
        assert len(_app_threads()) == 2  # one thread (and event loop) each
    finally:
        client.disconnect_sync()
        server.disconnect_sync()
