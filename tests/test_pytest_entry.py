"""The ``pytest11`` entry point (``transports._pytest_entry``) never stops pytest from starting.

Each test builds a throw-away project in ``tmp_path`` and runs pytest on it in a subprocess,
as its user would: with a ``testing`` package of its own the run starts, the project's tests
use both its own ``testing`` and our fixtures (and our toolkit as ``micro_testing``), and a
warning says what is shadowed and what to do.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

USER_TESTS = """
    import pytest

    from micro import Request
    from micro_testing import make_request
    from micro_testing.strategies import versions
    from testing import user_helper  # the project's own package

    pytestmark = pytest.mark.anyio


    @pytest.fixture
    def anyio_backend():
        return "asyncio"


    def test_the_project_keeps_its_own_testing_package():
        assert user_helper() == "mine"


    async def test_our_fixtures_still_work(micro_broker):
        connection = await micro_broker.connect()
        sub = await connection.subscribe("ping")
        await connection.publish("ping", b"x")
        assert (await sub.next_msg(timeout=5)).data == b"x"


    async def test_our_toolkit_is_importable_as_micro_testing():
        async def handler(request: Request) -> None:
            await request.respond(b"ok")

        stub = make_request("svc.op")
        await handler(stub)
        assert stub.response_data() == b"ok"
        assert versions() is not None
"""


def _project(tmp_path: Path, *, package: bool = True) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    own = "def user_helper():\n    return 'mine'\n"
    if package:
        (project / "testing").mkdir()
        (project / "testing" / "__init__.py").write_text(own, encoding="utf-8")
    else:
        (project / "testing.py").write_text(own, encoding="utf-8")
    (project / "tests").mkdir()
    (project / "tests" / "test_user.py").write_text(textwrap.dedent(USER_TESTS), "utf-8")
    return project


def _pytest(project: Path, *command: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHONPATH", "PYTEST_"))}
    return subprocess.run(
        [*command, "-p", "no:cacheprovider", "-W", "error", "tests"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize(
    "command",
    [
        # the project's directory is on sys.path before plugins load: `import testing` finds
        # the project's package
        pytest.param((sys.executable, "-m", "pytest"), id="python-m-pytest"),
        # the pytest script: our package is found first; the project puts its own directory
        # on sys.path with the pythonpath option, applied after plugins load
        pytest.param(
            (str(Path(sys.executable).parent / "pytest"), "-o", "pythonpath=."), id="pytest"
        ),
    ],
)
def test_a_project_with_its_own_testing_package_runs_and_is_warned(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    project = _project(tmp_path)
    if command[0].endswith("pytest") and not Path(command[0]).exists():
        pytest.fail(f"the pytest script is missing next to {sys.executable}")
    result = _pytest(project, *command, "-p", "anyio")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "3 passed" in output, output
    assert "Error while loading plugin" not in output
    warning = "micro_testing WARNING: the package 'testing' of nats-service-kit"
    assert warning in output, output
    assert str(project / "testing") in output  # which path shadows ours
    assert "importable as 'micro_testing'" in output  # what to do
    assert "micro_testing warning" in output  # repeated in the final summary


def test_a_testing_module_shadows_the_toolkit_too(tmp_path: Path) -> None:
    project = _project(tmp_path, package=False)
    result = _pytest(project, sys.executable, "-m", "pytest")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "3 passed" in output, output
    assert str(project / "testing.py") in output


def test_without_a_foreign_testing_there_is_no_warning(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_plain.py").write_text(
        textwrap.dedent(
            """
            import micro_testing
            import testing


            def test_our_toolkit_under_both_names():
                assert micro_testing is testing
                assert testing.make_request("a").subject() == "a"
            """
        ),
        encoding="utf-8",
    )
    result = _pytest(project, sys.executable, "-m", "pytest")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "1 passed" in output, output
    assert "micro_testing WARNING" not in output
