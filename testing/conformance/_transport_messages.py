"""The transport conformance suite, part of ``TransportConformance``: headers and payloads
round-trip exactly; ``max_payload`` (contract 6)."""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import pytest

from transports.base import (
    BadHeaderError,
    MaxPayloadError,
    Msg,
)

from ._suite_base import WAIT, SuiteBase
from ._transport_support import (
    INVALID_HEADER_NAMES,
    ODD_HEADERS,
    SENTINEL,
    assert_rejected,
    collect_until_sentinel,
    connections,
)
from .backend import ConformanceBackend

__all__ = ["MessageCases"]


class MessageCases(SuiteBase):
    """Headers and payloads round-trip exactly; ``max_payload`` (contract 6)."""

    # --------------------------------------------------------- contract 6: headers, payloads

    async def test_headers_round_trip_exactly(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await connections(conformance_backend, 2)
        sub = await subscriber.subscribe("hdr.x")
        await publisher.publish("hdr.x", b"x", headers=ODD_HEADERS)
        msg = await sub.next_msg(timeout=WAIT)
        assert msg.headers is not None
        assert dict(msg.headers) == ODD_HEADERS

    async def test_no_headers_and_empty_headers_arrive_as_none(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await connections(conformance_backend, 2)
        sub = await subscriber.subscribe("hdr.none")
        await publisher.publish("hdr.none", b"1")
        await publisher.publish("hdr.none", b"2", headers={})
        first, second = [await sub.next_msg(timeout=WAIT) for _ in range(2)]
        assert (first.data, first.headers) == (b"1", None)
        assert (second.data, second.headers) == (b"2", None)

    @pytest.mark.parametrize("name", INVALID_HEADER_NAMES)
    async def test_a_bad_header_name_is_rejected_before_sending(
        self, conformance_backend: ConformanceBackend, name: str
    ) -> None:
        subscriber, publisher = await connections(conformance_backend, 2)
        sub = await subscriber.subscribe("hdr.bad")
        for attempt in (
            lambda: publisher.publish("hdr.bad", b"x", headers={"Good": "v", name: "v"}),
            lambda: publisher.request("hdr.bad", b"x", headers={name: "v"}, timeout=WAIT),
        ):
            await assert_rejected(attempt, BadHeaderError, name=name)
        await publisher.publish("hdr.bad", SENTINEL)
        assert await collect_until_sentinel(sub) == []

    async def test_a_header_value_that_is_not_a_str_is_rejected(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        publisher = await conformance_backend.connect()
        with pytest.raises(BadHeaderError):
            await publisher.publish("hdr.bad", b"x", headers=cast(Any, {"Number": 1}))

    async def test_empty_and_binary_payloads_round_trip(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await connections(conformance_backend, 2)
        sub = await subscriber.subscribe("payload.x")
        payloads = [b"", bytes(range(256)), b"\r\n\x00PUB x 1\r\n", b"\xff" * 4096]
        for payload in payloads:
            await publisher.publish("payload.x", payload)
        got = [await sub.next_msg(timeout=WAIT) for _ in payloads]
        assert [msg.data for msg in got] == payloads
        assert all(type(msg.data) is bytes for msg in got)

    async def test_max_payload_is_accepted_and_one_more_byte_is_not(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await connections(conformance_backend, 2)
        limit = publisher.max_payload
        sub = await subscriber.subscribe("payload.max")
        await publisher.publish("payload.max", b"m" * limit)
        assert (await sub.next_msg(timeout=WAIT)).data == b"m" * limit
        for attempt in (
            lambda: publisher.publish("payload.max", b"m" * (limit + 1)),
            lambda: publisher.request("payload.max", b"m" * (limit + 1), timeout=WAIT),
        ):
            await assert_rejected(attempt, MaxPayloadError, size=limit + 1, max_payload=limit)
        await publisher.publish("payload.max", SENTINEL)
        assert await collect_until_sentinel(sub) == []

    async def test_delivered_messages_are_frozen_msgs(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        subscriber, publisher = await connections(conformance_backend, 2)
        sub = await subscriber.subscribe("msg.*")
        await publisher.publish("msg.plain", b"1")
        await publisher.publish("msg.reply", b"2", reply="msg.answer.here")
        plain, with_reply = [await sub.next_msg(timeout=WAIT) for _ in range(2)]
        assert type(plain) is Msg
        assert type(with_reply) is Msg
        assert (plain.subject, plain.reply) == ("msg.plain", None)
        assert (with_reply.subject, with_reply.reply) == ("msg.reply", "msg.answer.here")
        with pytest.raises(dataclasses.FrozenInstanceError):
            cast(Any, plain).subject = "other"
        assert not plain.is_no_responders
        assert not with_reply.is_no_responders
