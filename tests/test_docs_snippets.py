"""Every Python snippet in the README and the guides runs (as written: a reader copies them).

The ``python`` code blocks of one document run in order in one namespace, like a reader
pasting them into one file; afterwards every ``test_*`` coroutine function the blocks defined
is run too (the "Testing your services" snippets are tests).  A block preceded by the line
``<!-- snippet: not run -->`` is skipped (for fragments that need a real deployment).
Snippets run against the in-memory broker; ``NATS_URL`` is removed from the environment.
"""

from __future__ import annotations

import inspect
import re
import sys
import types
from pathlib import Path

import anyio
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"(?P<marker><!-- snippet: not run -->\n)?```python\n(?P<code>.*?)```", re.S)


def python_blocks(document: Path) -> list[str]:
    """The runnable ``python`` blocks of ``document``, in order."""
    text = document.read_text(encoding="utf-8")
    return [m["code"] for m in _BLOCK.finditer(text) if not m["marker"]]


def test_the_documents_have_snippets() -> None:
    assert python_blocks(ROOT / "README.md"), "the README lost its runnable examples"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_snippets_run(document: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NATS_URL", raising=False)
    module = types.ModuleType(f"snippets_of_{document.stem.replace('-', '_')}")
    monkeypatch.setitem(sys.modules, module.__name__, module)  # dataclasses need it
    for index, code in enumerate(python_blocks(document)):
        compiled = compile(code, f"{document.name}[block {index}]", "exec")
        exec(compiled, module.__dict__)
    tests = [
        value
        for name, value in vars(module).items()
        if name.startswith("test_") and inspect.iscoroutinefunction(value)
    ]
    for test in tests:
        anyio.run(test)
