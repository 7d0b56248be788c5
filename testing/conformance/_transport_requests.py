"""The transport conformance suite, part of ``TransportConformance``: request/reply:
replies, no-responders (contract 5), timeouts."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from transports.base import (
    NO_RESPONDERS_STATUS,
    STATUS_HEADER,
    Msg,
    NoRespondersError,
    RequestTimeoutError,
    Subscription,
    Transport,
)
from transports.subjects import is_valid_subject

from ._suite_base import WAIT, SuiteBase
from ._transport_support import connections
from .backend import ConformanceBackend

__all__ = ["RequestCases"]


class RequestCases(SuiteBase):
    """Request/reply: replies, no-responders (contract 5), timeouts."""

    # ----------------------------------------------------------------------- request / reply

    async def test_request_reply_with_headers_both_ways(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        responder, requester = await connections(conformance_backend, 2)
        sub = await responder.subscribe("rr.echo")
        seen: list[Msg] = []

        async def answer() -> None:
            msg = await sub.next_msg(timeout=WAIT)
            seen.append(msg)
            assert msg.reply is not None
            await responder.publish(msg.reply, b"re:" + msg.data, headers={"Answer": "yes"})

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(answer)
                reply = await requester.request(
                    "rr.echo", b"q", headers={"Question": "why"}, timeout=WAIT
                )
        assert (reply.data, dict(reply.headers or {})) == (b"re:q", {"Answer": "yes"})
        (request,) = seen
        assert (request.subject, request.data) == ("rr.echo", b"q")
        assert dict(request.headers or {}) == {"Question": "why"}
        assert request.reply is not None
        assert is_valid_subject(request.reply)

    async def test_a_reply_decodes_as_json(self, conformance_backend: ConformanceBackend) -> None:
        responder, requester = await connections(conformance_backend, 2)
        sub = await responder.subscribe("rr.json")

        async def answer(payloads: list[bytes]) -> None:
            for payload in payloads:
                msg = await sub.next_msg(timeout=WAIT)
                assert msg.reply is not None
                await responder.publish(msg.reply, payload)

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(answer, [b'{"status": "created", "n": [1, 2.5]}', b"not json"])
                reply = await requester.request("rr.json", timeout=WAIT)
                assert reply.json() == {"status": "created", "n": [1, 2.5]}
                bad = await requester.request("rr.json", timeout=WAIT)
        with pytest.raises(ValueError, match="Expecting value"):
            bad.json()

    async def test_request_returns_the_first_of_several_replies(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        a, b, requester = await connections(conformance_backend, 3)
        subs = [(a, await a.subscribe("rr.many")), (b, await b.subscribe("rr.many"))]

        async def answer(connection: Transport, sub: Subscription, name: bytes) -> None:
            msg = await sub.next_msg(timeout=WAIT)
            assert msg.reply is not None
            await connection.publish(msg.reply, name)

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                for number, (connection, sub) in enumerate(subs):
                    tg.start_soon(answer, connection, sub, str(number).encode())
                reply = await requester.request("rr.many", timeout=WAIT)
        assert reply.data in (b"0", b"1")
        assert reply.headers is None

    async def test_concurrent_requests_each_get_their_own_reply(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        responder, requester = await connections(conformance_backend, 2)
        sub = await responder.subscribe("rr.concurrent")
        replies: dict[int, bytes] = {}

        async def serve() -> None:
            async for msg in sub:
                assert msg.reply is not None
                await responder.publish(msg.reply, b"re:" + msg.data)

        async def ask(number: int) -> None:
            reply = await requester.request("rr.concurrent", str(number).encode(), timeout=WAIT)
            replies[number] = reply.data

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(serve)
                async with anyio.create_task_group() as askers:
                    for number in range(40):
                        askers.start_soon(ask, number)
                tg.cancel_scope.cancel()
        assert replies == {number: f"re:{number}".encode() for number in range(40)}

    async def test_no_responders_is_raised_promptly(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        requester = await conformance_backend.connect()
        timeout = 5.0
        started = anyio.current_time()
        with anyio.fail_after(WAIT), pytest.raises(NoRespondersError) as caught:
            await requester.request("nobody.home", b"x", timeout=timeout)
        assert anyio.current_time() - started < timeout / 5
        assert caught.value.subject == "nobody.home"

    async def test_publish_with_reply_to_nothing_sends_the_503_status_message(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        connection = await conformance_backend.connect()
        inbox = connection.new_inbox()
        sub = await connection.subscribe(inbox)
        await connection.publish("nobody.here", b"x", reply=inbox)
        msg = await sub.next_msg(timeout=WAIT)
        assert msg.is_no_responders
        assert msg.subject == inbox
        assert msg.data == b""
        assert msg.headers is not None
        assert msg.headers[STATUS_HEADER] == NO_RESPONDERS_STATUS

    async def test_request_times_out_with_request_timeout_error(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        silent, requester = await connections(conformance_backend, 2)
        await silent.subscribe("rr.silent")
        started = anyio.current_time()
        with anyio.fail_after(WAIT), pytest.raises(RequestTimeoutError) as caught:
            await requester.request("rr.silent", b"x", timeout=0.3)
        elapsed = anyio.current_time() - started
        assert isinstance(caught.value, TimeoutError)
        assert (caught.value.subject, caught.value.timeout) == ("rr.silent", 0.3)
        assert 0.25 <= elapsed < WAIT

    @pytest.mark.parametrize("bad_timeout", [0, 0.0, -1.0])
    async def test_request_timeout_must_be_positive(
        self, conformance_backend: ConformanceBackend, bad_timeout: float
    ) -> None:
        requester = await conformance_backend.connect()
        with pytest.raises(ValueError, match="timeout"):
            await requester.request("rr.any", b"x", timeout=bad_timeout)
