"""``python -m micro``: in-process (``execute``), on a real nats-server, and as a subprocess."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest

from micro.cli import execute
from micro.cli.commands import (
    CommandError,
    Invocation,
    parse_headers,
    run_info,
    run_info_and_stats,
    run_ls,
    run_ping,
    run_request,
    run_stats,
)
from micro.cli.demo import start_demo_service
from micro.cli.render import format_duration, format_metadata, table
from micro.client import Client
from micro.service import Service
from transports.base import Transport
from transports.memory import MemoryBroker

ROOT = Path(__file__).resolve().parents[2]
SUBPROCESS_TIMEOUT = 60


class Run:
    """The outcome of one ``execute`` call (the program named ``micro``): ``out_bytes``
    is stdout exactly, ``out`` the same as text."""

    def __init__(self, argv: list[str], stdin: bytes = b"") -> None:
        raw_out = io.BytesIO()
        out = io.TextIOWrapper(raw_out, encoding="utf-8", newline="\n")
        err = io.StringIO()
        fake_stdin = io.TextIOWrapper(io.BytesIO(stdin))
        self.code = execute(argv, stdout=out, stderr=err, stdin=fake_stdin, prog="micro")
        out.flush()
        self.out_bytes = raw_out.getvalue()
        self.out = self.out_bytes.decode("utf-8", errors="replace")
        self.err = err.getvalue()

    def json(self) -> Any:
        return json.loads(self.out)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def _no_nats_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No nats CLI context or ``NATS_*`` variable of the machine leaks into a test."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))
    for name in list(os.environ):
        if name.startswith("NATS_"):
            monkeypatch.delenv(name)


def _memory_url(name: str) -> str:
    return f"memory://cli-{name}-{os.getpid()}"


# --------------------------------------------------------------------------- rendering


def test_table_aligns_columns_and_right_aligns_numbers() -> None:
    text = table(("NAME", "N"), [("a", 1), ("long-name", 100)], right=(1,))
    assert text.splitlines() == ["NAME         N", "a            1", "long-name  100"]


@pytest.mark.parametrize(
    ("ns", "text"),
    [(0, "0"), (850, "850ns"), (52_000, "52.0µs"), (1_500_000, "1.50ms"), (2_250_000_000, "2.25s")],
)
def test_durations_are_human_readable(ns: int, text: str) -> None:
    assert format_duration(ns) == text


def test_metadata_is_sorted_or_a_dash() -> None:
    assert format_metadata({"b": "2", "a": "1"}) == "a=1, b=2"
    assert format_metadata(None) == "-"


def test_headers_are_parsed_from_key_value_pairs() -> None:
    assert parse_headers(["A: 1", "B:x:y"]) == {"A": "1", "B": "x:y"}
    assert parse_headers([]) is None
    with pytest.raises(CommandError, match="KEY:VALUE") as caught:
        parse_headers(["nocolon"])
    assert caught.value.code == 2


# --------------------------------------------------------------------------- usage


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert execute(["--help"]) == 0
    assert "demo" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["ls", "--timeout", "0"],
        ["ls", "--timeout", "soon"],
        ["info", "a", "b", "c"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert execute(argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_an_unknown_url_scheme_is_a_usage_error() -> None:
    run = Run(["ls", "--server", "bogus://x"])
    assert run.code == 2
    assert run.err.count("\n") == 1
    assert "unknown transport URL 'bogus://x'" in run.err


def test_a_bad_header_is_a_usage_error() -> None:
    run = Run(["request", "subj", "--server", _memory_url("hdr"), "-H", "nocolon"])
    assert (run.code, run.err) == (
        2,
        "micro: error: invalid header 'nocolon': expected KEY:VALUE\n",
    )


def test_a_bad_service_name_is_a_usage_error() -> None:
    run = Run(["info", "bad.name", "--server", _memory_url("badname")])
    assert run.code == 2
    assert "bad.name" in run.err
    assert run.err.count("\n") == 1


# --------------------------------------------------------------------------- in-process, memory


def test_demo_runs_in_process_and_shows_the_error_reply() -> None:
    run = Run(["demo"])
    assert run.code == 0, run.err
    assert "service error 400 from greeter.hello: a name is required" in run.out
    assert "Hello, world!" in run.out
    assert "Total of 2 instances: 3 requests, 1 errors" in run.out  # the stats footer
    for command in ("ls", "ping greeter", "stats greeter"):
        assert f"$ micro {command}" in run.out
    assert run.err == ""


@pytest.mark.parametrize("command", ["info", "stats", "ping"])
def test_nothing_found_exits_1_with_one_line(command: str) -> None:
    run = Run([command, "ghost", "--server", _memory_url(command), "--timeout", "5"])
    assert run.code == 1
    assert run.err == "micro: error: no service 'ghost' found\n"


def test_ls_with_nothing_running_is_not_an_error() -> None:
    assert Run(["ls", "--server", _memory_url("ls-empty")]).out == "no services found\n"
    assert Run(["ls", "--json", "--server", _memory_url("ls-empty-json")]).json() == []


def test_request_without_responders_exits_1() -> None:
    run = Run(["request", "nobody", "--server", _memory_url("req")])
    assert (run.code, run.err) == (1, "micro: error: no responders on subject 'nobody'\n")


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def demo_world() -> AsyncIterator[tuple[Client, list[Service]]]:
    broker = MemoryBroker()
    async with AsyncExitStack() as stack:  # closes what was opened, also when setup fails
        transports: list[Transport] = []
        for _ in range(3):
            transports.append(await broker.connect())
            stack.push_async_callback(transports[-1].close)
        services: list[Service] = []
        for transport in transports[:2]:
            services.append(await start_demo_service(transport))
            stack.push_async_callback(services[-1].stop)
        yield Client(transports[2]), services


@pytest.mark.anyio
async def test_commands_render_tables(demo_world: tuple[Client, list[Service]]) -> None:
    client, services = demo_world
    out = io.StringIO()
    inv = Invocation(out=out)
    assert await run_ls(client, inv) == 0
    ls_lines = out.getvalue().splitlines()
    assert ls_lines[0].split() == ["NAME", "ID", "VERSION", "ENDPOINTS", "DESCRIPTION"]
    assert sorted(line.split()[1] for line in ls_lines[1:3]) == sorted(s.id for s in services)
    assert "2 instances of 1 service" in out.getvalue()

    for command in (run_info, run_stats, run_ping):
        out.seek(0)
        out.truncate()
        assert await command(client, inv, "greeter", services[1].id) == 0
        assert services[1].id in out.getvalue()
        assert services[0].id not in out.getvalue()
    assert "ms" in out.getvalue().splitlines()[1]  # the RTT column of ping

    out.seek(0)
    out.truncate()
    assert await run_request(client, inv, "greeter.hello", b"you", None) == 0
    assert out.getvalue() == "Hello, you!"  # the payload as is
    with pytest.raises(CommandError, match="service error 400") as caught:
        await run_request(client, inv, "greeter.hello", b"", None)
    assert caught.value.code == 1


@pytest.mark.anyio
async def test_ls_of_one_service_and_info_with_stats(
    demo_world: tuple[Client, list[Service]],
) -> None:
    client, services = demo_world
    out = io.StringIO()
    inv = Invocation(out=out, json=True)
    assert await run_ls(client, inv, "greeter") == 0
    assert sorted(d["id"] for d in json.loads(out.getvalue())) == sorted(s.id for s in services)
    out.seek(0)
    out.truncate()
    assert await run_info_and_stats(client, inv, "greeter", services[1].id) == 0
    [document] = json.loads(out.getvalue())
    assert document["info"]["id"] == document["stats"]["id"] == services[1].id
    inv.json = False
    out.seek(0)
    out.truncate()
    assert await run_info_and_stats(client, inv, "greeter", None) == 0
    text = out.getvalue()
    assert text.count("Service: greeter 1.0.0") == 2
    assert text.count("ENDPOINT  SUBJECT        REQUESTS") == 2
    with pytest.raises(CommandError, match="no service 'ghost' found"):
        await run_info_and_stats(client, inv, "ghost", None)


@pytest.mark.anyio
async def test_commands_print_json(demo_world: tuple[Client, list[Service]]) -> None:
    client, services = demo_world
    out = io.StringIO()
    inv = Invocation(out=out, json=True)

    async def documents(command: Callable[..., Any], *args: Any) -> Any:
        out.seek(0)
        out.truncate()
        assert await command(client, inv, *args) == 0
        return json.loads(out.getvalue())

    listed = await documents(run_ls)
    assert sorted(d["id"] for d in listed) == sorted(s.id for s in services)
    info = await documents(run_info, "greeter", None)
    assert {e["subject"] for e in info[0]["endpoints"]} == {"greeter.hello", "greeter.echo"}
    stats = await documents(run_stats, None, None)
    assert stats[0]["type"] == "io.nats.micro.v1.stats_response"
    pings = await documents(run_ping, "greeter", None)
    assert all(p["rtt_ms"] >= 0 for p in pings)
    assert len(pings) == 2
    reply = await documents(run_request, "greeter.echo", b"x", {"h": "1"})
    assert (reply["data"], reply["data_base64"], reply["headers"]) == ("x", "eA==", {"h": "1"})
    out.seek(0)
    out.truncate()
    with pytest.raises(CommandError):
        await run_request(client, inv, "greeter.hello", b"", None)
    failed = json.loads(out.getvalue())
    assert failed["error"] == {"code": 400, "description": "a name is required"}


# --------------------------------------------------------------------------- a real nats-server


@pytest.fixture
async def foreign_and_ours(micro_nats_server: Any) -> AsyncIterator[dict[str, str]]:
    """A nats-py ``nats.micro`` service and one of ours on the real server."""
    import nats
    import nats.micro

    from transports.nats import NatsTransport

    async def respond(req: Any) -> None:
        await req.respond(b"ok")

    # everything opened is closed, in reverse order, also when a later step of the setup
    # fails (a nats-py client left open is found by the garbage collector in a later test)
    async with AsyncExitStack() as stack:
        nc = await nats.connect(micro_nats_server.url)
        stack.push_async_callback(nc.close)
        theirs = await nats.micro.add_service(nc, name="theirs", version="2.0.0", description="py")
        stack.push_async_callback(theirs.stop)
        await theirs.add_endpoint(name="work", handler=respond)
        await nc.flush()  # nats.micro does not wait for its subscriptions to be live:
        await nc.flush()  # two round trips do (bench/RESULTS.md)
        transport = await NatsTransport.connect(micro_nats_server.url)
        stack.push_async_callback(transport.close)
        ours = await start_demo_service(transport)
        stack.push_async_callback(ours.stop)
        yield {"theirs": theirs.id, "ours": ours.id, "url": micro_nats_server.url}


async def _in_thread(argv: list[str], stdin: bytes = b"") -> Run:
    return await anyio.to_thread.run_sync(partial(Run, argv, stdin))


class TestOnARealServer:
    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"  # nats-py runs on asyncio only

    @pytest.mark.anyio
    async def test_ls_info_stats_ping_request_see_nats_micro_and_ours(
        self, foreign_and_ours: dict[str, str]
    ) -> None:
        url = foreign_and_ours["url"]
        run = await _in_thread(["ls", "--server", url])
        assert run.code == 0, run.err
        rows = {line.split()[0]: line.split() for line in run.out.splitlines()[1:] if line.strip()}
        assert rows["theirs"][1:4] == [foreign_and_ours["theirs"], "2.0.0", "1"]
        assert rows["greeter"][1:4] == [foreign_and_ours["ours"], "1.0.0", "2"]
        listed = (await _in_thread(["ls", "--json", "--server", url])).json()
        assert {d["name"] for d in listed} >= {"theirs", "greeter"}
        info = (await _in_thread(["info", "theirs", "--json", "-s", url])).json()
        assert [e["name"] for e in info[0]["endpoints"]] == ["work"]
        stats = (await _in_thread(["stats", "theirs", "--json", "-s", url])).json()
        assert stats[0]["id"] == foreign_and_ours["theirs"]
        ping = await _in_thread(["ping", "theirs", foreign_and_ours["theirs"], "-s", url])
        assert ping.code == 0
        assert foreign_and_ours["theirs"] in ping.out
        reply = await _in_thread(["request", "work", "-s", url])
        assert (reply.code, reply.out) == (0, "ok")
        piped = await _in_thread(["request", "greeter.echo", "-", "-s", url], b"from stdin")
        assert (piped.code, piped.out) == (0, "from stdin")
        failed = await _in_thread(["request", "greeter.hello", "", "-s", url])
        assert failed.code == 1
        assert failed.err == (
            "micro: error: service error 400 from greeter.hello: a name is required\n"
        )

    @pytest.mark.anyio
    async def test_the_demo_runs_on_a_real_server(self, micro_nats_server: Any) -> None:
        run = await _in_thread(["demo", "--server", micro_nats_server.url])
        assert run.code == 0, run.err
        assert f"--server {micro_nats_server.url}" in run.out
        assert "service error 400 from greeter.hello: a name is required" in run.out


def test_a_refused_connection_exits_1_with_one_line() -> None:
    url = f"nats://127.0.0.1:{_closed_port()}"
    run = Run(["ls", "--server", url, "--timeout", "2"])
    assert run.code == 1
    assert run.err.startswith(f"micro: error: cannot connect to {url}")
    assert run.err.count("\n") == 1
    assert "Traceback" not in run.err


# --------------------------------------------------------------------------- subprocess


def _python_m_micro(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "micro", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
    )


def test_python_m_micro_demo_exits_0_and_prints_the_error_reply() -> None:
    result = _python_m_micro("demo")
    assert result.returncode == 0, result.stderr
    assert "service error 400 from greeter.hello: a name is required" in result.stdout
    assert "$ python -m micro ls" in result.stdout  # the name it was invoked by
    assert result.stderr == ""


def test_python_m_micro_against_no_server_exits_1_without_traceback() -> None:
    url = f"nats://127.0.0.1:{_closed_port()}"
    result = _python_m_micro("ls", env={"NATS_URL": url})
    assert result.returncode == 1
    assert result.stderr.startswith(f"python -m micro: error: cannot connect to {url}")
    assert result.stderr.count("\n") == 1, result.stderr
