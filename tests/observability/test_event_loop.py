"""uvloop, when asked for and never silently: ``micro.event_loop``, ``run``, ``App.start`` and
the pytest plugin."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from micro import Context, run
from micro.app import App
from micro.event_loop import UVLOOP_ENV, backend_options, wants_uvloop
from micro.event_loop import run as run_on_loop

WAIT = 10.0


def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


@pytest.fixture(autouse=True)
def _no_uvloop_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(UVLOOP_ENV, raising=False)


@pytest.mark.parametrize(
    ("value", "wanted"),
    [("1", True), ("true", True), (" ON ", True), ("yes", True), ("0", False), ("", False)],
)
def test_the_variable_says_yes_or_no(
    monkeypatch: pytest.MonkeyPatch, value: str, wanted: bool
) -> None:
    monkeypatch.setenv(UVLOOP_ENV, value)
    assert wants_uvloop() is wanted
    assert wants_uvloop(not wanted) is (not wanted)  # an explicit choice wins


def test_a_bad_variable_names_itself_and_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(UVLOOP_ENV, "maybe")
    with pytest.raises(ValueError, match=r"invalid MICRO_UVLOOP='maybe': must be one of 1/true"):
        wants_uvloop()
    with pytest.raises(TypeError, match="use_uvloop must be a bool or None, got 'yes'"):
        wants_uvloop("yes")  # type: ignore[arg-type]


def test_backend_options_resolve_the_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    assert backend_options("asyncio") is None
    assert backend_options("asyncio", use_uvloop=True) == {"use_uvloop": True}
    assert backend_options("asyncio", {"debug": True}) == {"debug": True}
    monkeypatch.setenv(UVLOOP_ENV, "1")
    assert backend_options("asyncio") == {"use_uvloop": True}
    assert backend_options("asyncio", {"use_uvloop": False}) is None  # explicit wins
    assert backend_options("trio") is None  # the variable concerns asyncio runs only
    with pytest.raises(ValueError, match="backend 'trio' cannot use it"):
        backend_options("trio", use_uvloop=True)


def test_asked_for_but_missing_is_an_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec

    def without_uvloop(name: str, package: str | None = None) -> Any:
        return None if name == "uvloop" else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", without_uvloop)
    monkeypatch.setenv(UVLOOP_ENV, "1")
    with pytest.raises(ImportError, match=r"pip install 'nats-service-kit\[fast\]'"):
        backend_options("asyncio")


def test_run_uses_uvloop_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    async def setup(ctx: Context) -> None:
        seen.append(_loop_module())
        ctx.cancel()

    run(setup, "memory://")
    run(setup, "memory://", use_uvloop=True)
    monkeypatch.setenv(UVLOOP_ENV, "1")
    run(setup, "memory://")
    run(setup, "memory://", use_uvloop=False)
    assert seen == ["asyncio", "uvloop", "uvloop", "asyncio"]

    async def main() -> str:
        return _loop_module()

    assert run_on_loop(main) == "uvloop"
    assert run_on_loop(main, use_uvloop=False) == "asyncio"


@pytest.mark.parametrize(("variable", "options"), [("1", None), ("0", {"use_uvloop": True})])
def test_app_start_runs_its_thread_on_uvloop_when_asked(
    monkeypatch: pytest.MonkeyPatch, variable: str, options: dict[str, Any] | None
) -> None:
    monkeypatch.setenv(UVLOOP_ENV, variable)
    app = App("memory://uvloop-app", stop_signals=(), backend_options=options)
    seen: list[str] = []
    started = threading.Event()

    @app.task()
    async def record() -> None:
        seen.append(_loop_module())
        started.set()

    runner = threading.Thread(target=app.start)
    runner.start()
    try:
        assert started.wait(WAIT)
    finally:
        app.disconnect_sync()
        runner.join(WAIT)
    assert not runner.is_alive()
    assert seen == ["uvloop"]


def test_the_pytest_plugin_runs_asyncio_legs_on_uvloop_when_asked(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(
            """
            import asyncio, os, pytest

            @pytest.mark.micro_both_transports(trio=False)
            async def test_loop(micro_transport, micro_leg):
                loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
                assert loop == os.environ["EXPECTED_LOOP"]
            """
        ),
        encoding="utf-8",
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", UVLOOP_ENV))}
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-m", "not micro_nats"]
    for extra, env in (
        ([], {"EXPECTED_LOOP": "asyncio"}),
        (["--micro-uvloop"], {"EXPECTED_LOOP": "uvloop"}),
        ([], {"EXPECTED_LOOP": "uvloop", UVLOOP_ENV: "1"}),
    ):
        result = subprocess.run(
            [*command, *extra],
            cwd=tmp_path,
            env={**base, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "1 passed" in result.stdout
