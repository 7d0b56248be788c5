"""Odd input from the network never crashes a service.

A service listening on ``fuzz.>`` (and its control subjects) receives, example after example:

* on every transport leg, through a client's transport: odd but valid subjects, headers and
  payloads, with or without a reply subject -- and invalid subjects, header names or
  oversized payloads, which the *publisher* must refuse with a clear error;
* on real NATS, raw protocol frames from a bare socket: header blocks that are not
  ``NATS/1.0`` headers, status lines that are not UTF-8, subjects and replies of arbitrary
  bytes (including ones nats-py's parser cannot read), wrong lengths, payloads above
  ``max_payload`` -- and the service's connection must not even be dropped.

After each example the service still answers PING and a normal request, and it has not
stopped; the only errors it reported are control requests that had no reply subject.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio
import anyio.to_thread
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from reliability_support import EventLog, FaultDriver, note

import testing.strategies as mst
from micro import Client, NoReplySubjectError, Request, Service, add_service
from testing.nats_server import NatsServer
from transports.base import (
    BadHeaderError,
    BadSubjectError,
    MaxPayloadError,
    Transport,
    TransportError,
    TransportEventKind,
)
from transports.nats import NatsTransport
from transports.runtime import current_async_library

pytestmark = pytest.mark.anyio


@dataclass
class Target:
    service: Service
    client: Transport
    events: EventLog
    reported: list[BaseException] = field(default_factory=list)
    examples: int = 0


async def _echo(request: Request) -> None:
    if request.reply() is not None:
        await request.respond(request.data())


async def _target(service_conn: Transport, client_conn: Transport) -> Target:
    reported: list[BaseException] = []
    service = add_service(
        service_conn, "fuzz", "1.0.0", error_handler=lambda _s, error: reported.append(error)
    )
    await service.add_endpoint("any", _echo, subject="fuzz.>")
    await service.start()
    return Target(service, client_conn, EventLog(service_conn), reported)


async def _still_serving(target: Target) -> None:
    with anyio.fail_after(5):
        reply = await target.client.request("fuzz.check", b"still there?", timeout=2)
        assert reply.data == b"still there?"
        [ping] = await Client(target.client).ping("fuzz", max_count=1)
    assert ping.id == target.service.id
    assert not target.service.stopped()
    # the only errors reported are control requests published without a reply subject
    # (no reply subject: counted and reported, never fatal)
    assert all(isinstance(error, NoReplySubjectError) for error in target.reported)


# ---------------------------------------------------------------------- through a transport

_CONTROL = st.sampled_from(["$SRV.PING", "$SRV.INFO.fuzz", "$SRV.STATS.fuzz.x", "$SRV.PING.y"])
_SUBJECTS = st.one_of(
    mst.subjects().map(lambda subject: ("ok", "fuzz." + subject)),
    _CONTROL.map(lambda subject: ("ok", subject)),
    mst.invalid_subjects().map(lambda subject: ("bad", subject)),
)
_HEADERS = st.one_of(
    st.none().map(lambda none: ("ok", none)),
    mst.headers().map(lambda headers: ("ok", headers)),
    st.dictionaries(mst.invalid_header_names(), mst.header_values(), min_size=1, max_size=2).map(
        lambda headers: ("bad", headers)
    ),
)
_PAYLOADS = st.one_of(
    mst.payloads(max_size=4096).map(lambda data: ("ok", data)),
    st.just(("oversized", b"")),
)


@pytest.fixture
async def api_target(fault_driver: FaultDriver) -> AsyncIterator[Target]:
    target = await _target(
        await fault_driver.connect("fuzz-service"), await fault_driver.connect("fuzz-client")
    )
    yield target
    target.events.close()
    await target.service.stop()
    note(
        f"fuzz-api[{fault_driver.label}/{current_async_library()}]",
        f"{target.examples} examples, service still serving",
    )


@settings(max_examples=60)
@given(subject=_SUBJECTS, headers=_HEADERS, payload=_PAYLOADS, with_reply=st.booleans())
async def test_odd_messages_through_a_transport(
    api_target: Target,
    subject: tuple[str, str],
    headers: tuple[str, dict[str, str] | None],
    payload: tuple[str, bytes],
    with_reply: bool,
) -> None:
    client = api_target.client
    data = b"x" * (client.max_payload + 1) if payload[0] == "oversized" else payload[1]
    reply = client.new_inbox() if with_reply else None
    if "ok" == subject[0] == headers[0] == payload[0]:
        await client.publish(subject[1], data, reply=reply, headers=headers[1])
    else:
        with pytest.raises((BadSubjectError, BadHeaderError, MaxPayloadError)):
            await client.publish(subject[1], data, reply=reply, headers=headers[1])
    api_target.examples += 1
    await _still_serving(api_target)


# ---------------------------------------------------------------------- raw frames (NATS)

_CONNECT = b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"protocol":1}\r\n'


@st.composite
def raw_frames(draw: st.DrawFn) -> bytes:
    """One PUB/HPUB frame a misbehaving client might send, often malformed."""
    subject = draw(
        st.one_of(
            mst.subjects().map(lambda subject: ("fuzz." + subject).encode()),
            st.binary(min_size=1, max_size=12).map(lambda tail: b"fuzz." + tail),
            st.sampled_from([b"$SRV.PING", b"$SRV.INFO.fuzz", b"$SRV.STATS", b"fuzz.check"]),
        )
    )
    reply = draw(st.one_of(st.sampled_from([b"", b"_INBOX.fuzz.r"]), st.binary(max_size=8)))
    payload = draw(st.binary(max_size=256))
    kind = draw(st.sampled_from(["pub", "hpub", "hpub", "oversized"]))
    target = subject + (b" " + reply if reply else b"")
    if kind == "oversized":  # the server refuses it on the control line
        return b"PUB " + target + b" %d\r\n" % (2 * 1024 * 1024)
    if kind == "pub":
        return b"PUB " + target + b" %d\r\n" % len(payload) + payload + b"\r\n"
    header = draw(
        st.one_of(
            st.binary(max_size=48),
            st.builds(
                lambda status, lines: b"NATS/1.0" + status + b"\r\n" + b"".join(lines) + b"\r\n",
                st.binary(max_size=8),
                st.lists(st.binary(max_size=24).map(lambda line: line + b"\r\n"), max_size=3),
            ),
        )
    )
    skew = draw(st.sampled_from([0, 0, 0, -1, 1]))
    head = b"HPUB " + target + b" %d %d\r\n" % (len(header), len(header) + len(payload) + skew)
    return head + header + payload + b"\r\n"


def _send_raw(port: int, frame: bytes) -> bytes:
    """Send ``frame`` on a fresh connection, then PING; return what the server said (up to
    its PONG, an -ERR, or its closing the connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.recv(65536)  # INFO
        sock.sendall(_CONNECT + frame + b"PING\r\n")
        answer = b""
        while b"PONG" not in answer and b"-ERR" not in answer:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            answer += chunk
        return answer


@pytest.fixture
async def raw_target(nats_server: NatsServer) -> AsyncIterator[tuple[Target, NatsServer]]:
    service_conn = await NatsTransport.connect(nats_server.url, name="fuzz-service")
    client_conn = await NatsTransport.connect(nats_server.url, name="fuzz-client")
    target = await _target(service_conn, client_conn)
    yield target, nats_server
    target.events.close()
    await target.service.stop()
    unreadable = [e for e in target.events.errors() if type(e) is TransportError]
    note(
        "fuzz-raw[nats]",
        f"{target.examples} raw frames, {len(unreadable)} unreadable messages reported "
        "(not fatal), service still serving",
    )
    await service_conn.close()
    await client_conn.close()


@settings(max_examples=120)
@given(frame=raw_frames())
@example(frame=b"HPUB fuzz.a _INBOX.fuzz.r 2 4\r\n\r\nhi\r\n")  # header block "\r\n"
@example(frame=b"HPUB fuzz.b _INBOX.fuzz.r 18 20\r\nNATS/1.0 \xff\xfe\x00\r\n\r\n\r\nhi\r\n")
@example(frame=b"PUB fuzz.\xff\xfe _INBOX.fuzz.r 2\r\nhi\r\n")  # subject not UTF-8
@example(frame=b"PUB fuzz.c _INBOX.\xc3 2\r\nhi\r\n")  # reply not UTF-8
@example(frame=b"PUB fuzz.d\re _INBOX.fuzz.r 2\r\nhi\r\n")  # CR in the subject: nats-py
@example(frame=b"HPUB fuzz.e\x0bf 12 14\r\nNATS/1.0\r\n\r\nhi\r\n")  # cannot parse the MSG line
@example(frame=b"PUB fuzz.big 2097152\r\n")  # above max_payload
@example(frame=b"HPUB fuzz.0 1 1\r\n2\r\n")  # nats-py read HMSG's last number from the next line
@example(frame=b"HPUB fuzz.0 1 1\r\n\x10\r\n")  # ... or failed on a 1-byte header block
@example(frame=b"PUB fuzz.\x00 1\r\n\x00\r\n")  # NUL in the subject
async def test_raw_frames_from_the_network(
    raw_target: tuple[Target, NatsServer], frame: bytes
) -> None:
    target, server = raw_target
    await anyio.to_thread.run_sync(_send_raw, server.port, frame)
    target.examples += 1
    await _still_serving(target)
    # one bad message must not cost the service its connection (and what was in flight)
    assert TransportEventKind.DISCONNECTED not in target.events.kinds()
