"""``transports.runtime``: the private asyncio APIs it relies on, pinned; its waiters and
timers, and the task host of ``transports.runtime_tasks``, on both backends; and no private
asyncio/trio API used anywhere else.

A Python release that moves or changes one of these private APIs fails here, loudly,
instead of making the library silently slower or wrong.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import anyio
import pytest

from transports import runtime
from transports.runtime import (
    TIMED_OUT,
    Expiry,
    all_tasks_blocked,
    current_async_library,
    current_task,
    fail,
    new_event,
    new_waiter,
    now,
    running_loop,
    task_is_alive,
    task_of,
    wait,
    wake,
)
from transports.runtime_tasks import TaskHost

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# ---------------------------------------------------------------------- the private APIs, pinned


def test_running_loop_is_asyncios_private_getter() -> None:
    assert running_loop is asyncio._get_running_loop
    assert running_loop() is None  # outside any loop: None, not an exception

    async def inside() -> None:
        assert running_loop() is asyncio.get_running_loop()

    asyncio.run(inside())


def test_task_of_reads_cpythons_table_of_running_tasks() -> None:
    from asyncio.tasks import _current_tasks  # type: ignore[attr-defined]

    assert task_of == _current_tasks.get

    async def inside() -> None:
        loop = asyncio.get_running_loop()
        assert task_of(loop) is asyncio.current_task()
        other = asyncio.create_task(asyncio.sleep(0))
        await other
        assert task_of(loop) is asyncio.current_task()  # still ours after a switch

    asyncio.run(inside())


def test_the_event_loop_keeps_runnable_callbacks_in_ready() -> None:
    async def inside() -> None:
        loop = asyncio.get_running_loop()
        ready = loop._ready  # type: ignore[attr-defined]
        before = len(ready)
        loop.call_soon(lambda: None)
        assert len(ready) == before + 1
        await asyncio.sleep(0)
        assert len(ready) == before

    asyncio.run(inside())


def test_a_ready_tasks_step_names_its_task() -> None:
    """``all_tasks_blocked`` tells other waiters' wake-ups from runnable work by reading
    ``handle._callback.__self__`` of the ready queue's handles: a task's step is a method
    bound to the task (a ``TaskStepMethWrapper`` with ``__self__`` in C)."""

    async def inside() -> None:
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        owners: list[object] = []

        def peek() -> None:  # runs after our sleep(0) queued our next step
            ready = loop._ready  # type: ignore[attr-defined]
            owners.extend(handle._callback.__self__ for handle in ready)

        loop.call_soon(peek)
        await asyncio.sleep(0)
        assert me in owners

    asyncio.run(inside())


_PRIVATE_USES = [
    re.compile(r"\basyncio(\.\w+)*\._\w+"),  # asyncio._x, asyncio.tasks._x
    re.compile(r"from asyncio[\w.]* import [^\n]*\b_[a-z]\w*"),
    re.compile(r"\btrio(\.\w+)*\._\w+"),
    re.compile(r"from trio[\w.]* import [^\n]*\b_[a-z]\w*"),
    re.compile(r"\._ready\b|[\"']_ready[\"']"),  # the event loop's queue of callbacks
    re.compile(r"\._callback\b|[\"']_callback[\"']"),  # a ready handle's callback
]


def test_no_module_but_the_runtime_uses_a_private_asyncio_or_trio_api() -> None:
    offenders = []
    for package in ("micro", "transports", "testing"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "transports" / "runtime.py":
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if any(pattern.search(line) for pattern in _PRIVATE_USES):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_runtime_itself_is_seen_by_the_scan() -> None:
    """The scan above would see the uses the runtime makes (so it can fail)."""
    source = (ROOT / "transports" / "runtime.py").read_text(encoding="utf-8")
    found = [line for line in source.splitlines() if any(p.search(line) for p in _PRIVATE_USES)]
    assert len(found) >= 4


# ---------------------------------------------------------------------- behaviour, both backends


@pytest.mark.anyio
async def test_backend_detection_and_clock() -> None:
    library = current_async_library()
    assert library in ("asyncio", "trio")
    assert (running_loop() is not None) == (library == "asyncio")
    assert current_task() is not None
    before = now()
    await anyio.sleep(0.001)
    assert now() > before


def test_outside_an_event_loop() -> None:
    with pytest.raises(RuntimeError, match="running asyncio or trio event loop"):
        current_async_library()
    assert current_task() is None
    assert now() > 0


@pytest.mark.anyio
async def test_a_waiter_is_woken_once_and_failed_waiters_raise() -> None:
    waiter = new_waiter()
    wake(waiter, 1)
    wake(waiter, 2)  # no effect once done
    assert await waiter == 1
    failing = new_waiter()
    fail(failing, LookupError("x"))
    with pytest.raises(LookupError):
        await failing


@pytest.mark.anyio
async def test_expiry_times_out_many_waits_with_one_timer() -> None:
    expiry = Expiry()
    first, second, answered = new_waiter(), new_waiter(), new_waiter()
    expiry.add(first, 0.01)
    expiry.add(second, 0.02)
    with anyio.fail_after(5):
        assert await first is TIMED_OUT
        assert await second is TIMED_OUT
        wake(answered, "yes")
        assert await wait(answered, 0.01, expiry) == "yes"
        with pytest.raises(TimeoutError):
            await wait(new_waiter(), 0.01, expiry)
    expiry.close()


@pytest.mark.anyio
async def test_events_and_idle_detection() -> None:
    event = new_event()
    assert not event.is_set()
    event.set()
    await event.wait()
    done = new_event()

    async def finish() -> None:
        done.set()

    async with anyio.create_task_group() as group:
        group.start_soon(finish)
        await all_tasks_blocked(now() + 5)
        assert done.is_set()


@pytest.mark.anyio
async def test_a_task_host_owns_its_tasks_until_closed() -> None:
    host = TaskHost("test host")
    await host.open()
    started, release = new_event(), new_event()
    seen: list[object] = []

    async def child() -> None:
        seen.append(current_task())
        assert host.is_current()
        started.set()
        await release.wait()

    host.start_soon(child)
    with anyio.fail_after(5):
        await started.wait()
        assert task_is_alive(seen[0])
        release.set()
        await host.aclose()
    assert not host.is_open
    assert not task_is_alive(seen[0])
    with pytest.raises(RuntimeError, match="not running"):
        host.start_soon(child)


@pytest.mark.anyio
async def test_a_failing_task_cancels_the_host_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    host = TaskHost("failing host")
    await host.open()
    blocked = new_event()

    async def stuck() -> None:
        await blocked.wait()

    async def broken() -> None:
        raise RuntimeError("task bug")

    host.start_soon(stuck)
    host.start_soon(broken)
    with anyio.fail_after(5):
        await host.wait_closed()
    assert "task bug" in caplog.text
    assert runtime.__name__ == "transports.runtime"
