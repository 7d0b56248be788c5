"""``micro._running``: the life cycle and the stop-signal watcher Context and App share."""

from __future__ import annotations

import os
import signal
import uuid
from functools import partial

import anyio
import pytest

from micro._running import Phase, RunState
from micro.app import App
from micro.context import Context

pytestmark = pytest.mark.anyio

WAIT = 5.0


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _url(name: str) -> str:
    return f"memory://running-{name}-{uuid.uuid4().hex}"


async def test_a_run_goes_through_each_state_once() -> None:
    life = RunState()
    assert life.phase is Phase.NEW
    assert life.begin()
    assert not life.begin()  # a run is never restarted
    assert not life.abandon()  # only a run that never started can be abandoned
    assert life.started() is False  # no stop was asked for while starting
    assert life.phase is Phase.RUNNING
    assert life.request_stop()  # this call began the stop
    assert not life.request_stop()  # already under way
    assert life.phase is Phase.STOPPING
    life.finish()
    assert await life.wait_until(Phase.RUNNING) is Phase.STOPPED


async def test_a_stop_asked_for_before_running_is_remembered() -> None:
    life = RunState()
    assert not life.request_stop()  # remembered: nothing runs yet
    assert life.stop_requested
    assert life.begin()
    assert life.started() is True  # the owner stops the run now
    assert life.request_stop()


async def test_waiters_wake_on_the_change_they_wait_for() -> None:
    life = RunState()
    reached: list[Phase] = []

    async def wait_stopped() -> None:
        reached.append(await life.wait_until(Phase.STOPPED))

    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as group:
            group.start_soon(wait_stopped)
            group.start_soon(life.wait_stop_requested)
            await anyio.wait_all_tasks_blocked()
            life.begin()
            life.started()
            life.request_stop()
            life.finish()
    assert reached == [Phase.STOPPED]


def test_abandoning_a_run_that_never_started_ends_it() -> None:
    life = RunState()
    assert life.abandon()
    assert life.phase is Phase.STOPPED
    assert not life.begin()


async def test_one_sigterm_stops_a_context_and_an_app_running_at_once() -> None:
    """Both watch SIGTERM through the one watcher: each receives the signal, although
    asyncio and trio hand it to the receiver opened last only."""
    context_ready = anyio.Event()
    app_ready = anyio.Event()

    async def setup(ctx: Context) -> None:
        context_ready.set()

    app = App(_url("app"))

    @app.task()
    async def serving() -> None:  # runs once the app (and its signal watcher) is up
        app_ready.set()

    context = Context()
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as group:
            group.start_soon(
                partial(context.run_forever, setup, _url("ctx"), trap_signals=(signal.SIGTERM,))
            )
            await context_ready.wait()
            group.start_soon(app.run)
            await app_ready.wait()
            os.kill(os.getpid(), signal.SIGTERM)
    assert context.cancelled()
    assert not app.is_running
    assert repr(context) == "<Context stopped>"
