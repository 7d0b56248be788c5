"""CI runs exactly the README's test command, and the quick start stays two commands."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "the quick start has no sh block"
    return [line for line in block[1].splitlines() if line.strip()]


def test_quick_start_is_two_commands_demo_then_tests() -> None:
    demo, tests = _quick_start_commands()
    assert "pip install -e '.[dev]'" in demo
    assert demo.endswith("python -m micro demo")
    assert tests == "python -m pytest"


def test_ci_runs_the_readme_test_command_last() -> None:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [
        line.strip()
        for line in script.splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "echo", "export"))
    ]
    assert commands[-1] == _quick_start_commands()[1]
    assert "pip install --quiet -e '.[dev]'" in script
