"""``examples/app_example.py`` runs on ``memory://`` by default and exits by itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from testing.nats_server import NatsServer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "app_example.py"

EXPECTED = {
    "task got: Hello, async world!",
    "thread got: Hello, thread.",
    "endpoints: ['hello', 'on_event']",
    "timed hooks: ['listen_publish', 'listen_request', 'send_publish', 'send_request']",
    "stopped",
}


def _run(*args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_the_example_runs_on_the_memory_broker() -> None:
    lines = _run()
    assert set(lines) >= EXPECTED
    assert lines[-1] == "stopped"
    assert sum(line.startswith("event {'round':") for line in lines) >= 3


def test_the_example_runs_on_nats(micro_nats_server: NatsServer) -> None:
    lines = _run(micro_nats_server.url)
    assert set(lines) >= EXPECTED
