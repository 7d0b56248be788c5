"""App middlewares: hooks, fallbacks, order (last added is outermost), built-ins."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

from micro.app import (
    App,
    ErrorLoggingMiddleware,
    Message,
    Middleware,
    TimingMiddleware,
)
from micro.app.middleware import ListenFunc, SendFunc
from transports.base import NoRespondersError

pytestmark = pytest.mark.anyio

WAIT = 5.0


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Recorder(Middleware):
    """Records every hook it sees, in and out, under its label."""

    def __init__(self, label: str, log: list[str]) -> None:
        self.label = label
        self.log = log

    async def send_publish(
        self, subject: str, message: Any, publish_func: SendFunc, **params: Any
    ) -> None:
        self.log.append(f"{self.label}>send_publish {subject}")
        await publish_func(subject, message, **params)
        self.log.append(f"{self.label}<send_publish")

    async def send_request(
        self, subject: str, message: Any, request_func: SendFunc, **params: Any
    ) -> Any:
        self.log.append(f"{self.label}>send_request {sorted(params)}")
        response = await request_func(subject, message, **params)
        self.log.append(f"{self.label}<send_request {response}")
        return response

    async def listen_publish(self, msg: Message, callback: ListenFunc) -> Any:
        self.log.append(f"{self.label}>listen_publish {msg.subject}")
        return await callback(msg)

    async def listen_request(self, msg: Message, callback: ListenFunc) -> Any:
        self.log.append(f"{self.label}>listen_request {msg.data}")
        result = await callback(msg)
        self.log.append(f"{self.label}<listen_request {result}")
        return result


class Fallbacks(Middleware):
    """Overrides only the fallbacks: they serve both kinds of each direction."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def send_any(self, subject: str, message: Any, send_func: SendFunc, **params: Any) -> Any:
        self.log.append(f"send_any {subject}")
        return await send_func(subject, message, **params)

    async def listen_any(self, msg: Message, callback: ListenFunc) -> Any:
        self.log.append(f"listen_any {msg.subject} reply={msg.is_request}")
        return await callback(msg)


async def test_last_added_middleware_is_outermost(url: str) -> None:
    app = App(url)
    log: list[str] = []
    done = anyio.Event()

    @app.listen(subject="double")
    async def double(msg: Message) -> int:
        log.append("listener")
        return int(msg.data) * 2

    @app.listen(subject="note")
    async def note(msg: Message) -> None:
        done.set()

    first = app.add_middleware(Recorder, "A", log)
    second = app.add_middleware(Recorder, label="B", log=log)
    assert app.middlewares == (first, second)
    async with app:
        assert await app.request("double", 4) == 8
        assert log == [
            "B>send_request ['data_type', 'headers', 'response_data_type', 'timeout']",
            "A>send_request ['data_type', 'headers', 'response_data_type', 'timeout']",
            "B>listen_request 4",
            "A>listen_request 4",
            "listener",
            "A<listen_request 8",
            "B<listen_request 8",
            "A<send_request 8",
            "B<send_request 8",
        ]
        log.clear()
        await app.publish("note", 1)
        with anyio.fail_after(WAIT):
            await done.wait()
    assert log == [
        "B>send_publish note",
        "A>send_publish note",
        "A<send_publish",
        "B<send_publish",
        "B>listen_publish note",
        "A>listen_publish note",
    ]


async def test_fallback_hooks_serve_both_kinds(url: str) -> None:
    app = App(url)
    log: list[str] = []
    seen = anyio.Event()

    @app.listen(subject="svc")
    async def svc(msg: Message) -> Any:
        if msg.is_request:
            return "answer"
        seen.set()
        return None

    app.add_middleware(Fallbacks, log)
    async with app:
        assert await app.request("svc", 1, response_data_type=str) == "answer"
        await app.publish("svc", 2)
        with anyio.fail_after(WAIT):
            await seen.wait()
    assert log == [
        "send_any svc",
        "listen_any svc reply=True",
        "send_any svc",
        "listen_any svc reply=False",
    ]


async def test_middlewares_apply_to_listeners_added_before_and_after(url: str) -> None:
    app = App(url)
    log: list[str] = []

    @app.listen(subject="early")
    async def early(msg: Message) -> str:
        return "early"

    async with app:
        assert await app.request("early", None, response_data_type=str) == "early"
        assert log == []
        app.add_middleware(Recorder, "late", log)

        async def later(msg: Message) -> str:
            return "later"

        await app.subscribe_new_subject("later", later)
        await app.request("early", 1, response_data_type=str)
        await app.request("later", 2, response_data_type=str)
    listened = [entry for entry in log if entry.startswith("late>listen_request")]
    assert listened == ["late>listen_request 1", "late>listen_request 2"]


async def test_middlewares_can_change_calls_and_answer_themselves(url: str) -> None:
    class Stamp(Middleware):
        async def send_publish(
            self, subject: str, message: Any, publish_func: SendFunc, **params: Any
        ) -> None:
            params["headers"] = {**(params["headers"] or {}), "Stamp": "yes"}
            await publish_func(subject, {"wrapped": message}, **params)

        async def send_request(
            self, subject: str, message: Any, request_func: SendFunc, **params: Any
        ) -> Any:
            if subject == "cached":
                return "from cache"
            return await request_func(subject, message, **params)

        async def listen_request(self, msg: Message, callback: ListenFunc) -> Any:
            if msg.data == {"cmd": "deny"}:
                return {"denied": True}
            return await callback(msg)

    app = App(url)
    got: list[Message] = []
    done = anyio.Event()

    @app.listen(subject="stamped")
    async def stamped(msg: Message) -> Any:
        if msg.is_request:
            return "served"
        got.append(msg)
        done.set()
        return None

    app.add_middleware(Stamp)
    async with app:
        assert await app.request("cached", 1) == "from cache"  # nobody listens there
        assert await app.request("stamped", {"cmd": "deny"}) == {"denied": True}
        assert await app.request("stamped", {"cmd": "ok"}, response_data_type=str) == "served"
        await app.publish("stamped", 5)
        with anyio.fail_after(WAIT):
            await done.wait()
    assert got[0].data == {"wrapped": 5}
    assert got[0].headers == {"Stamp": "yes"}


async def test_sync_calls_pass_through_the_middlewares(url: str) -> None:
    app = App(url)
    log: list[str] = []

    @app.listen(subject="x")
    async def x(msg: Message) -> int:
        return 1

    app.add_middleware(Recorder, "M", log)
    async with app:
        assert await anyio.to_thread.run_sync(lambda: app.request_sync("x", 0)) == 1
    assert "M>send_request ['data_type', 'headers', 'response_data_type', 'timeout']" in log


async def test_error_logging_middleware_logs_and_reraises(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = App(url)

    @app.listen(subject="fails")
    async def fails(msg: Message) -> None:
        raise RuntimeError("listener broke")

    logger = logging.getLogger("test.app.errors")
    app.add_middleware(ErrorLoggingMiddleware, logger=logger, level=logging.WARNING)
    with caplog.at_level(logging.WARNING, logger="test.app.errors"):
        async with app:
            with pytest.raises(NoRespondersError):
                await app.request("nobody", 1)
            with pytest.raises(Exception, match="500:Internal Server Error"):
                await app.request("fails", 1)
    ours = [r for r in caplog.records if r.name == "test.app.errors"]
    messages = [r.getMessage() for r in ours]
    assert any(m.startswith("request to 'nobody' failed: NoRespondersError") for m in messages)
    assert any("listener for request on 'fails' failed" in m for m in messages)
    assert all(r.levelno == logging.WARNING and r.exc_info for r in ours)


async def test_timing_middleware_measures_with_an_injected_clock(url: str) -> None:
    ticks = iter(range(0, 1000, 1))
    app = App(url)
    done = anyio.Event()

    @app.listen(subject="timed")
    async def timed(msg: Message) -> Any:
        if not msg.is_request:
            done.set()
            return None
        if msg.data == {"fail": True}:
            raise ValueError("no")
        return "ok"

    timing = app.add_middleware(TimingMiddleware, clock=lambda: float(next(ticks)))
    assert isinstance(timing, TimingMiddleware)
    async with app:
        assert await app.request("timed", 1, response_data_type=str) == "ok"
        with pytest.raises(Exception, match="500"):
            await app.request("timed", {"fail": True})
        await app.publish("timed", 2)
        with anyio.fail_after(WAIT):
            await done.wait()
    timings = timing.timings
    assert set(timings) == {
        ("send_request", "timed"),
        ("listen_request", "timed"),
        ("send_publish", "timed"),
        ("listen_publish", "timed"),
    }
    assert timings[("send_request", "timed")].count == 2
    assert timings[("listen_request", "timed")].failures == 1
    assert all(t.total > 0 and t.max > 0 and t.average > 0 for t in timings.values())
    timing.reset()
    assert timing.timings == {}


def test_add_middleware_needs_a_middleware_class() -> None:
    app = App("memory://never-started")
    with pytest.raises(TypeError, match=r"add_middleware\(TimingMiddleware, \*args"):
        app.add_middleware(TimingMiddleware())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"subclass of micro\.app\.Middleware"):
        app.add_middleware(dict)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        app.add_middleware(Recorder)  # missing arguments: the class's own error
    assert app.middlewares == ()
