"""CI runs exactly the README's test command, and the quick start stays two commands."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

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


def test_ci_runs_the_readme_test_command_on_every_interpreter() -> None:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [
        line.strip()
        for line in script.splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "echo", "export"))
    ]
    # one test command, exactly the README's, run in the venv of each interpreter
    assert commands.count(_quick_start_commands()[1]) == 1
    assert 'for venv in "$VENV" "$VENV-3.10" "$VENV-3.13"; do' in commands
    assert "\"$2/bin/python\" -m pip install --quiet -e '.[dev]'" in script
    for version in ("3.10", "3.13"):
        assert f'PY{version.replace(".", "")}="$(.ci/find-python {version})"' in commands
    assert 'requires-python = ">=3.10"' in (ROOT / "pyproject.toml").read_text("utf-8")


def test_readme_says_where_ci_runs_the_tests() -> None:
    development = (ROOT / "README.md").read_text(encoding="utf-8").split("## Development", 1)[1]
    for named in ("bash .ci/run", "CPython 3.10", "`python3`", "CPython 3.13"):
        assert named in development


# --------------------------------------------------------------------- .ci/find-python

FIND_PYTHON = ROOT / ".ci" / "find-python"


@pytest.fixture
def sandbox(tmp_path: Path) -> dict[str, Path]:
    """An empty PATH directory, an empty PYENV_ROOT, and a directory holding only the tools
    the helper needs (so no real interpreter of the machine can be found)."""
    tools = tmp_path / "tools"
    tools.mkdir()
    sort = shutil.which("sort")  # the one command the helper runs besides the candidates
    assert sort
    (tools / "sort").symlink_to(sort)
    dirs = {"tools": tools, "bin": tmp_path / "bin", "pyenv": tmp_path / "pyenv"}
    dirs["bin"].mkdir()
    (dirs["pyenv"] / "versions").mkdir(parents=True)
    return dirs


def _fake_python(path: Path, reports: str) -> Path:
    """An executable that answers the helper's probe (``-c <code>``) with ``reports``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\n[ "$1" = "-c" ] || exit 3\necho "{reports}"\n')
    path.chmod(0o755)
    return path


def _find(sandbox: dict[str, Path], version: str) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    assert bash
    env = {
        "PATH": f"{sandbox['bin']}:{sandbox['tools']}",
        "PYENV_ROOT": str(sandbox["pyenv"]),
        "HOME": str(sandbox["pyenv"].parent),
    }
    return subprocess.run(
        [bash, str(FIND_PYTHON), version],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_find_python_names_the_missing_interpreter_and_how_to_install_it(
    sandbox: dict[str, Path],
) -> None:
    # a pyenv shim of a version that is not selected exists on PATH but does not run
    shim = sandbox["bin"] / "python3.13"
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.13: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    _fake_python(sandbox["pyenv"] / "versions" / "3.12.1" / "bin" / "python", "CPython 3.12")
    result = _find(sandbox, "3.13")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip() == (
        "CPython 3.13 is required by CI: install it, e.g. `pyenv install 3.13`"
    )


def test_find_python_takes_a_working_interpreter_from_path(sandbox: dict[str, Path]) -> None:
    on_path = _fake_python(sandbox["bin"] / "python3.10", "CPython 3.10")
    _fake_python(sandbox["pyenv"] / "versions" / "3.10.13" / "bin" / "python", "CPython 3.10")
    result = _find(sandbox, "3.10")
    assert (result.returncode, result.stdout.strip()) == (0, str(on_path)), result.stderr


def test_find_python_falls_back_to_the_newest_pyenv_patch_release(
    sandbox: dict[str, Path],
) -> None:
    _fake_python(sandbox["bin"] / "python3.13", "CPython 3.12")  # a liar on PATH: skipped
    versions = sandbox["pyenv"] / "versions"
    for patch in ("3.13.2", "3.13.10", "3.13.9"):
        _fake_python(versions / patch / "bin" / "python", "CPython 3.13")
    _fake_python(versions / "3.13.11t" / "bin" / "python", "CPython 3.13")  # free-threaded
    _fake_python(versions / "3.14.0" / "bin" / "python", "CPython 3.14")
    result = _find(sandbox, "3.13")
    expected = versions / "3.13.10" / "bin" / "python"
    assert (result.returncode, result.stdout.strip()) == (0, str(expected)), result.stderr


def test_find_python_rejects_another_implementation(sandbox: dict[str, Path]) -> None:
    _fake_python(sandbox["bin"] / "python3.10", "PyPy 3.10")
    result = _find(sandbox, "3.10")
    assert result.returncode == 1
    assert "CPython 3.10 is required by CI" in result.stderr


def test_find_python_wants_a_version(sandbox: dict[str, Path]) -> None:
    result = _find(sandbox, "3")
    assert result.returncode == 2
    assert "usage:" in result.stderr
