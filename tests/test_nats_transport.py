"""nats-specific behaviour of ``transports.nats.NatsTransport`` against a real nats-server.

The generic ``Transport`` contract is the shared conformance suite's job; here: wrapping an
existing nats-py client, option pass-through, error mapping observed from a real server,
the subscribe barrier, server lists and the URL registry.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import nats
import pytest
from nats.aio.client import Client

import transports
from testing.nats_server import NatsServer
from transports.base import (
    BadHeaderError,
    BadSubjectError,
    ConnectionClosedError,
    MaxPayloadError,
    Msg,
    NoRespondersError,
    PermissionViolationError,
    SlowConsumerError,
    TransportError,
    TransportEvent,
    TransportEventKind,
)
from transports.nats import NatsTransport, connect_url

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Recorder:
    """Collects transport events; ``wait_for`` blocks (bounded) until one matches."""

    def __init__(self) -> None:
        self.events: list[TransportEvent] = []
        self._changed = anyio.Event()

    def __call__(self, event: TransportEvent) -> None:
        self.events.append(event)
        self._changed.set()

    def kinds(self) -> list[TransportEventKind]:
        return [event.kind for event in self.events]

    async def wait_for(
        self, predicate: Callable[[TransportEvent], bool], within: float = 10.0
    ) -> TransportEvent:
        with anyio.fail_after(within):
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                self._changed = anyio.Event()
                await self._changed.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _assert_ours(exc: BaseException) -> None:
    """Nothing above the seam may see a nats-py type."""
    assert isinstance(exc, TransportError)
    assert not type(exc).__module__.startswith("nats")


# ---------------------------------------------------------------- wrapping a client


async def test_wrapping_a_client_keeps_its_callbacks(micro_nats_server: NatsServer) -> None:
    calls: list[str] = []

    async def error_cb(exc: Exception) -> None:
        calls.append(f"error:{type(exc).__name__}")

    async def disconnected_cb() -> None:
        calls.append("disconnected")

    async def closed_cb() -> None:
        calls.append("closed")

    nc = await nats.connect(
        micro_nats_server.url, error_cb=error_cb, disconnected_cb=disconnected_cb,
        closed_cb=closed_cb,
    )  # fmt: skip
    transport = NatsTransport(nc)
    assert transport.nc is nc
    recorder = Recorder()
    transport.add_event_listener(recorder)

    sub = await transport.subscribe("wrap.slow", pending_msgs_limit=1)
    for _ in range(3):
        await transport.publish("wrap.slow", b"x")
    event = await recorder.wait_for(lambda e: e.kind is TransportEventKind.ERROR)
    assert isinstance(event.error, SlowConsumerError)
    assert event.error.subject == "wrap.slow"
    with anyio.fail_after(5):
        while sub.dropped < 2:
            await transport.flush()
    assert sub.dropped == 2
    assert calls.count("error:SlowConsumerError") == 2  # the user's error_cb saw them too

    await transport.close()
    await transport.close()
    assert calls[-2:] == ["disconnected", "closed"]
    assert recorder.kinds().count(TransportEventKind.CLOSED) == 1
    assert TransportEventKind.DISCONNECTED not in recorder.kinds()  # closing is CLOSED only


async def test_wrapping_a_plain_subscription_of_the_client(micro_nats_server: NatsServer) -> None:
    """The user's own nats-py subscriptions on a wrapped client still get nats-py messages."""
    nc = await nats.connect(micro_nats_server.url)
    transport = NatsTransport(nc)
    try:
        raw_sub = await nc.subscribe("wrap.raw")
        ours = await transport.subscribe("wrap.raw")
        await transport.publish("wrap.raw", b"hello", headers={"K": "v"})
        raw_msg = await raw_sub.next_msg(timeout=5)
        assert type(raw_msg).__module__.startswith("nats")
        assert raw_msg.data == b"hello"
        with anyio.fail_after(5):
            msg = await ours.next_msg()
        assert (msg.subject, msg.data, msg.headers, msg.reply) == (
            "wrap.raw", b"hello", {"K": "v"}, None,
        )  # fmt: skip
    finally:
        await transport.close()


async def test_wrapping_rejects_what_is_not_a_connected_client() -> None:
    with pytest.raises(TypeError, match="nats-py Client"):
        NatsTransport(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not connected"):
        NatsTransport(Client())


# ---------------------------------------------------------------- connect options


async def test_connect_passes_options_through(micro_nats_server: NatsServer) -> None:
    errors: list[Exception] = []

    async def error_cb(exc: Exception) -> None:
        errors.append(exc)

    transport = await NatsTransport.connect(
        micro_nats_server.url,
        name="micro-options",
        inbox_prefix="_MINE",
        no_echo=True,
        error_cb=error_cb,
    )
    other = await NatsTransport.connect(micro_nats_server.url)
    try:
        assert transport.nc.options["name"] == "micro-options"
        assert transport.new_inbox().startswith("_MINE.")
        # no_echo: the server does not deliver our own publishes back to us
        sub = await transport.subscribe("opts.echo")
        await transport.publish("opts.echo", b"mine")
        await other.publish("opts.echo", b"theirs")
        with anyio.fail_after(5):
            assert (await sub.next_msg()).data == b"theirs"
        # the user's error_cb is chained, not replaced
        slow = await transport.subscribe("opts.slow", pending_msgs_limit=1)
        await other.publish("opts.slow")
        await other.publish("opts.slow")
        with anyio.fail_after(5):
            while not errors:
                await transport.flush()
        assert type(errors[0]).__name__ == "SlowConsumerError"
        assert slow.dropped == 1
    finally:
        await transport.close()
        await other.close()


async def test_nats_py_subject_checks_are_skipped_only_behind_ours(
    micro_nats_server: NatsServer,
) -> None:
    """Our connections skip nats-py's own subject check (ours runs first and is stricter),
    unless the caller asks for it; a bad subject is still refused before anything is sent."""
    ours = await NatsTransport.connect(micro_nats_server.url)
    asked = await NatsTransport.connect(micro_nats_server.url, skip_subject_validation=False)
    try:
        assert ours.nc._skip_subject_validation is True
        assert asked.nc._skip_subject_validation is False
        for bad in ("a b", "a\r\nPUB x 1", "a..b", "a.*", ""):
            with pytest.raises(BadSubjectError):
                await ours.publish(bad, b"x")
            with pytest.raises(BadSubjectError):
                await ours.publish("ok", b"x", reply=bad)
        assert ours.is_connected  # nothing malformed reached the server
        await ours.flush()
    finally:
        await ours.close()
        await asked.close()


async def test_connect_rejects_unknown_options_and_sync_callbacks() -> None:
    with pytest.raises(TypeError, match=r"unknown nats-py connect option\(s\) \['nmae'\]"):
        await NatsTransport.connect("nats://127.0.0.1:1", nmae="typo")

    def not_async(exc: Exception) -> None:
        pass

    with pytest.raises(TypeError, match="error_cb must be an async function"):
        await NatsTransport.connect("nats://127.0.0.1:1", error_cb=not_async)
    with pytest.raises(ValueError, match="servers must be URLs"):
        await NatsTransport.connect("nats://127.0.0.1:1,,")


async def test_connect_url_with_comma_separated_servers(micro_nats_server: NatsServer) -> None:
    dead = f"nats://127.0.0.1:{_free_port()}"
    with anyio.fail_after(10):
        transport = await connect_url(f"{dead}, {micro_nats_server.url}", dont_randomize=True)
    try:
        assert transport.is_connected
        connected = transport.nc.connected_url
        assert connected is not None
        assert connected.port == micro_nats_server.port
        assert {server.port for server in transport.nc.servers} >= {micro_nats_server.port}
        assert len(transport.nc.servers) >= 2
    finally:
        await transport.close()


async def test_transports_connect_picks_nats_by_scheme(micro_nats_server: NatsServer) -> None:
    transport = await transports.connect(micro_nats_server.url, name="by-url")
    try:
        assert isinstance(transport, NatsTransport)
        assert transport.nc.options["name"] == "by-url"
        with pytest.raises(NoRespondersError):
            await transport.request("nobody.listens", timeout=5)
    finally:
        await transport.close()


# ---------------------------------------------------------------- connect failures


@pytest.mark.parametrize(
    "options",
    [{"allow_reconnect": False, "max_reconnect_attempts": 0}, {"allow_reconnect": False}],
)
async def test_connect_to_a_closed_port_fails_fast(options: dict[str, Any]) -> None:
    url = f"nats://127.0.0.1:{_free_port()}"
    seen: list[Exception] = []

    async def error_cb(exc: Exception) -> None:
        seen.append(exc)

    with anyio.fail_after(5), pytest.raises(TransportError, match="cannot connect") as info:
        await NatsTransport.connect(url, error_cb=error_cb, **options)
    _assert_ours(info.value)
    assert url in str(info.value)
    assert "refused" in str(info.value).lower()
    assert info.value.__cause__ is not None
    assert len(seen) == 1  # tried once, and the user's error_cb heard about it


async def test_connect_with_bad_credentials_fails(tmp_path: Path) -> None:
    config = tmp_path / "auth.conf"
    config.write_text('authorization { user: "alice", password: "right" }\n')
    with NatsServer(config_file=config) as server:
        url = server.url.replace("nats://", "nats://alice:wrong@")
        # verbose: nats-py reads the server's answer to CONNECT before it sends PING; without
        # it the server may close first and the client sees only "connection reset".
        with anyio.fail_after(5), pytest.raises(TransportError, match="authorization") as info:
            await NatsTransport.connect(url, allow_reconnect=False, verbose=True)
        _assert_ours(info.value)
        transport = await NatsTransport.connect(server.url, user="alice", password="right")
        await transport.close()


# ---------------------------------------------------------------- errors from a real server


async def test_max_payload_from_the_server(tmp_path: Path) -> None:
    config = tmp_path / "small.conf"
    config.write_text("max_payload: 1024\n")
    with NatsServer(config_file=config) as server:
        transport = await NatsTransport.connect(server.url)
        try:
            assert transport.max_payload == 1024
            sub = await transport.subscribe("big")
            with pytest.raises(MaxPayloadError) as info:
                await transport.publish("big", b"x" * 1025)
            assert (info.value.size, info.value.max_payload) == (1025, 1024)
            # the server counts the header block too: it would close the connection
            with pytest.raises(MaxPayloadError):
                await transport.publish("big", b"x" * 1000, headers={"Name": "v" * 40})
            with pytest.raises(MaxPayloadError):
                await transport.request("big", b"x" * 1025)
            await transport.publish("big", b"y" * 1024)  # exactly the limit is fine
            with anyio.fail_after(5):
                assert (await sub.next_msg()).data == b"y" * 1024
            assert transport.is_connected
        finally:
            await transport.close()


_PERMISSIONS = """
authorization {
  users = [
    { user: "limited", password: "pw",
      permissions: { publish: { deny: ["Secret.>"] }, subscribe: { deny: ["Secret.>"] } } }
  ]
}
"""


async def test_permission_violations(tmp_path: Path) -> None:
    config = tmp_path / "permissions.conf"
    config.write_text(_PERMISSIONS)
    seen: list[Exception] = []

    async def error_cb(exc: Exception) -> None:
        seen.append(exc)

    with NatsServer(config_file=config) as server:
        transport = await NatsTransport.connect(
            server.url, user="limited", password="pw", error_cb=error_cb
        )
        recorder = Recorder()
        transport.add_event_listener(recorder)
        try:
            with anyio.fail_after(5), pytest.raises(PermissionViolationError) as info:
                await transport.subscribe("Secret.Plans")
            assert (info.value.operation, info.value.subject) == ("subscription", "Secret.Plans")
            _assert_ours(info.value)

            await transport.publish("Secret.Plans", b"leak")
            event = await recorder.wait_for(
                lambda e: (
                    isinstance(e.error, PermissionViolationError) and e.error.operation == "publish"
                )
            )
            assert isinstance(event.error, PermissionViolationError)
            assert event.error.subject == "secret.plans"  # nats-py lower-cases the server line
            assert len(seen) == 2  # the user's error_cb got both reports

            # the connection stays usable
            sub = await transport.subscribe("public.news")
            await transport.publish("public.news", b"ok")
            with anyio.fail_after(5):
                assert (await sub.next_msg()).data == b"ok"
        finally:
            await transport.close()


async def test_server_gone_without_reconnect_closes_visibly() -> None:
    with NatsServer() as server:
        transport = await NatsTransport.connect(server.url, allow_reconnect=False)
        recorder = Recorder()
        transport.add_event_listener(recorder)
        sub = await transport.subscribe("gone")
        silent = await NatsTransport.connect(server.url)
        silent_sub = await silent.subscribe("gone.request")  # a responder that never answers
        pending = asyncio.ensure_future(transport.request("gone.request", timeout=30))
        with anyio.fail_after(5):
            await silent_sub.next_msg()  # the request is out and waiting for its reply
        await silent.close()
    await recorder.wait_for(lambda e: e.kind is TransportEventKind.CLOSED)
    assert recorder.kinds().count(TransportEventKind.CLOSED) == 1
    errors = [e.error for e in recorder.events if e.kind is TransportEventKind.ERROR]
    assert errors
    assert all(isinstance(error, TransportError) for error in errors)
    assert transport.is_closed
    assert not sub.is_active
    with anyio.fail_after(5):
        assert [msg async for msg in sub] == []
    with anyio.fail_after(5), pytest.raises(ConnectionClosedError):
        await pending
    await transport.close()


def wait_until_stopped(pid: int, limit: float = 5.0) -> None:
    """SIGSTOP is delivered asynchronously: a thread of the server running on another core
    may still answer for a moment.  Wait (bounded) until the kernel shows it stopped."""
    deadline = time.monotonic() + limit
    with open(f"/proc/{pid}/stat") as stat:
        while stat.read().rpartition(")")[2].split()[0] != "T":
            if time.monotonic() > deadline:
                raise AssertionError(f"nats-server {pid} did not stop within {limit} s")
            os.sched_yield()
            stat.seek(0)


async def test_close_fails_what_waits_for_an_unresponsive_server() -> None:
    """A flush (or subscribe, unsubscribe) waiting for the server's answer fails promptly
    with ConnectionClosedError when the connection is closed, not after its timeout."""
    with NatsServer() as server:
        transport = await NatsTransport.connect(server.url)
        assert server.pid is not None
        os.kill(server.pid, signal.SIGSTOP)  # the server stops answering
        try:
            wait_until_stopped(server.pid)
            waiting = [
                asyncio.ensure_future(transport.flush(timeout=30)),
                asyncio.ensure_future(transport.subscribe("frozen")),
                asyncio.ensure_future(transport.request("frozen", timeout=30)),
            ]
            await asyncio.sleep(0)  # one loop turn: each task sends, then waits for an answer
            await asyncio.sleep(0)  # ... and the turn's barriers went out as one PING
            assert len(transport.nc._pongs) == 1  # flush and subscribe share that PING
            assert len(transport.nc._resp_map) == 1  # the request waits for its reply
            with anyio.fail_after(5):
                await transport.close()
                for task in waiting:
                    with pytest.raises(ConnectionClosedError):
                        await task
        finally:
            os.kill(server.pid, signal.SIGCONT)


async def test_reconnect_events_and_user_callbacks() -> None:
    calls: list[str] = []

    async def disconnected_cb() -> None:
        calls.append("disconnected")

    async def reconnected_cb() -> None:
        calls.append("reconnected")

    with NatsServer() as server:
        transport = await NatsTransport.connect(
            server.url, reconnect_time_wait=0.05, max_reconnect_attempts=-1,
            disconnected_cb=disconnected_cb, reconnected_cb=reconnected_cb,
        )  # fmt: skip
        recorder = Recorder()
        transport.add_event_listener(recorder)
        try:
            sub = await transport.subscribe("after.restart")
            await anyio.to_thread.run_sync(server.restart)
            await recorder.wait_for(lambda e: e.kind is TransportEventKind.RECONNECTED)
            kinds = recorder.kinds()
            assert kinds.index(TransportEventKind.DISCONNECTED) < kinds.index(
                TransportEventKind.RECONNECTED
            )
            assert calls[:1] == ["disconnected"]
            assert "reconnected" in calls
            await transport.publish("after.restart", b"again")  # nats-py re-subscribed
            with anyio.fail_after(5):
                assert (await sub.next_msg()).data == b"again"
        finally:
            await transport.close()


# ---------------------------------------------------------------- the subscribe barrier


async def test_subscribe_is_a_barrier_for_other_connections(micro_nats_server: NatsServer) -> None:
    """A request from another connection right after subscribe() returns must find it.

    With nats-py's single flush() this failed in 0.3-1.1 % of trials (see bench/RESULTS.md).
    """
    trials = 1000
    responder = await NatsTransport.connect(micro_nats_server.url)
    requester = await NatsTransport.connect(micro_nats_server.url)
    no_responders = 0
    try:
        with anyio.fail_after(60):
            for trial in range(trials):
                subject = f"barrier.{trial}"
                sub = await responder.subscribe(subject)
                request = asyncio.ensure_future(requester.request(subject, timeout=10))
                receive = asyncio.ensure_future(sub.next_msg(timeout=10))
                await asyncio.wait({request, receive}, return_when=asyncio.FIRST_COMPLETED)
                if request.done() and isinstance(request.exception(), NoRespondersError):
                    no_responders += 1
                    receive.cancel()
                else:
                    msg = await receive
                    assert msg.reply is not None
                    await responder.publish(msg.reply, b"here")
                    assert (await request).data == b"here"
                await sub.unsubscribe()
    finally:
        await responder.close()
        await requester.close()
    assert no_responders == 0, f"{no_responders} of {trials} requests found no responder"


# ---------------------------------------------------------------- conversions at the edge


async def test_no_responders_status_message_is_clean(
    micro_nats_transport: NatsTransport,
) -> None:
    """nats-py mis-parses ``NATS/1.0 503`` followed by header lines; we repair it."""
    transport = micro_nats_transport
    inbox = transport.new_inbox()
    sub = await transport.subscribe(inbox)
    await transport.publish("nobody.home", reply=inbox)
    with anyio.fail_after(5):
        msg = await sub.next_msg()
    assert msg.is_no_responders
    assert msg.headers is not None
    assert all(type(name) is str for name in msg.headers)
    assert dict(msg.headers) == {"Status": "503", "Nats-Subject": "nobody.home"}


@pytest.mark.parametrize("value", ["two\r\nlines", " padded", "padded ", "tab\t"])
async def test_header_values_nats_would_alter_are_refused(
    micro_nats_transport: NatsTransport, value: str
) -> None:
    with pytest.raises(BadHeaderError, match="NATS would alter the value"):
        await micro_nats_transport.publish("h", b"", headers={"Name": value})


async def test_nats_internals_we_rely_on(micro_nats_transport: NatsTransport) -> None:
    """``transports.nats`` uses these nats-py internals; an upgrade that moves them fails here."""
    nc = micro_nats_transport.nc
    for name in ("_pending", "_pending_data_size", "_transport", "_resp_map", "_max_payload"):
        assert hasattr(nc, name), name
    for name in ("_remove_sub", "_close", "_error_cb", "_closed_cb", "_flush_queue", "_subs"):
        assert hasattr(nc, name), name
    for name in ("_disconnected_cb", "_reconnected_cb", "msg_class", "_pongs", "_reading_task"):
        assert hasattr(nc, name), name
    for name in ("_process_headers", "_build_message"):  # the guard against unreadable frames
        assert callable(getattr(nc, name, None)), name
    for name in ("parse", "buf"):
        assert hasattr(nc._ps, name), name
    import nats.errors
    import nats.protocol.command
    import nats.protocol.parser

    from transports.nats.incoming import HMSG_LINE, MSG_LINE

    # replaced by ours (transports.nats.incoming.keep_message_lines_on_one_line)
    assert (nats.protocol.parser.MSG_RE, nats.protocol.parser.HMSG_RE) == (MSG_LINE, HMSG_LINE)

    assert callable(nats.protocol.command.unsub_cmd)  # the coalescing barrier queues UNSUBs
    assert issubclass(nats.errors.ProtocolError, nats.errors.Error)
    sub = await micro_nats_transport.subscribe("internals")
    raw = sub._raw
    for name in ("_id", "_pending_queue", "_pending_size", "_received", "_max_msgs"):
        assert hasattr(raw, name), name
    for name in ("_subject", "_queue"):  # what nats-py re-subscribes with on reconnect
        assert hasattr(raw, name), name
    await micro_nats_transport.publish("internals", b"abc")
    with anyio.fail_after(5):
        msg = await sub.next_msg()
    assert type(msg) is Msg  # built by our msg_class factory (transports.subjects.make_msg,
    # the fast constructor pinned by test_msg_has_the_fields_the_fast_constructor_sets)
    assert msg == Msg("internals", b"abc")
    assert hash(msg) == hash(Msg("internals", b"abc"))
