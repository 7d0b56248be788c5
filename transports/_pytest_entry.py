"""The ``pytest11`` entry point of the library (``micro_testing``): loads the toolkit's plugin.

pytest imports this module in every project that installs the library, before it reads any
``conftest.py``.  Pointing the entry point at ``testing.pytest_plugin`` directly would make
pytest import whatever top-level ``testing`` comes first on ``sys.path``: in a project with a
``testing`` package of its own, pytest then refused to start (``Error while loading plugin
"pytest11": No module named 'testing.pytest_plugin'``), and otherwise our package took the
name ``testing`` from the project's own.  So this module decides:

* when ``import testing`` finds *our* toolkit and the working directory holds no other
  ``testing`` package or module, the plugin is ``testing.pytest_plugin``, imported as usual;
* otherwise the toolkit is *shadowed*: it is loaded from its own directory under the name
  ``micro_testing`` (the toolkit imports itself relatively, so it works under any name),
  the project's ``testing`` stays untouched, and pytest shows a warning naming both paths
  (in the report header and in the summary at the end).

Either way the toolkit can also be imported as ``micro_testing`` during a pytest run (``from
micro_testing import make_request``): the documented way to use it in a project that cannot
rename its own ``testing`` (docs/testing.md, "If your project has its own testing package").

The module lives in ``transports`` (not ``micro``) because loading it must stay cheap in every
project: ``transports`` imports only ``transports.base``, while ``micro`` imports anyio.
Everything the toolkit's plugin defines (hooks and fixtures) is re-exported here, since this
module is what pytest registers.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ALIAS = "micro_testing"
"""The name the toolkit can always be imported by during a pytest run."""

_TOOLKIT_DIR = Path(__file__).resolve().parent.parent / "testing"


def _same_dir(location: str | os.PathLike[str] | None, directory: Path) -> bool:
    return location is not None and Path(location).resolve() == directory


def _is_ours(spec: importlib.machinery.ModuleSpec | None) -> bool:
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return any(_same_dir(location, _TOOLKIT_DIR) for location in locations)


def _foreign_testing_in(directory: Path) -> Path | None:
    """A ``testing`` package or module in ``directory`` that is not ours, if any."""
    for candidate in (directory / "testing", directory / "testing.py"):
        if candidate.exists() and not _same_dir(candidate, _TOOLKIT_DIR):
            return candidate
    return None


def _shadowing() -> str | None:
    """Where the ``testing`` that is not ours lives, or ``None`` when ``testing`` is ours."""
    loaded = sys.modules.get("testing")
    if loaded is not None:
        spec = loaded.__spec__
    else:
        try:
            spec = importlib.util.find_spec("testing")
        except (ImportError, ValueError):  # a broken foreign package: not ours either
            spec = None
    if spec is not None and not _is_ours(spec):
        return str(spec.origin or next(iter(spec.submodule_search_locations or ["?"])))
    foreign = _foreign_testing_in(Path.cwd())
    if foreign is not None:
        return str(foreign)
    if spec is None:
        return "(no package named testing is importable)"
    return None


def _load_by_location(name: str) -> ModuleType:
    """Our toolkit package, loaded from its directory under ``name``."""
    spec = importlib.util.spec_from_file_location(
        name, _TOOLKIT_DIR / "__init__.py", submodule_search_locations=[str(_TOOLKIT_DIR)]
    )
    assert spec is not None
    assert spec.loader is not None
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    try:
        spec.loader.exec_module(package)
    except BaseException:
        del sys.modules[name]
        raise
    return package


SHADOWED_BY = _shadowing()
"""The path of the project's own ``testing`` when it shadows our toolkit, else ``None``."""

if SHADOWED_BY is None:
    _toolkit = importlib.import_module("testing")
    sys.modules.setdefault(ALIAS, _toolkit)
else:
    _toolkit = sys.modules.get(ALIAS) or _load_by_location(ALIAS)
_plugin = importlib.import_module(f"{_toolkit.__name__}.pytest_plugin")

WARNING = (
    None
    if SHADOWED_BY is None
    else (
        f"the package 'testing' of nats-service-kit ({_TOOLKIT_DIR}) is shadowed by "
        f"{SHADOWED_BY}; its fixtures and markers still work, and its modules are importable "
        f"as '{ALIAS}' (from {ALIAS} import make_request): see 'If your project has its own "
        "testing package' in the guide docs/testing.md"
    )
)
"""The warning pytest shows when the toolkit is shadowed, else ``None``."""

globals().update(
    {name: value for name, value in vars(_plugin).items() if not name.startswith("__")}
)


def pytest_report_header(config: Any) -> list[str]:
    """The shadowing warning, first thing in the run's output."""
    return [f"micro_testing WARNING: {WARNING}"] if WARNING else []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The shadowing warning again, at the end where summaries are read."""
    if WARNING:
        terminalreporter.write_sep("=", "micro_testing warning", yellow=True)
        terminalreporter.write_line(WARNING)
