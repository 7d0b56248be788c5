"""Connecting fails fast and safely (issue 14, item 5).

* the first connect tries each server once and raises one error -- ``run(setup,
  "nats://127.0.0.1:1")`` does not retry for two minutes -- while a connection that was up
  once is re-established when it drops;
* ``retry_on_failed_connect=True`` (on ``transports.connect``, ``Context.connect``,
  ``run_forever`` and ``run``) retries a first connect with nats-py's reconnect options,
  also until a server that was down comes up;
* no error, log line or ``repr`` shows a password or token from a URL: everything goes
  through ``transports.urls.redact_url``.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import transports
from micro import Context, run
from testing.nats_server import NatsServer
from transports.base import ConnectFailedError, TransportEventKind
from transports.nats import NatsTransport
from transports.nats.connect import server_list
from transports.urls import REDACTED, redact_url, redact_urls

pytestmark = pytest.mark.anyio

SECRETS = ("s3cret", "t0ken")
BOUND = 10.0
"""Seconds a test may take at most: failing fast takes milliseconds, retrying two minutes."""


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, text


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # nats-py runs on asyncio only


@pytest.fixture
def everything_logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG):
        yield caplog


# ---------------------------------------------------------------------- redaction


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
        ("nats://bob:s3cret@h:4222", f"nats://bob:{REDACTED}@h:4222"),
        ("nats://t0ken@h:4222", f"nats://{REDACTED}@h:4222"),
        ("tls://bob:p@ss:word@h", f"tls://bob:{REDACTED}@h"),  # '@' inside the password
        ("ws://bob:s3cret@h/path?q=a@b", f"ws://bob:{REDACTED}@h/path?q=a@b"),
        ("bob:s3cret@h:4222", f"bob:{REDACTED}@h:4222"),  # no scheme
        (
            "nats://a:s3cret@h1,nats://h2,t0ken@h3",
            f"nats://a:{REDACTED}@h1,nats://h2,{REDACTED}@h3",
        ),
        ("", ""),
        ("@", f"{REDACTED}@"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert redact_urls([url]) == [shown]


async def test_an_unknown_scheme_error_hides_the_password() -> None:
    with pytest.raises(ValueError, match="unknown transport URL") as caught:
        await transports.connect("bogus://bob:s3cret@host")
    assert f"bob:{REDACTED}@host" in str(caught.value)
    _assert_no_secret(str(caught.value))


def test_a_bad_server_list_error_hides_the_password() -> None:
    for servers in ("nats://bob:s3cret@h,,", ["nats://t0ken@h", ""]):
        with pytest.raises(ValueError, match="servers must be URLs") as caught:
            server_list(servers)
        _assert_no_secret(str(caught.value))


async def test_a_bad_servers_option_error_hides_the_password() -> None:
    async with Context() as ctx:
        with pytest.raises(ValueError, match="invalid servers option") as caught:
            await ctx.connect({"servers": ["nats://bob:s3cret@h", ""]})
    assert f"bob:{REDACTED}@h" in str(caught.value)
    _assert_no_secret(str(caught.value))


async def test_an_invalid_memory_url_error_hides_the_password() -> None:
    with pytest.raises(ValueError, match="invalid memory URL") as caught:
        await transports.connect("memory://bob:s3cret@broker")
    _assert_no_secret(str(caught.value))


# ---------------------------------------------------------------------- failing fast


@pytest.mark.timeout(BOUND)
def test_run_fails_at_once_with_one_error_and_no_log_line(
    everything_logged: pytest.LogCaptureFixture,
) -> None:
    """The issue's case: ``run(setup, "nats://127.0.0.1:1")`` (here with credentials in
    the URL, and two servers): one error names both, nothing is logged."""

    async def setup(ctx: Context) -> None:
        raise AssertionError("setup must not run without a connection")

    first, second = _closed_port(), _closed_port()
    url = f"nats://bob:s3cret@127.0.0.1:{first},nats://t0ken@127.0.0.1:{second}"
    with pytest.raises(ConnectFailedError) as caught:
        run(setup, url)
    text = str(caught.value)
    assert text.startswith("cannot connect to ")
    assert f"nats://bob:{REDACTED}@127.0.0.1:{first}" in text
    assert f"nats://{REDACTED}@127.0.0.1:{second}" in text
    assert "refused" in text.lower()
    assert [r for r in everything_logged.records if r.levelno >= logging.WARNING] == []
    _assert_no_secret(text, everything_logged.text)


@pytest.mark.timeout(BOUND)
async def test_each_server_is_tried_once() -> None:
    attempts: list[Exception] = []

    async def error_cb(error: Exception) -> None:
        attempts.append(error)

    url = f"nats://127.0.0.1:{_closed_port()},nats://127.0.0.1:{_closed_port()}"
    with pytest.raises(ConnectFailedError):
        await transports.connect(url, error_cb=error_cb)
    assert len(attempts) == 2


@pytest.mark.timeout(BOUND)
async def test_retry_on_failed_connect_retries_with_the_reconnect_options(
    everything_logged: pytest.LogCaptureFixture,
) -> None:
    url = f"nats://bob:s3cret@127.0.0.1:{_closed_port()}"
    attempts = 0

    async def error_cb(error: Exception) -> None:
        nonlocal attempts
        attempts += 1

    options: dict[str, Any] = {"max_reconnect_attempts": 2, "reconnect_time_wait": 0.01}
    with pytest.raises(ConnectFailedError) as caught:
        await transports.connect(url, retry_on_failed_connect=True, error_cb=error_cb, **options)
    assert attempts == 3  # the first try and two retries
    _assert_no_secret(str(caught.value), everything_logged.text)

    # without error_cb, each failed attempt is one warning (and the error at the end)
    with pytest.raises(ConnectFailedError):
        await transports.connect(url, retry_on_failed_connect=True, **options)
    warnings = [r for r in everything_logged.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert all("retrying" in r.getMessage() for r in warnings)
    _assert_no_secret(everything_logged.text)


@pytest.mark.timeout(BOUND)
async def test_retry_on_failed_connect_waits_for_a_server_that_comes_up(tmp_path: Path) -> None:
    """A service that starts before its server: with ``retry_on_failed_connect`` the first
    connect keeps trying and succeeds once the server is up."""
    port = _closed_port()
    first_failure = anyio.Event()

    async def error_cb(error: Exception) -> None:
        first_failure.set()

    server = NatsServer(port=port)
    try:
        async with anyio.create_task_group() as group:

            async def start_server_after_first_failure() -> None:
                await first_failure.wait()
                await anyio.to_thread.run_sync(server.start)

            group.start_soon(start_server_after_first_failure)
            transport = await transports.connect(
                f"nats://127.0.0.1:{port}",
                retry_on_failed_connect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.05,
                error_cb=error_cb,
            )
        try:
            assert transport.is_connected
            await transport.flush()
        finally:
            await transport.close()
    finally:
        server.stop()


async def test_without_retry_a_context_fails_as_run_does() -> None:
    async with Context() as ctx:
        with pytest.raises(ConnectFailedError):
            await ctx.connect(f"nats://127.0.0.1:{_closed_port()}")


async def test_retry_on_failed_connect_must_be_a_bool() -> None:
    async with Context() as ctx:
        with pytest.raises(TypeError, match="retry_on_failed_connect must be a bool"):
            await ctx.connect("memory://", retry_on_failed_connect="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="retry_on_failed_connect must be a bool"):
        await NatsTransport.connect("nats://127.0.0.1:1", retry_on_failed_connect=1)


def test_memory_urls_accept_the_retry_option() -> None:
    """The same configuration serves both transports: memory ignores the option."""
    seen: list[bool] = []

    async def setup(ctx: Context) -> None:
        seen.append(ctx.transport.is_connected)
        ctx.cancel()

    run(setup, "memory://connect-policy", retry_on_failed_connect=True)
    run(setup, "memory://connect-policy", {"retry_on_failed_connect": True}, backend="trio")
    assert seen == [True, True]


# ---------------------------------------------------------------------- once connected


@pytest.mark.timeout(BOUND * 2)
async def test_a_connection_that_was_up_reconnects_by_default(tmp_path: Path) -> None:
    """Failing fast is for the first connect only: after a server restart the connection
    comes back with the default options (``reconnect_time_wait`` shortened for the test)."""
    config = tmp_path / "auth.conf"
    config.write_text('authorization { user: "bob", password: "s3cret" }\n')
    with NatsServer(config_file=config) as server:
        url = server.url.replace("nats://", "nats://bob:s3cret@")
        transport = await transports.connect(url, reconnect_time_wait=0.05)
        try:
            _assert_no_secret(repr(transport))
            assert f"bob:{REDACTED}@" in repr(transport)
            reconnected = anyio.Event()
            transport.add_event_listener(
                lambda event: (
                    reconnected.set() if event.kind is TransportEventKind.RECONNECTED else None
                )
            )
            await anyio.to_thread.run_sync(server.restart)
            with anyio.fail_after(BOUND):
                await reconnected.wait()
            await transport.flush()
        finally:
            await transport.close()
