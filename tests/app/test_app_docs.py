"""The quick start of ``docs/app.md`` runs as written (on ``memory://``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "app.md"


def _readme_snippet() -> str:
    text = DOC.read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "no python block in the quick start"
    assert "from micro import App" in match.group(1)  # the top-level name, as users write it
    return match.group(1)


def test_the_readme_snippet_runs(tmp_path: Path) -> None:
    script = tmp_path / "readme_app.py"
    script.write_text(_readme_snippet())
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
    assert done.stdout.splitlines() == ["{'accepted': 'tea', 'total': 6}"]


def test_every_call_named_in_the_table_exists() -> None:
    from micro.app import App

    table = DOC.read_text().split("## Where each call of the page lives", 1)[1].split("\n## ")[0]
    names = set(re.findall(r"`@?(?:\w+ = )?(?:await )?app\.(\w+)\(", table))
    names |= set(re.findall(r"`app\.nats\.(\w+)\(", table))
    names.discard("publish_syn\u0441")  # the page's typo (Cyrillic es), quoted as such
    assert {"task", "listen", "request", "request_sync", "add_middleware"} <= names
    app = App("memory://docs-table")
    for name in sorted(names):
        assert hasattr(app, name) or hasattr(app.nats, name), name


def test_every_row_of_the_panini_table_is_pinned_by_a_test() -> None:
    """Each row of "Coming from Panini" names the tests that pin its claim: they exist."""
    section = DOC.read_text().split("## Coming from Panini", 1)[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) >= 15
    defined = set()
    for path in (ROOT / "tests" / "app").glob("test_*.py"):
        defined |= set(re.findall(r"^\s*(?:async )?def (test_\w+)", path.read_text(), re.M))
    for row in rows[1:]:  # the header row names no test
        pinned = re.findall(r"`(test_\w+)`", row.rsplit("|", 2)[1])
        assert pinned, f"row without a pinning test: {row[:60]}"
        missing = [name for name in pinned if name not in defined]
        assert not missing, f"{missing} named in the Panini table are not tests"
