"""Project-wide test configuration.

* Hypothesis: no per-example deadline (the machine is shared and noisy); the ``ci``
  profile (selected with ``HYPOTHESIS_PROFILE=ci``) prints statistics-friendly output.
* Any test that uses a real nats-server (fixture ``micro_nats_server`` or marker ``nats``)
  is marked ``nats``; if such a test is *skipped*, the run fails: the real-NATS leg
  must never pass quietly by not running.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "ci",
    parent=settings.get_profile("default"),
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

_NATS_FIXTURES = {
    "micro_nats_server",
    "micro_nats_transport",
    "micro_nats_cluster",
    "nats_server",
    "nats_url",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _NATS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.nats)


_skipped_nats: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "nats" in report.keywords:
        _skipped_nats.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped_nats and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _skipped_nats:
        terminalreporter.section("real-NATS leg skipped: failing the run")
        for nodeid in _skipped_nats:
            terminalreporter.write_line(f"SKIPPED (not allowed) {nodeid}")
