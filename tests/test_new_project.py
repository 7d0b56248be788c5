"""A new project that installs this library can test its services with no server and no
fixtures of its own.

The example tests of ``examples/testing/`` (and the module they test) are copied into a fresh
project directory -- no conftest, no configuration -- and ``python -m pytest`` runs there in a
subprocess with the current interpreter (where this package is installed, so its pytest plugin
loads through the ``pytest11`` entry point).  Every test must pass, none may be skipped, and the
real-NATS leg of ``micro_both_transports`` must have run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "testing"


def test_the_testing_examples_pass_in_a_fresh_project(tmp_path: Path) -> None:
    tests = tmp_path / "tests"
    tests.mkdir()
    copied = sorted(path.name for path in EXAMPLES.glob("*.py"))
    assert "orders.py" in copied
    assert len([name for name in copied if name.startswith("test_")]) >= 4
    for name in copied:
        shutil.copy(EXAMPLES / name, tests / name)
    assert not list(tmp_path.rglob("conftest.py"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHONPATH", "PYTEST_"))}
    env["HYPOTHESIS_STORAGE_DIRECTORY"] = str(tmp_path / ".hypothesis")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-W", "error", "-p", "no:cacheprovider", "tests"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert " SKIPPED" not in output, output[-6000:]
    assert "test_an_order_round_trip[nats] PASSED" in output, output[-6000:]
    assert "test_an_order_round_trip[memory-trio] PASSED" in output, output[-6000:]
    assert f"rootdir: {tmp_path}" in output  # it really ran as its own project
