"""@app.task: once, periodic without overlap, failure policy -- with virtual time, no waiting."""

from __future__ import annotations

import itertools
import logging
import threading
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import trio.testing

from micro.app import App, AppFailedError, Message

pytestmark = pytest.mark.anyio

WAIT = 5.0


class FakeSleep:
    """An injectable ``sleep`` that records the interval and returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        await anyio.lowlevel.checkpoint()


class TestVirtualTime:
    """trio with ``MockClock(autojump_threshold=0)``: the real anyio.sleep, virtual time."""

    @pytest.fixture
    def anyio_backend(self) -> Any:
        return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})

    @pytest.mark.parametrize(("body", "gap"), [(0.5, 2.0), (1.5, 2.0), (3.0, 3.0)])
    async def test_periodic_runs_start_every_interval_and_never_overlap(
        self, url: str, body: float, gap: float
    ) -> None:
        """The interval is measured from the start of each run (a 1.5 s body with a 2 s
        interval still runs every 2 s); a run longer than the interval is followed by the
        next at once, never overlapping it."""
        app = App(url)
        starts: list[float] = []
        running = False

        @app.task(interval=2)
        async def tick() -> None:
            nonlocal running
            assert not running, "runs overlapped"
            running = True
            starts.append(anyio.current_time())
            await anyio.sleep(body)
            running = False
            if len(starts) == 5:
                await app.disconnect()

        began = anyio.current_time()
        await app.run(handle_signals=False)
        assert starts[0] == pytest.approx(began)
        gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
        assert gaps == pytest.approx([gap] * 4)

    async def test_the_page_example_publishes_ten_times_per_run(self, url: str) -> None:
        app = App(url)
        received: list[Any] = []

        @app.listen(subject="some.publish.subject")
        async def count(msg: Message) -> None:
            received.append(msg.data)
            if len(received) == 30:
                await app.disconnect()

        @app.task(interval=2)
        async def your_periodic_task() -> None:
            for _ in range(10):
                await app.publish(subject="some.publish.subject", message={"some": "data"})

        began = anyio.current_time()
        await app.run(handle_signals=False)
        assert received == [{"some": "data"}] * 30
        assert anyio.current_time() - began == pytest.approx(4.0)


class TestTasks:
    @pytest.fixture(params=["asyncio", "trio"])
    def anyio_backend(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    async def test_a_one_shot_task_runs_once_after_the_listeners_are_live(self, url: str) -> None:
        app = App(url)
        results: list[Any] = []

        @app.listen(subject="double")
        async def double(msg: Message) -> int:
            return int(msg.data) * 2

        @app.task()
        async def publish() -> None:
            results.append(await app.request("double", 21))
            await app.disconnect()

        with anyio.fail_after(WAIT):
            await app.run(handle_signals=False)
        assert results == [42]

    async def test_periodic_task_with_injected_sleep(self, url: str) -> None:
        sleep = FakeSleep()
        app = App(url, sleep=sleep)
        runs: list[int] = []

        @app.task(interval=1.5)
        async def tick() -> None:
            runs.append(len(runs))
            if len(runs) == 4:
                await app.disconnect()

        with anyio.fail_after(WAIT):
            await app.run(handle_signals=False)
        assert runs == [0, 1, 2, 3]
        # the interval less the run's own (tiny, real) duration
        assert sleep.calls[:3] == pytest.approx([1.5, 1.5, 1.5], abs=0.1)
        assert len(sleep.calls) in (3, 4)  # the wait after the last run is cancelled

    async def test_on_error_log_logs_and_goes_on(
        self, url: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        app = App(url, sleep=FakeSleep())
        runs: list[int] = []

        @app.task(interval=1)
        async def flaky() -> None:
            runs.append(len(runs))
            if len(runs) == 5:
                await app.disconnect()
                return
            if len(runs) % 2:
                raise ValueError(f"run {len(runs)} broke")

        with caplog.at_level(logging.ERROR, logger="micro.app"), anyio.fail_after(WAIT):
            await app.run(handle_signals=False)
        assert runs == [0, 1, 2, 3, 4]
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert [str(r.exc_info[1]) for r in errors if r.exc_info] == ["run 1 broke", "run 3 broke"]
        assert all("next run in 1 s" in r.getMessage() for r in errors)

    async def test_on_error_log_for_a_one_shot_task(
        self, url: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        app = App(url)
        stopped = anyio.Event()

        @app.task()
        async def broken() -> None:
            raise KeyError("once")

        @app.task()
        async def stopper() -> None:
            await stopped.wait()
            await app.disconnect()

        with caplog.at_level(logging.ERROR, logger="micro.app"), anyio.fail_after(WAIT):
            async with app:
                await anyio.wait_all_tasks_blocked()
                assert app.is_running  # the failure did not stop the app
                stopped.set()
        assert any("not retried" in r.getMessage() for r in caplog.records)

    async def test_on_error_stop_stops_the_app_and_run_raises(self, url: str) -> None:
        app = App(url, sleep=FakeSleep())
        cancelled: list[str] = []
        forever_started = anyio.Event()

        @app.task(on_error="stop")
        async def fatal() -> None:
            await forever_started.wait()
            raise ZeroDivisionError("fatal")

        @app.task()
        async def forever() -> None:
            forever_started.set()
            try:
                await anyio.sleep_forever()
            finally:
                cancelled.append("forever")

        with anyio.fail_after(WAIT), pytest.raises(AppFailedError, match="fatal") as caught:
            await app.run(handle_signals=False)
        assert isinstance(caught.value.__cause__, ZeroDivisionError)
        assert cancelled == ["forever"]
        assert not app.is_running

    async def test_on_error_stop_fails_an_async_with_block_on_exit(self, url: str) -> None:
        app = App(url)

        @app.task(on_error="stop")
        async def fatal() -> None:
            raise OSError("disk gone")

        with anyio.fail_after(WAIT), pytest.raises(AppFailedError, match="disk gone"):
            async with app:
                await anyio.wait_all_tasks_blocked()

    async def test_disconnect_cancels_running_tasks(self, url: str) -> None:
        app = App(url)
        events: list[str] = []
        started = anyio.Event()

        @app.task()
        async def waiter() -> None:
            started.set()
            try:
                await anyio.sleep_forever()
            finally:
                events.append("cancelled")

        with anyio.fail_after(WAIT):
            async with app:
                await started.wait()
        assert events == ["cancelled"]

    async def test_a_plain_function_task_runs_in_a_thread_and_may_block(self, url: str) -> None:
        app = App(url)
        got: list[Any] = []
        threads: list[int] = []

        @app.listen(subject="from.thread")
        async def collect(msg: Message) -> Any:
            got.append(msg.data)
            return "ack"

        @app.task()
        def blocking_task() -> None:
            threads.append(threading.get_ident())
            app.publish_sync("from.thread", 1)
            got.append(app.request_sync("from.thread", 2, response_data_type=str))
            app.disconnect_sync()  # from inside the app: starts the stop, returns

        with anyio.fail_after(WAIT):
            await app.run(handle_signals=False)
        assert got == [1, 2, "ack"]
        assert threads[0] != threading.get_ident()

    async def test_run_returns_when_cancelled_after_stopping_the_app(self, url: str) -> None:
        app = App(url)
        started = anyio.Event()

        @app.task()
        async def ready() -> None:
            started.set()

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as group:
                group.start_soon(lambda: app.run(handle_signals=False))
                await started.wait()
                group.cancel_scope.cancel()
        assert not app.is_running
        assert app.transport is not None
        assert app.transport.is_closed


def test_task_decorator_validation() -> None:
    app = App("memory://never-started")

    async def func() -> None:
        pass

    with pytest.raises(TypeError, match=r"@app.task\(\)"):
        app.task(func)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="interval 0"):
        app.task(interval=0)
    with pytest.raises(ValueError, match="interval inf"):
        app.task(interval=float("inf"))
    with pytest.raises(TypeError, match="number of seconds"):
        app.task(interval="2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_error 'ignore'"):
        app.task(on_error="ignore")  # type: ignore[arg-type]
    decorated = app.task(interval=1)(func)
    assert decorated is func


def test_listen_decorator_validation() -> None:
    app = App("memory://never-started")

    async def func(msg: Message) -> None:
        pass

    with pytest.raises(TypeError, match=r"@app.listen\(subject="):
        app.listen(func)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="a b"):
        app.listen(subject="a b")
    with pytest.raises(TypeError, match="unsupported data_type"):
        app.listen(subject="a", data_type=float)
    with pytest.raises(ValueError, match="invalid endpoint name"):
        app.listen(subject="a", name="a.b")
    with pytest.raises(TypeError, match="must be callable"):
        app.listen(subject="a")(42)  # type: ignore[type-var]
    assert app.listen(subject="a.>")(func) is func
    assert app.subscriptions == {"1": "a.>"}
