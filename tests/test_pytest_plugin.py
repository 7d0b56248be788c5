"""The pytest plugin (``testing.pytest_plugin``, entry point ``pytest11: micro_testing``).

In-process tests use the fixtures as a user would; behaviour that shows only in a whole
pytest run (teardown errors, collection errors, markers, what loading the plugin imports) is
checked by running pytest on a small project in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from transports.base import Transport
from transports.memory import MemoryBroker, MemoryTransport

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- in process


@pytest.mark.anyio
async def test_micro_broker_is_fresh_seeded_and_strict(
    micro_broker: MemoryBroker, micro_transport: Transport
) -> None:
    assert micro_broker.strict
    assert micro_broker.connections == [micro_transport]
    assert isinstance(micro_transport, MemoryTransport)
    assert micro_transport.broker is micro_broker
    assert micro_transport.name == "micro_transport"
    assert MemoryBroker(seed=0).connections == []  # the fixture's broker is its own


@pytest.mark.anyio
@pytest.mark.micro_broker(seed=3, strict=False, max_payload=100)
async def test_the_micro_broker_marker_sets_options(micro_broker: MemoryBroker) -> None:
    assert not micro_broker.strict
    assert micro_broker.max_payload == 100


@pytest.mark.micro_both_transports
async def test_both_transports_runs_each_leg(
    micro_connect: Callable[..., Awaitable[Transport]],
    micro_transport: Transport,
    micro_leg: str,
    anyio_backend: str,
    request: pytest.FixtureRequest,
) -> None:
    other = await micro_connect()
    sub = await other.subscribe("legs")
    await micro_transport.publish("legs", micro_leg.encode())
    assert (await sub.next_msg(timeout=5)).data == micro_leg.encode()
    expected = {"memory": "MemoryTransport", "nats": "NatsTransport"}[micro_leg]
    assert type(micro_transport).__name__ == expected
    if micro_leg == "nats":
        assert anyio_backend == "asyncio"
        assert request.node.get_closest_marker("micro_nats") is not None
        assert request.node.get_closest_marker("nats") is not None  # our "never skip" rule
    else:
        assert anyio_backend in ("asyncio", "trio")


# --------------------------------------------------------------------------- in a subprocess


def _run_pytest(tmp_path: Path, source: str, *args: str) -> tuple[int, str]:
    (tmp_path / "test_user.py").write_text(textwrap.dedent(source), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHONPATH", "PYTEST_"))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-W", "error", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def test_a_handler_exception_fails_the_test_at_teardown_in_strict_mode(tmp_path: Path) -> None:
    code, output = _run_pytest(
        tmp_path,
        """
        import pytest
        from micro import Client, ServiceError, add_service

        pytestmark = pytest.mark.anyio

        @pytest.fixture
        def anyio_backend():
            return "asyncio"

        async def broken(request):
            raise LookupError("the real cause")

        async def test_the_caller_only_sees_a_500(micro_broker):
            service = add_service(await micro_broker.connect(), "svc", "1.0.0")
            async with service:
                await service.add_endpoint("op", broken)
                with pytest.raises(ServiceError):
                    await Client(await micro_broker.connect()).request("op")
        """,
        "-q",
    )
    assert code == 1, output
    assert "1 passed, 1 error" in output, output
    assert "LookupError: the real cause" in output, output
    assert "ERROR at teardown of test_the_caller_only_sees_a_500" in output, output


def test_micro_broker_on_the_nats_leg_fails_clearly(tmp_path: Path) -> None:
    code, output = _run_pytest(
        tmp_path,
        """
        import pytest

        @pytest.mark.micro_both_transports(trio=False)
        async def test_hooks(micro_transport, micro_broker):
            pass
        """,
        "-q",
    )
    assert code == 1, output
    assert "1 passed, 1 error" in output, output
    assert "micro_broker exists only on the memory leg" in output, output


def test_the_marker_needs_a_micro_fixture_and_nats_can_be_deselected(tmp_path: Path) -> None:
    code, output = _run_pytest(
        tmp_path,
        """
        import pytest

        @pytest.mark.micro_both_transports
        async def test_forgot_the_fixture():
            pass
        """,
        "-q",
    )
    assert code != 0
    assert "needs the test to use the fixture micro_transport or micro_connect" in output, output
    code, output = _run_pytest(
        tmp_path,
        """
        import pytest

        @pytest.mark.micro_both_transports
        async def test_round_trip(micro_transport, micro_leg):
            assert micro_leg == "memory"
        """,
        "-v",
        "--strict-markers",
        "-m",
        "not micro_nats",
    )
    assert code == 0, output
    assert "test_round_trip[memory-asyncio] PASSED" in output
    assert "test_round_trip[memory-trio] PASSED" in output
    assert "1 deselected" in output


def test_loading_the_plugin_is_cheap() -> None:
    script = (
        "import json, sys\n"
        "import transports._pytest_entry  # what pytest loads (it loads testing.pytest_plugin)\n"
        "heavy = ('nats', 'hypothesis', 'anyio', 'transports.memory', 'micro', 'trio')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy\n"
        "    or m == 'transports.memory')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
