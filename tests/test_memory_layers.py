"""``transports.memory`` is built in layers: each module imports only the modules of lower
layers (``TYPE_CHECKING`` and function-level imports included), so the package has no
import cycle.  The order is the one its docstring gives."""

from __future__ import annotations

import ast
from pathlib import Path

import transports.memory

LAYERS = [
    "unmodelled",
    "sublist",
    "seeding",
    "inbox",
    "routing",
    "subscription",
    "gathering",
    "outbox",
    "connection",
    "recording",
    "faults",
    "idle",
    "broker",
    "__init__",
]


def _package_imports(path: Path) -> set[str]:
    """The ``transports.memory`` modules ``path`` imports, anywhere in the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import"
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[:2] == ["transports", "memory"]:
                found.add(parts[2] if len(parts) > 2 and parts[2] in LAYERS else "__init__")
    return found


def test_every_module_imports_only_lower_layers() -> None:
    package = Path(transports.memory.__file__).parent
    assert sorted(p.stem for p in package.glob("*.py")) == sorted(LAYERS)
    for rank, module in enumerate(LAYERS):
        imported = _package_imports(package / f"{module}.py")
        higher = imported - set(LAYERS[:rank])
        assert not higher, (
            f"transports.memory.{module} imports {sorted(higher)} of its layer or above"
        )
