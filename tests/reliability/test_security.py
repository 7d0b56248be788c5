"""Security on real nats-servers: authentication, TLS, permissions, and what callers may see.

* token, user/password and nkey authentication pass through to nats-py: a service and a
  client authenticated that way work; wrong credentials fail at once with
  ``AuthorizationError`` -- with nats-py's default reconnect options too (which alone would
  retry for two minutes);
* TLS with certificates made in the test (``trustme``), mutual TLS included; an untrusted
  server certificate or a missing client certificate fails at once with
  ``ConnectFailedError`` naming the TLS problem;
* a publish or subscribe the server denies surfaces as ``PermissionViolationError`` naming the
  subject; a service whose subscription is denied does not half-run: ``start()`` fails and
  leaves nothing subscribed, and a subscription revoked later (configuration reload) stops
  the service with an error notification;
* a handler's exception text never reaches the caller (``500 Internal Server Error``).
"""

from __future__ import annotations

import os
import signal
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import nkeys
import pytest
import trustme
from reliability_support import EventLog, FaultDriver, note

from micro import Client, Request, Service, ServiceError, add_service
from testing.nats_server import NatsServer
from transports.base import (
    AuthorizationError,
    ConnectFailedError,
    PermissionViolationError,
    TransportEventKind,
)
from transports.nats import NatsTransport
from transports.nats.connect import connect_error
from transports.nats.errors import map_nats_error

pytestmark = pytest.mark.anyio

CONNECT_BOUND = 5.0
"""Seconds within which a rejected connection must have failed (nats-py would retry ~2 min)."""


def _new_nkey() -> tuple[str, str]:
    """A fresh user nkey: ``(public key "U...", seed "SU...")``."""
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key
    return public.decode(), seed.decode()


def _server(tmp_path: Path, config: str) -> NatsServer:
    path = tmp_path / "server.conf"
    path.write_text(config)
    return NatsServer(config_file=path)


async def _echo(request: Request) -> None:
    await request.respond(request.data())


async def _serve_and_call(service_conn: NatsTransport, client_conn: NatsTransport) -> None:
    """A service on one authenticated connection answers a client on another."""
    async with add_service(service_conn, "secure", "1.0.0") as service:
        await service.add_endpoint("echo", _echo, subject="secure.echo")
        client = Client(client_conn)
        with anyio.fail_after(5):
            assert (await client.request("secure.echo", b"hi")).data == b"hi"
            [ping] = await client.ping("secure", max_count=1)
        assert ping.id == service.id


async def _rejected(url: str, expected: type[Exception], **options: Any) -> Exception:
    """Connect with default reconnect options; return the error (must come fast)."""
    started = time.monotonic()
    with anyio.fail_after(CONNECT_BOUND), pytest.raises(expected) as info:
        await NatsTransport.connect(url, **options)
    elapsed = time.monotonic() - started
    assert elapsed < CONNECT_BOUND
    return info.value


# ---------------------------------------------------------------------- authentication

_PUBLIC, _SEED = _new_nkey()
_OTHER_PUBLIC, _OTHER_SEED = _new_nkey()

AUTH_CASES = {
    "token": (
        'authorization { token: "s3cret-token" }\n',
        {"token": "s3cret-token"},
        {"token": "wrong-token"},
    ),
    "user-password": (
        'authorization { user: "alice", password: "right-pw" }\n',
        {"user": "alice", "password": "right-pw"},
        {"user": "alice", "password": "wrong-pw"},
    ),
    "nkey": (
        f'authorization {{ users = [ {{ nkey: "{_PUBLIC}" }} ] }}\n',
        {"nkeys_seed_str": _SEED},
        {"nkeys_seed_str": _OTHER_SEED},
    ),
}


@pytest.mark.nats
@pytest.mark.parametrize("kind", sorted(AUTH_CASES))
async def test_authentication_passes_through(tmp_path: Path, kind: str) -> None:
    config, good, bad = AUTH_CASES[kind]
    with _server(tmp_path, config) as server:
        service_conn = await NatsTransport.connect(server.url, **good)
        client_conn = await NatsTransport.connect(server.url, **good)
        try:
            await _serve_and_call(service_conn, client_conn)
        finally:
            await service_conn.close()
            await client_conn.close()
        started = time.monotonic()
        error = await _rejected(server.url, AuthorizationError, **bad)
        assert "authorization" in str(error).lower()
        assert server.url in str(error)
        await _rejected(server.url, AuthorizationError)  # no credentials at all
        note(
            f"auth[{kind}]",
            f"wrong credentials rejected in {(time.monotonic() - started) * 1e3:.0f} ms",
        )


@pytest.mark.nats
async def test_credentials_in_the_url(tmp_path: Path) -> None:
    with _server(tmp_path, 'authorization { user: "alice", password: "right-pw" }\n') as server:
        good = server.url.replace("nats://", "nats://alice:right-pw@")
        service_conn = await NatsTransport.connect(good)
        client_conn = await NatsTransport.connect(good)
        try:
            await _serve_and_call(service_conn, client_conn)
        finally:
            await service_conn.close()
            await client_conn.close()
        await _rejected(server.url.replace("nats://", "nats://alice:nope@"), AuthorizationError)


# ---------------------------------------------------------------------- TLS


class _Pki:
    """A throw-away certificate authority with a server certificate for 127.0.0.1."""

    def __init__(self, directory: Path) -> None:
        self.ca = trustme.CA()
        server = self.ca.issue_cert("127.0.0.1", "localhost")
        self.cert = directory / "server-cert.pem"
        self.key = directory / "server-key.pem"
        self.ca_file = directory / "ca.pem"
        server.cert_chain_pems[0].write_to_path(str(self.cert))
        server.private_key_pem.write_to_path(str(self.key))
        self.ca.cert_pem.write_to_path(str(self.ca_file))

    def config(self, *, verify_clients: bool = False) -> str:
        lines = [f'cert_file: "{self.cert}"', f'key_file: "{self.key}"']
        if verify_clients:
            lines += [f'ca_file: "{self.ca_file}"', "verify: true"]
        return "tls {\n  " + "\n  ".join(lines) + "\n}\n"

    def client_context(self, *, with_cert: bool = False) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        if with_cert:
            self.ca.issue_cert("client.example").configure_cert(context)
        return context


@pytest.fixture
def pki(tmp_path: Path) -> _Pki:
    return _Pki(tmp_path)


@pytest.mark.nats
async def test_tls(tmp_path: Path, pki: _Pki) -> None:
    with _server(tmp_path, pki.config()) as server:
        url = server.url.replace("nats://", "tls://")
        service_conn = await NatsTransport.connect(url, tls=pki.client_context())
        client_conn = await NatsTransport.connect(url, tls=pki.client_context())
        try:
            await _serve_and_call(service_conn, client_conn)
        finally:
            await service_conn.close()
            await client_conn.close()

        untrusted = ssl.create_default_context()
        trustme.CA().configure_trust(untrusted)  # some other authority
        error = await _rejected(url, ConnectFailedError, tls=untrusted)
        assert "certificate verify failed" in str(error).lower()
        # no TLS options at all: nats-py upgrades (the server requires TLS) with the
        # system's trust store, which does not know our authority
        error = await _rejected(server.url, ConnectFailedError)
        assert "tls" in str(error).lower()


@pytest.mark.nats
async def test_mutual_tls(tmp_path: Path, pki: _Pki) -> None:
    with _server(tmp_path, pki.config(verify_clients=True)) as server:
        url = server.url.replace("nats://", "tls://")
        service_conn = await NatsTransport.connect(url, tls=pki.client_context(with_cert=True))
        client_conn = await NatsTransport.connect(url, tls=pki.client_context(with_cert=True))
        try:
            await _serve_and_call(service_conn, client_conn)
        finally:
            await service_conn.close()
            await client_conn.close()
        error = await _rejected(url, ConnectFailedError, tls=pki.client_context())
        assert "certificate" in str(error).lower()


@pytest.mark.parametrize(
    "dropped", [ConnectionResetError(104, "reset"), BrokenPipeError(32, "pipe")]
)
def test_a_dropped_first_tls_connection_is_a_permanent_tls_error(dropped: OSError) -> None:
    """With TLS 1.3 the server refuses a client certificate after the client finished its
    handshake, and its alert races its close: the client may see the socket dropped instead
    (what ``test_mutual_tls`` hits most of the time on 3.12+).  Retrying cannot cure it."""
    mapped = map_nats_error(dropped)
    error, permanent = connect_error(dropped, mapped, tls=True)
    assert permanent
    assert isinstance(error, ConnectFailedError)
    assert "TLS error" in str(error)
    assert "certificate" in str(error)
    # without TLS it stays a network failure, worth retrying
    assert connect_error(dropped, mapped, tls=False) == (mapped, False)


# ---------------------------------------------------------------------- permissions

_PERMISSIONS = """
authorization {
  users = [
    { user: "svc", password: "pw",
      permissions: { subscribe: { deny: ["Billing.>"] }, publish: { deny: ["Audit.>"] } } }
    { user: "blind", password: "pw", permissions: { subscribe: { deny: ["$SRV.>"] } } }
    { user: "cli", password: "pw" }
  ]
}
"""


@pytest.fixture
def permissions_server(tmp_path: Path) -> Iterator[NatsServer]:
    with _server(tmp_path, _PERMISSIONS) as server:
        yield server


@pytest.mark.nats
async def test_denied_publish_and_subscribe_name_the_subject(
    permissions_server: NatsServer,
) -> None:
    conn = await NatsTransport.connect(permissions_server.url, user="svc", password="pw")
    events = EventLog(conn)
    try:
        with anyio.fail_after(5), pytest.raises(PermissionViolationError) as info:
            await conn.subscribe("Billing.Charge", queue="q")
        assert (info.value.operation, info.value.subject) == ("subscription", "Billing.Charge")

        await conn.publish("Audit.Log", b"entry")  # core NATS: the refusal comes back later

        def publish_denials() -> list[PermissionViolationError]:
            return [
                error
                for error in events.errors()
                if isinstance(error, PermissionViolationError) and error.operation == "publish"
            ]

        await events.wait_until(lambda: bool(publish_denials()))
        [denied] = publish_denials()
        assert denied.subject.lower() == "audit.log"  # nats-py lower-cases the server's line
        assert conn.is_connected  # a violation does not cost the connection
    finally:
        events.close()
        await conn.close()


async def _nobody_answers(server: NatsServer, service_name: str) -> None:
    client_conn = await NatsTransport.connect(server.url, user="cli", password="pw")
    try:
        with anyio.fail_after(5):
            assert await Client(client_conn).ping(service_name) == []
    finally:
        await client_conn.close()


@pytest.mark.nats
async def test_service_with_a_denied_endpoint_does_not_start(
    permissions_server: NatsServer,
) -> None:
    conn = await NatsTransport.connect(permissions_server.url, user="svc", password="pw")
    done: list[Service] = []
    try:
        service = add_service(conn, "billing", "1.0.0", done_handler=done.append)
        await service.add_endpoint("charge", _echo, subject="Billing.Charge")
        with anyio.fail_after(5), pytest.raises(PermissionViolationError) as info:
            await service.start()
        assert info.value.subject == "Billing.Charge"
        assert service.stopped()
        assert service.stop_error is info.value
        assert done == [service]
        await _nobody_answers(permissions_server, "billing")  # control subjects were removed
        assert conn.is_connected
    finally:
        await conn.close()


@pytest.mark.nats
async def test_service_with_denied_control_subjects_does_not_start(
    permissions_server: NatsServer,
) -> None:
    conn = await NatsTransport.connect(permissions_server.url, user="blind", password="pw")
    try:
        service = add_service(conn, "blind", "1.0.0")
        await service.add_endpoint("echo", _echo, subject="blind.echo")
        with anyio.fail_after(5), pytest.raises(PermissionViolationError) as info:
            await service.start()
        assert info.value.subject.startswith("$SRV.")
        assert service.stopped()
        client_conn = await NatsTransport.connect(permissions_server.url, user="cli", password="pw")
        try:  # the endpoint was not left behind either
            with anyio.fail_after(5), pytest.raises(Exception, match="no responders"):
                await client_conn.request("blind.echo", b"x", timeout=2)
        finally:
            await client_conn.close()
    finally:
        await conn.close()


_BEFORE_RELOAD = """
authorization { users = [ { user: "svc", password: "pw" }, { user: "cli", password: "pw" } ] }
"""
_AFTER_RELOAD = """
authorization { users = [
  { user: "svc", password: "pw", permissions: { subscribe: { deny: ["Orders.>"] } } }
  { user: "cli", password: "pw" }
] }
"""


@pytest.mark.nats
async def test_revoked_subscription_stops_the_service_with_an_error(tmp_path: Path) -> None:
    path = tmp_path / "reload.conf"
    path.write_text(_BEFORE_RELOAD)
    with NatsServer(config_file=path) as server:
        conn = await NatsTransport.connect(server.url, user="svc", password="pw")
        reported: list[BaseException] = []
        done: list[Service] = []
        try:
            service = add_service(
                conn,
                "orders",
                "1.0.0",
                error_handler=lambda _s, error: reported.append(error),
                done_handler=done.append,
            )
            endpoint = await service.add_endpoint("place", _echo, subject="Orders.Place")
            await service.add_endpoint("status", _echo, subject="status.orders")
            await service.start()

            path.write_text(_AFTER_RELOAD)
            assert server.pid is not None
            os.kill(server.pid, signal.SIGHUP)  # the server reloads and removes the subscription
            with anyio.fail_after(10):
                error = await service.wait_stopped()
            assert isinstance(error, PermissionViolationError)
            assert error.subject == "Orders.Place"  # as subscribed, not lower-cased
            assert reported == [error]
            assert done == [service]
            assert endpoint.stats.num_errors == 1
            assert "Orders.Place" in endpoint.stats.last_error
            await _nobody_answers(server, "orders")  # no half-running service is left
        finally:
            await conn.close()


# ---------------------------------------------------------------------- what callers see


async def test_handler_exception_text_never_reaches_the_caller(fault_driver: FaultDriver) -> None:
    service_conn = await fault_driver.connect("leaky-service")
    client_conn = await fault_driver.connect("leaky-client")
    secret = "password=hunter2 host=db.internal"

    async def leaky(request: Request) -> None:
        raise RuntimeError(f"cannot connect with {secret}")

    events = EventLog(service_conn)
    async with add_service(service_conn, "leaky", "1.0.0") as service:
        await service.add_endpoint("call", leaky)
        with anyio.fail_after(5):
            raw = await client_conn.request("call", b"x", timeout=2)
            with pytest.raises(ServiceError) as info:
                await Client(client_conn).request("call", b"x", timeout=2)
        assert (info.value.code, info.value.description) == (500, "Internal Server Error")
        assert "hunter2" not in repr(raw)  # neither in the payload nor in any header
        assert "RuntimeError" not in repr(raw)
        assert service.stats().endpoints[0].num_errors == 2
    assert TransportEventKind.ERROR not in events.kinds()  # a handler error is no transport error
    events.close()
