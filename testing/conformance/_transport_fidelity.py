"""The transport conformance suite, part of ``TransportConformance``: the differences the
lockstep machine (``testing.lockstep``) found between the in-memory broker and nats-server,
each kept as a named case so that it stays fixed on every transport.

Each case states what nats-server and nats-py do; a double that passes it cannot make a
user's test pass where production fails in that way.
"""

from __future__ import annotations

import anyio
import pytest

from transports.base import (
    NO_RESPONDERS_STATUS,
    STATUS_HEADER,
    BadSubjectError,
    ConnectionClosedError,
    NoRespondersError,
    SubjectTooLongError,
    SubscriptionClosedError,
    Transport,
)
from transports.subjects import MAX_CONTROL_LINE, REQUEST_REPLY_LENGTH

from ._suite_base import WAIT, SuiteBase
from ._transport_support import connections, settle, take_pending
from .backend import ConformanceBackend

__all__ = ["FidelityCases"]


async def _still_usable(connection: Transport) -> None:
    """A message round trip on ``connection`` alone works."""
    sub = await connection.subscribe("fidelity.alive")
    await connection.publish("fidelity.alive", b"yes")
    assert (await sub.next_msg(timeout=WAIT)).data == b"yes"
    await sub.unsubscribe()


class FidelityCases(SuiteBase):
    """Regressions found by lockstep model-based checking against nats-server."""

    # ------------------------------------------------------------------ order of checks

    async def test_request_checks_its_arguments_before_the_connection_state(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        """One order of checks on every transport: the message (subject, headers, payload
        type, size), then the timeout, then whether the connection is open."""
        (connection,) = await connections(conformance_backend, 1)
        await connection.close()
        with pytest.raises(TypeError):
            await connection.request("fidelity.a", "text")  # type: ignore[arg-type]
        with pytest.raises(BadSubjectError):
            await connection.request("fidelity..a", b"")
        with pytest.raises(ValueError, match="timeout"):
            await connection.request("fidelity.a", b"", timeout=0)
        with pytest.raises(ConnectionClosedError):
            await connection.request("fidelity.a", b"")

    # ------------------------------------------------------------------ protocol line

    async def test_a_publish_line_over_the_server_limit_is_refused_before_sending(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        """nats-server closes a connection that sends a protocol line longer than 4,096
        bytes (``PUB <subject> <reply> <size>``; nats-py sends the reply's separator even
        without one): refused with ``SubjectTooLongError``, and the connection stays usable."""
        (connection,) = await connections(conformance_backend, 1)
        fits = "x" * (MAX_CONTROL_LINE - len("  0"))  # subject, two separators, size "0"
        too_long = fits + "x"
        await connection.publish(fits, b"")
        with pytest.raises(SubjectTooLongError) as caught:
            await connection.publish(too_long, b"")
        assert (caught.value.length, caught.value.limit) == (MAX_CONTROL_LINE + 1, 4096)
        assert caught.value.subject == too_long
        with pytest.raises(SubjectTooLongError):
            await connection.publish(fits[:-9], b"", reply="r" * 10)
        with pytest.raises(SubjectTooLongError):
            await connection.request(fits[:-20], b"")  # its inbox makes the line too long
        await connection.flush()
        assert connection.is_connected
        assert not connection.is_closed
        await _still_usable(connection)

    async def test_a_request_line_counts_the_reply_subject_nats_py_sends(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        """A request's line carries nats-py's reply subject, ``_INBOX.<nuid>.<nuid>`` plus 4
        hex digits (:data:`REQUEST_REPLY_LENGTH`): the longest subject that fits is sent and
        answered (no responders), one byte more is refused.  Counting a shorter reply let
        four subject lengths through that nats-server closed the connection for."""
        (connection,) = await connections(conformance_backend, 1)
        longest = "z" * (MAX_CONTROL_LINE - REQUEST_REPLY_LENGTH - len("  0"))
        with pytest.raises(NoRespondersError):
            await connection.request(longest, b"", timeout=WAIT)
        with pytest.raises(SubjectTooLongError) as caught:
            await connection.request(longest + "z", b"", timeout=WAIT)
        assert caught.value.length == MAX_CONTROL_LINE + 1
        with pytest.raises(NoRespondersError):  # the same with headers: HPUB adds their size
            await connection.request(longest[:-4], b"", headers={"X": "1"}, timeout=WAIT)
        with pytest.raises(SubjectTooLongError):
            await connection.request(longest[:-3], b"", headers={"X": "1"}, timeout=WAIT)
        assert connection.is_connected
        await _still_usable(connection)

    async def test_a_subscribe_line_over_the_server_limit_is_refused_before_sending(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        """``SUB <subject> <queue> <id>`` past 4,096 bytes: refused (the id counted as ten
        digits), and the connection stays usable."""
        (connection,) = await connections(conformance_backend, 1)
        with pytest.raises(SubjectTooLongError):
            await connection.subscribe("y" * MAX_CONTROL_LINE)
        with pytest.raises(SubjectTooLongError):
            await connection.subscribe("y" * 2000, queue="q" * 2100)
        await connection.flush()
        assert connection.is_connected
        await _still_usable(connection)

    # ------------------------------------------------------------------ what the server makes

    async def test_the_no_responders_status_names_the_subject_published_to(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        (connection,) = await connections(conformance_backend, 1)
        inbox = connection.new_inbox()
        replies = await connection.subscribe(inbox)
        await connection.publish("fidelity.nobody", b"", reply=inbox)
        msg = await replies.next_msg(timeout=WAIT)
        assert dict(msg.headers or {}) == {
            STATUS_HEADER: NO_RESPONDERS_STATUS,
            "Nats-Subject": "fidelity.nobody",
        }

    async def test_the_no_responders_status_goes_to_the_first_match_in_server_order(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        """Of the publisher's own subscriptions matching the reply subject, the status goes
        to the first in nats-server's match order (``>`` before the literal, the literal
        before ``*``), and to no other."""
        (connection,) = await connections(conformance_backend, 1)
        star = await connection.subscribe("fidelity.r.*")
        literal = await connection.subscribe("fidelity.r.x")
        tail = await connection.subscribe("fidelity.r.>")
        await connection.publish("fidelity.nobody", b"", reply="fidelity.r.x")
        await settle(connection, connection)
        assert (star.pending_msgs, literal.pending_msgs, tail.pending_msgs) == (0, 0, 1)
        (status,) = await take_pending(tail)
        assert status.is_no_responders

    async def test_a_reply_with_status_503_and_a_body_is_no_responders(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        """nats-py raises no-responders for any reply whose ``Status`` header is 503."""
        responder, requester = await connections(conformance_backend, 2)
        sub = await responder.subscribe("fidelity.odd")

        async def answer() -> None:
            msg = await sub.next_msg(timeout=WAIT)
            assert msg.reply is not None
            await responder.publish(msg.reply, b"body", headers={STATUS_HEADER: "503"})

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(answer)
                with pytest.raises(NoRespondersError):
                    await requester.request("fidelity.odd", b"", timeout=WAIT)

    # ------------------------------------------------------------------ ending

    async def test_unsubscribe_with_a_limit_hands_out_at_most_that_many_of_a_backlog(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        """Three messages buffered, ``unsubscribe(limit=1)``: one is delivered, the rest are
        discarded (nats-py delivers at most ``limit`` in total)."""
        (connection,) = await connections(conformance_backend, 1)
        sub = await connection.subscribe("fidelity.backlog")
        for n in range(3):
            await connection.publish("fidelity.backlog", b"%d" % n)
        await settle(connection, connection)
        assert sub.pending_msgs == 3
        await sub.unsubscribe(1)
        assert (await sub.next_msg(timeout=WAIT)).data == b"0"
        with pytest.raises(SubscriptionClosedError):
            await sub.next_msg(timeout=WAIT)
        assert (sub.delivered, sub.pending_msgs, sub.is_active) == (1, 0, False)

    async def test_a_message_dropped_as_slow_consumer_counts_toward_the_limit(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        """``unsubscribe(limit=1)``, then the one message is dropped (pending bytes limit):
        the server counted it, so the subscription is over, not waiting forever."""
        (connection,) = await connections(conformance_backend, 1)
        sub = await connection.subscribe("fidelity.dropped", pending_bytes_limit=5)
        await sub.unsubscribe(1)
        await connection.publish("fidelity.dropped", b"too large")
        await settle(connection, connection)
        assert (sub.dropped, sub.pending_msgs, sub.is_active) == (1, 0, False)
        with pytest.raises(SubscriptionClosedError):
            await sub.next_msg(timeout=WAIT)

    async def test_close_discards_what_subscriptions_buffered(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        (connection,) = await connections(conformance_backend, 1)
        sub = await connection.subscribe("fidelity.buffered")
        await connection.publish("fidelity.buffered", b"1")
        await settle(connection, connection)
        assert sub.pending_msgs == 1
        await connection.close()
        assert (sub.pending_msgs, sub.is_active) == (0, False)
        with pytest.raises(SubscriptionClosedError):
            await sub.next_msg(timeout=WAIT)

    async def test_subscribe_while_the_connection_drains_is_refused(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        """A draining connection takes no new interest (nats-py refuses it too); publishing
        and flushing still work until the drain ends."""
        (connection,) = await connections(conformance_backend, 1)
        sub = await connection.subscribe("fidelity.draining")
        await connection.publish("fidelity.draining", b"1")
        await settle(connection, connection)
        outcomes: list[str] = []

        async def meanwhile() -> None:
            try:
                await connection.subscribe("fidelity.late")
                outcomes.append("subscribed")
            except ConnectionClosedError as exc:
                outcomes.append(str(exc))
            await connection.publish("fidelity.elsewhere", b"")
            await connection.flush()
            outcomes.append("published")
            assert [msg.data async for msg in sub] == [b"1"]  # the drain hands it out

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(connection.drain)
                await anyio.wait_all_tasks_blocked()  # the drain began: it waits for `sub`
                tasks.start_soon(meanwhile)
        assert outcomes == ["the connection is draining", "published"]
        assert connection.is_closed

    async def test_once_close_returns_nothing_is_routed_to_the_connection(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        """A server notices a closed socket a moment later; close() does not return before
        the broker stopped routing to the connection, so a request right after gets the
        no-responders status, not a timeout (and a queue group loses the member at once)."""
        leaving, staying = await connections(conformance_backend, 2)
        await leaving.subscribe("fidelity.gone")
        await leaving.subscribe("fidelity.gone", queue="q")
        await leaving.close()
        with anyio.fail_after(WAIT):
            with pytest.raises(NoRespondersError):
                await staying.request("fidelity.gone", b"", timeout=WAIT)
