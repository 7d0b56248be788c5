"""Fixtures of the reliability suite: dedicated servers and clusters, fault drivers, figures.

* ``nats_server``: a nats-server of the test's own (never the session's
  ``micro_nats_server``: these tests kill and restart it); stopped after the test.
* ``micro_nats_cluster``: a 3-node :class:`testing.nats_cluster.NatsCluster`, stopped after
  the test (the plugin does not offer it yet).
* ``fault_driver``: one :class:`reliability_support.FaultDriver` per transport that can
  simulate losing its broker (``nats``, and ``memory`` on asyncio and trio); a scenario body
  written against it runs on each.

Every test here is bounded (pytest-timeout below the global one) and every nats-server it
started must be gone when the session ends: ``pytest_sessionfinish`` fails the run if a
``nats-server`` child of this process survived.  The measured figures are printed in the
terminal summary.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from reliability_support import FIGURES, FaultDriver, MemoryFaultDriver, NatsFaultDriver

from testing.nats_server import NatsServer

_NATS_FIXTURES = {"nats_server", "micro_nats_cluster", "nats_fault_driver"}
_TEST_TIMEOUT = 30


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if not str(item.path).startswith(here):
            continue
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(_TEST_TIMEOUT))
        fixtures = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        leg = callspec.params.get("transport_leg") if callspec is not None else None
        nats_leg = isinstance(leg, tuple) and leg[0] == "nats"
        if fixtures & _NATS_FIXTURES or nats_leg:
            item.add_marker(pytest.mark.nats)


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    """A nats-server of this test's own (it may be killed and restarted)."""
    with NatsServer() as server:
        yield server


def _backend(anyio_backend: Any) -> str:
    return anyio_backend if isinstance(anyio_backend, str) else str(anyio_backend[0])


@pytest.fixture(
    params=[
        pytest.param(("nats", "asyncio"), id="nats"),
        pytest.param(("memory", "asyncio"), id="memory-asyncio"),
        pytest.param(("memory", "trio"), id="memory-trio"),
    ]
)
def transport_leg(request: pytest.FixtureRequest) -> tuple[str, str]:
    """``(transport, anyio backend)`` of a transport-neutral scenario."""
    leg: tuple[str, str] = request.param
    return leg


@pytest.fixture
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """asyncio, unless the test runs a transport leg that says otherwise (memory on trio)."""
    if "transport_leg" in request.fixturenames:
        leg: tuple[str, str] = request.getfixturevalue("transport_leg")
        return leg[1]
    return "asyncio"


@pytest.fixture
async def fault_driver(transport_leg: tuple[str, str]) -> AsyncIterator[FaultDriver]:
    """A fault driver for the test's transport leg; its connections are closed after."""
    driver: FaultDriver
    if transport_leg[0] == "nats":
        server = NatsServer().start()
        driver = NatsFaultDriver(server)
    else:
        server = None
        driver = MemoryFaultDriver()
    try:
        yield driver
    finally:
        await driver.aclose()
        if server is not None:
            server.stop()


def _stray_servers() -> list[str]:
    """nats-server processes that are children of this test process."""
    found = subprocess.run(
        ["pgrep", "-a", "-P", str(os.getpid()), "-f", "nats-server"],
        capture_output=True,
        text=True,
        check=False,
    )
    return [line for line in found.stdout.splitlines() if line.strip()]


_strays: list[str] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _strays.extend(_stray_servers())
    if _strays and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("reliability figures")
        for test, text in FIGURES:
            terminalreporter.write_line(f"{test}: {text}")
    if _strays:
        terminalreporter.section("stray nats-server processes after the run: failing it")
        for line in _strays:
            terminalreporter.write_line(line)
