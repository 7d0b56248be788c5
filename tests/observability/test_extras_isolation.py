"""The extras cost nothing when not used: ``import micro`` (and everything users import
without asking for an integration) loads neither OpenTelemetry, prometheus-client nor uvloop;
the integration modules, imported without their extra, fail with an ``ImportError`` naming
the extra to install."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXTRA_MODULES = ("opentelemetry", "prometheus_client", "uvloop")

# A meta path finder that makes the named top-level packages uninstallable.
_BLOCK = """
import sys
class Blocker:
    def __init__(self, names): self.names = names
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Blocker(set(sys.argv[1].split(","))))
"""


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_importing_micro_loads_no_extra() -> None:
    code = """
import json, sys
import micro, micro.app, micro.cli, micro.cli.exporter, micro.client, micro.context
import micro.event_loop, micro.middleware, transports, transports.memory, testing
import testing.pytest_plugin
from micro.cli import build_parser
build_parser()
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""
    done = _python(code)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    assert "micro" in loaded
    assert loaded.isdisjoint(EXTRA_MODULES), loaded & set(EXTRA_MODULES)


@pytest.mark.parametrize(
    ("module", "blocked", "extra"),
    [
        ("micro.tracing", "opentelemetry", "otel"),
        ("micro.metrics", "prometheus_client", "prometheus"),
    ],
)
def test_an_integration_without_its_extra_names_the_extra(
    module: str, blocked: str, extra: str
) -> None:
    code = _BLOCK + f"\nimport {module}\n"
    done = _python(code, blocked)
    assert done.returncode == 1
    assert f"pip install 'nats-service-kit[{extra}]'" in done.stderr
    assert f"ImportError: {module} needs" in done.stderr


def test_the_exporter_command_without_the_extra_says_what_to_install() -> None:
    code = _BLOCK + "\nimport sys\nfrom micro.cli import main\nsys.exit(main(sys.argv[2:]))\n"
    done = _python(code, "prometheus_client", "exporter", "--server", "memory://")
    assert done.returncode == 2
    assert "pip install 'nats-service-kit[prometheus]'" in done.stderr
    assert "Traceback" not in done.stderr
