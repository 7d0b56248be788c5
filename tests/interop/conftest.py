"""Fixtures of the cross-language leg: the nats.js reference implementation against ours.

Node availability rule (this directory's own; these tests are not marked ``nats``):

* ``node`` and ``npm`` on ``PATH``: ``npm ci`` runs once per session in ``tests/interop/js``
  when ``node_modules`` is missing or older than ``package-lock.json`` (bounded by
  :data:`NPM_TIMEOUT`; its output is shown if it fails or times out).
* missing, with ``$CI`` set: the tests FAIL (CI must run this leg);
* missing, without ``$CI``: the tests are skipped, naming what is missing.

Every Node process is bounded in time and stopped in fixture teardown (EOF on stdin, then
SIGTERM, then SIGKILL); at the end of the session a check fails the run if any Node process
started from ``tests/interop/js`` by this pytest process is still alive.
The fixtures run their own :class:`testing.NatsServer` (not ``micro_nats_server``).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import anyio
import pytest

from testing.nats_server import NatsServer

JS_DIR = Path(__file__).parent / "js"
SERVICE_SCRIPT = JS_DIR / "service.mjs"
CLIENT_SCRIPT = JS_DIR / "client.mjs"
NPM_TIMEOUT = 180.0
READY_TIMEOUT = 15.0
CLIENT_TIMEOUT = 20.0  # one client.mjs run (its own watchdog fires at 15 s)
STOP_TIMEOUT = 5.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # nats-py is asyncio-only


# --------------------------------------------------------------------------- node + npm


@dataclass(frozen=True)
class NodeToolchain:
    node: str
    npm: str


def _needs_install() -> bool:
    installed = JS_DIR / "node_modules" / ".package-lock.json"  # npm's record of the install
    lockfile = JS_DIR / "package-lock.json"
    if not installed.is_file():
        return True
    return lockfile.is_file() and lockfile.stat().st_mtime > installed.stat().st_mtime


def _npm_install(npm: str) -> None:
    command = [npm, "ci" if (JS_DIR / "package-lock.json").is_file() else "install"]
    command += ["--no-audit", "--no-fund"]
    try:
        done = subprocess.run(
            command,
            cwd=JS_DIR,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        output = f"{exc.stdout or ''}{exc.stderr or ''}"
        pytest.fail(
            f"`{' '.join(command)}` in {JS_DIR} did not finish within {NPM_TIMEOUT:g} s:\n{output}",
            pytrace=False,
        )
    if done.returncode != 0:
        pytest.fail(
            f"`{' '.join(command)}` in {JS_DIR} failed with exit code {done.returncode}:\n"
            f"{done.stdout}{done.stderr}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def node_toolchain() -> NodeToolchain:
    """``node`` and ``npm`` with the pinned packages installed; see the module docstring."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(name for name, path in (("node", node), ("npm", npm)) if not path)
        reason = f"{missing} not found on PATH: the nats.js interoperability tests need Node.js"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so this leg must run)", pytrace=False)
        pytest.skip(reason)
    if _needs_install():
        _npm_install(npm)
    return NodeToolchain(node=node, npm=npm)


# --------------------------------------------------------------------------- node processes


class NodeProcess:
    """A Node script with piped stdin/stdout; stderr goes to ``stderr`` (a file the caller
    owns and closes)."""

    def __init__(self, argv: list[str], stderr: IO[bytes]) -> None:
        self.argv = argv
        self._stderr = stderr
        self.process = subprocess.Popen(
            argv, cwd=JS_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name=f"stdout of {argv}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.decode(errors="replace").rstrip("\n"))
        self._lines.put(None)

    def stderr_text(self) -> str:
        if self._stderr.closed:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def wait_for_line(self, prefix: str, timeout: float) -> str:
        """The first stdout line starting with ``prefix``; fails on EOF or after ``timeout``."""
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                problem = f"no {prefix!r} line within {timeout:g} s"
                break
            if line is None:
                problem = f"exited with code {self.process.wait(STOP_TIMEOUT)} before {prefix!r}"
                break
            if line.startswith(prefix):
                return line
            seen.append(line)
        pytest.fail(
            f"{' '.join(self.argv)}: {problem}\nstdout:\n"
            + "\n".join(seen)
            + f"\nstderr:\n{self.stderr_text()}",
            pytrace=False,
        )

    def stop(self) -> int:
        """EOF on stdin, then SIGTERM, then SIGKILL (each waited ``STOP_TIMEOUT``); reaped."""
        process = self.process
        try:
            if process.stdin is not None:
                process.stdin.close()
        except OSError:
            pass
        for escalate in (process.terminate, process.kill):
            try:
                process.wait(STOP_TIMEOUT)
                break
            except subprocess.TimeoutExpired:
                escalate()
        code = process.wait(STOP_TIMEOUT)
        self._reader.join(STOP_TIMEOUT)
        if process.stdout is not None:
            process.stdout.close()
        return code


def _strays(started: list[subprocess.Popen[bytes]]) -> list[str]:
    """Node processes still alive: ones we started, and (Linux ``/proc``) any child of this
    pytest process running a script of ``JS_DIR`` (e.g. a client run that escaped)."""
    found = [f"pid {p.pid}: {p.args!r}" for p in started if p.poll() is None]
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    me = os.getpid()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()  # after "pid (comm)": state ppid ...
        if fields[0] != "Z" and int(fields[1]) == me and str(JS_DIR) in cmdline:
            found.append(f"pid {entry.name}: {cmdline.strip()}")
    return found


@pytest.fixture(scope="session")
def node_processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The long-running Node processes started; at the end, the check for strays."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    strays = _strays(started)
    assert not strays, f"Node processes left running after the interop tests: {strays}"


# --------------------------------------------------------------------------- server + service


@pytest.fixture(scope="session")
def interop_server() -> Iterator[NatsServer]:
    """This directory's own nats-server on a free loopback port."""
    with NatsServer() as server:
        yield server


@dataclass(frozen=True)
class JsService:
    """The running ``service.mjs``: its instance id and a window around its start."""

    id: str
    spawned_at: datetime
    ready_at: datetime


@contextmanager
def _js_service(
    toolchain: NodeToolchain,
    server: NatsServer,
    processes: list[subprocess.Popen[bytes]],
    *options: str,
) -> Iterator[JsService]:
    """Run ``service.mjs <server url> *options`` until the block ends; fails with its stderr
    if it does not print ``READY <id>`` within READY_TIMEOUT or does not stop cleanly."""
    argv = [toolchain.node, str(SERVICE_SCRIPT), server.url, *options]
    with tempfile.TemporaryFile() as stderr:
        spawned_at = datetime.now(timezone.utc)
        node = NodeProcess(argv, stderr)
        processes.append(node.process)
        try:
            line = node.wait_for_line("READY ", READY_TIMEOUT)
            yield JsService(
                id=line.split(" ", 1)[1].strip(),
                spawned_at=spawned_at,
                ready_at=datetime.now(timezone.utc),
            )
            code = node.stop()
            assert code == 0, f"service.mjs exited with code {code}:\n{node.stderr_text()}"
        finally:
            node.stop()


@pytest.fixture(scope="module")
def js_service(
    node_toolchain: NodeToolchain,
    interop_server: NatsServer,
    node_processes: list[subprocess.Popen[bytes]],
) -> Iterator[JsService]:
    """Service ``js-echo`` (``service.mjs``), for the whole module."""
    with _js_service(node_toolchain, interop_server, node_processes) as service:
        yield service


@pytest.fixture
def js_iterator_service(
    node_toolchain: NodeToolchain,
    interop_server: NatsServer,
    node_processes: list[subprocess.Popen[bytes]],
) -> Iterator[JsService]:
    """Service ``js-iter`` (``service.mjs --iterator``), for one test."""
    with _js_service(node_toolchain, interop_server, node_processes, "--iterator") as service:
        yield service


JsClient = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def run_js_client(node_toolchain: NodeToolchain, interop_server: NatsServer) -> JsClient:
    """``await run_js_client(*args)`` runs ``client.mjs <server url> *args`` (stdin closed,
    bounded by CLIENT_TIMEOUT, killed when cancelled) and returns its JSON output; fails
    with its stderr on a non-zero exit code."""

    async def run(*args: str) -> dict[str, Any]:
        command = [node_toolchain.node, str(CLIENT_SCRIPT), interop_server.url, *args]
        with anyio.fail_after(CLIENT_TIMEOUT):
            done = await anyio.run_process(
                command, cwd=JS_DIR, stdin=subprocess.DEVNULL, check=False
            )
        stderr = done.stderr.decode(errors="replace")
        assert done.returncode == 0, f"client.mjs exited with {done.returncode}:\n{stderr}"
        output: dict[str, Any] = json.loads(done.stdout)
        return output

    return run
