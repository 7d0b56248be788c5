"""Service conformance, groups F (request/reply), G (handler exceptions), H (statistics)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import anyio
import pytest

from micro.errors import ServiceError
from micro.request import Request
from micro.service import Service
from micro.timestamps import parse_timestamp
from transports.base import RequestTimeoutError, Transport

from ._service_support import (
    VERBS,
    ServiceEnv,
    ServiceSuiteBase,
    control,
    echo,
    endpoint_entries,
    subject_forms,
)
from ._suite_base import QUIET, WAIT

__all__ = ["ExceptionCases", "RequestReplyCases", "StatisticsCases"]

ERROR = "Nats-Service-Error"
CODE = "Nats-Service-Error-Code"


async def _serve(
    service_env: ServiceEnv, handler: Any, **options: Any
) -> tuple[Service, Transport]:
    service = await service_env.service(**options)
    await service.add_endpoint("ep", handler)
    return service, await service_env.client()


async def _endpoint_stats(client: Transport, service: Service) -> dict[str, Any]:
    """The STATS entry of the service's only endpoint."""
    (entry,) = await endpoint_entries(client, "STATS", service)
    return entry


async def _no_reply(client: Transport, subject: str) -> None:
    """Bounded wait: the request must get no reply within the quiet window."""
    with pytest.raises(RequestTimeoutError):
        await client.request(subject, b"", timeout=QUIET)


class RequestReplyCases(ServiceSuiteBase):
    """F. What a requester receives, byte for byte and header for header."""

    async def test_f45_handler_sees_payload_and_headers(self, service_env: ServiceEnv) -> None:
        seen: list[tuple[bytes, dict[str, str], str | None]] = []

        async def handler(request: Request) -> None:
            seen.append((request.data(), request.headers(), request.reply()))
            await request.respond(b"ok")

        _, client = await _serve(service_env, handler)
        await client.request("ep", b"req", headers={"key": "value"}, timeout=WAIT)
        assert len(seen) == 1
        data, headers, reply = seen[0]
        assert data == b"req"
        assert headers.get("key") == "value"
        assert reply

    @pytest.mark.parametrize(
        ("answer", "data", "headers"),
        [
            pytest.param(lambda r: r.respond(b"OK"), b"OK", None, id="f46-plain"),
            pytest.param(
                lambda r: r.respond(b"OK", headers={"key": "value"}),
                b"OK",
                {"key": "value"},
                id="f47-with-headers",
            ),
            pytest.param(lambda r: r.respond(b""), b"", None, id="f48-empty"),
            pytest.param(
                lambda r: r.respond_json({"a": "abc", "b": 5}),
                b'{"a":"abc","b":5}',
                None,
                id="f49-json",
            ),
            pytest.param(
                lambda r: r.respond_error(500, "oops", b"error!"),
                b"error!",
                {ERROR: "oops", CODE: "500"},
                id="f51-error",
            ),
        ],
    )
    async def test_f46_to_f51_the_requester_gets_exactly_what_the_handler_sent(
        self,
        service_env: ServiceEnv,
        answer: Callable[[Request], Awaitable[None]],
        data: bytes,
        headers: dict[str, str] | None,
    ) -> None:
        async def handler(request: Request) -> None:
            await answer(request)

        _, client = await _serve(service_env, handler)
        reply = await client.request("ep", b"req", headers={"Asked": "yes"}, timeout=WAIT)
        assert reply.data == data
        assert (None if reply.headers is None else dict(reply.headers)) == headers

    async def test_f50_json_helper_with_unserializable_value_sends_nothing(
        self, service_env: ServiceEnv
    ) -> None:
        errors: list[Exception] = []

        async def handler(request: Request) -> None:
            try:
                await request.respond_json({"value": object()})
            except (TypeError, ValueError) as exc:
                errors.append(exc)

        _, client = await _serve(service_env, handler)
        await _no_reply(client, "ep")
        assert len(errors) == 1
        assert isinstance(errors[0], TypeError)

    async def test_f52_error_helper_keeps_custom_headers_and_may_omit_data(
        self, service_env: ServiceEnv
    ) -> None:
        async def handler(request: Request) -> None:
            data = request.data() or None
            await request.respond_error(
                500, "oops", data, headers={"key": "value", ERROR: "ignored", CODE: "1"}
            )

        _, client = await _serve(service_env, handler)
        reply = await client.request("ep", b"payload", timeout=WAIT)
        assert reply.data == b"payload"
        assert dict(reply.headers or {}) == {ERROR: "oops", CODE: "500", "key": "value"}
        reply = await client.request("ep", timeout=WAIT)
        assert reply.data == b""
        assert dict(reply.headers or {}) == {ERROR: "oops", CODE: "500", "key": "value"}

    async def test_f53_error_helper_needs_code_and_description(
        self, service_env: ServiceEnv
    ) -> None:
        errors: list[Exception] = []

        async def handler(request: Request) -> None:
            for code, description in (("", "oops"), (500, "")):
                try:
                    await request.respond_error(code, description)
                except ValueError as exc:
                    errors.append(exc)

        _, client = await _serve(service_env, handler)
        await _no_reply(client, "ep")
        assert len(errors) == 2

    async def test_f54_error_replies_are_recognised_by_the_code_header(
        self, service_env: ServiceEnv
    ) -> None:
        async def handler(request: Request) -> None:
            if request.data() == b"fail":
                await request.respond_error(411, "data required")
            else:
                await request.respond(b"fine", headers={ERROR: "not an error without a code"})

        _, client = await _serve(service_env, handler)
        failed = await client.request("ep", b"fail", timeout=WAIT)
        error = ServiceError.from_headers(failed.headers, subject="ep", data=failed.data)
        assert error is not None
        assert (error.code, error.description) == (411, "data required")
        fine = await client.request("ep", b"ok", timeout=WAIT)
        assert ServiceError.from_headers(fine.headers, subject="ep", data=fine.data) is None

    async def test_f55_cancelled_work_is_answered_with_400(self, service_env: ServiceEnv) -> None:
        async def handler(request: Request) -> None:
            with anyio.move_on_after(0.01) as scope:
                await anyio.Event().wait()  # work that never finishes in time
            if scope.cancelled_caught:
                await request.respond_error(400, "context canceled")

        _, client = await _serve(service_env, handler)
        reply = await client.request("ep", timeout=WAIT)
        assert (reply.headers or {}).get(CODE) == "400"
        assert (reply.headers or {}).get(ERROR) == "context canceled"


class ExceptionCases(ServiceSuiteBase):
    """G. A handler that raises gets an error reply; the endpoint keeps serving."""

    @staticmethod
    async def _boom(request: Request) -> None:
        if request.data() == b"ok":
            await request.respond(b"fine")
            return
        raise ValueError("boom")

    async def test_g56_plain_exception_gives_500_without_its_text(
        self, service_env: ServiceEnv
    ) -> None:
        service, client = await _serve(service_env, self._boom)
        reply = await client.request("ep", timeout=WAIT)
        assert dict(reply.headers or {}) == {ERROR: "Internal Server Error", CODE: "500"}
        assert b"boom" not in reply.data
        assert (await _endpoint_stats(client, service))["last_error"] == "500:ValueError: boom"
        assert not service.stopped()

    async def test_g56_exception_text_is_sent_only_when_opted_in(
        self, service_env: ServiceEnv
    ) -> None:
        _, client = await _serve(service_env, self._boom, expose_exception_text=True)
        reply = await client.request("ep", timeout=WAIT)
        assert dict(reply.headers or {}) == {ERROR: "boom", CODE: "500"}

    async def test_g57_typed_service_error_gives_its_code_and_description(
        self, service_env: ServiceEnv
    ) -> None:
        async def handler(request: Request) -> None:
            raise ServiceError(1210, "something")

        service, client = await _serve(service_env, handler)
        reply = await client.request("ep", timeout=WAIT)
        assert dict(reply.headers or {}) == {ERROR: "something", CODE: "1210"}
        assert (await _endpoint_stats(client, service))["last_error"] == "1210:something"

    async def test_g58_exception_is_counted(self, service_env: ServiceEnv) -> None:
        service, client = await _serve(service_env, self._boom)
        await client.request("ep", timeout=WAIT)
        stats = await _endpoint_stats(client, service)
        assert stats["num_requests"] == 1
        assert stats["num_errors"] == 1
        assert stats["last_error"]
        assert stats["processing_time"] > 0

    async def test_g59_next_request_is_answered_normally(self, service_env: ServiceEnv) -> None:
        service, client = await _serve(service_env, self._boom)
        first = await client.request("ep", timeout=WAIT)
        assert (first.headers or {}).get(CODE) == "500"
        second = await client.request("ep", b"ok", timeout=WAIT)
        assert second.data == b"fine"
        assert second.headers is None
        stats = await _endpoint_stats(client, service)
        assert (stats["num_requests"], stats["num_errors"]) == (2, 1)


class StatisticsCases(ServiceSuiteBase):
    """H. Counters, averages, the stats callback, reset, and what is not counted."""

    async def test_h60_fresh_endpoint_has_zero_counters(self, service_env: ServiceEnv) -> None:
        service, client = await _serve(service_env, echo)
        stats = await _endpoint_stats(client, service)
        assert stats == {
            "name": "ep",
            "subject": "ep",
            "queue_group": "q",
            "num_requests": 0,
            "num_errors": 0,
            "last_error": "",
            "processing_time": 0,
            "average_processing_time": 0,
            "data": None,
        }

    async def test_h61_request_without_reply_counts_as_one_error(
        self, service_env: ServiceEnv
    ) -> None:
        async def handler(request: Request) -> None:
            await request.respond(b"ok")

        service, client = await _serve(service_env, handler)
        # published first: the endpoint handles one message at a time, in order, so it is
        # fully accounted for once the tenth reply below has arrived
        await client.publish("ep", b"no reply")
        for _ in range(10):
            assert (await client.request("ep", timeout=WAIT)).data == b"ok"
        stats = await _endpoint_stats(client, service)
        assert stats["num_requests"] == 11
        assert stats["num_errors"] == 1
        assert "reply" in stats["last_error"]
        assert stats["processing_time"] > 0
        assert stats["average_processing_time"] > 0
        assert stats["average_processing_time"] == stats["processing_time"] // 11

    async def test_h62_error_reply_through_the_helper_counts(self, service_env: ServiceEnv) -> None:
        async def handler(request: Request) -> None:
            await request.respond_error(500, "Unexpected error!")

        service, client = await _serve(service_env, handler)
        await client.request("ep", timeout=WAIT)
        stats = await _endpoint_stats(client, service)
        assert stats["num_errors"] == 1
        assert stats["last_error"] == "500:Unexpected error!"

    async def test_h63_stats_callback_fills_data(self, service_env: ServiceEnv) -> None:
        with_cb = await service_env.service(stats_handler=lambda endpoint: {"key": "val"})
        await with_cb.add_endpoint("a", echo)
        await with_cb.add_group("g").add_endpoint("b", echo)
        without = await service_env.service("other")
        await without.add_endpoint("c", echo)
        client = await service_env.client()
        stats = await control(client, f"$SRV.STATS.svc.{with_cb.id}")
        assert [e["data"] for e in stats["endpoints"]] == [{"key": "val"}, {"key": "val"}]
        plain = await control(client, f"$SRV.STATS.other.{without.id}")
        assert plain["endpoints"][0].get("data") is None

    async def test_h64_stats_callback_that_raises(self, service_env: ServiceEnv) -> None:
        def broken(endpoint: Any) -> object:
            raise RuntimeError("stats are broken")

        service, client = await _serve(service_env, echo, stats_handler=broken)
        stats = await _endpoint_stats(client, service)
        assert stats.get("data") is None  # absent or null (ADR-32: ``data?``)
        assert stats["num_errors"] == 1
        assert stats["last_error"] == "500:RuntimeError: stats are broken"
        assert (await client.request("ep", b"still", timeout=WAIT)).data == b"still"

    async def test_h65_reset_zeroes_counters_and_refreshes_started(
        self, service_env: ServiceEnv
    ) -> None:
        async def handler(request: Request) -> None:
            if request.data() == b"fail":
                raise ServiceError(400, "bad")
            await request.respond(b"ok")

        service, client = await _serve(service_env, handler, queue_group="keep-me")
        await client.request("ep", timeout=WAIT)
        await client.request("ep", b"fail", timeout=WAIT)
        before = await control(client, f"$SRV.STATS.svc.{service.id}")
        assert before["endpoints"][0]["num_errors"] == 1
        service.reset()
        after = await control(client, f"$SRV.STATS.svc.{service.id}")
        endpoint = after["endpoints"][0]
        assert (
            endpoint["num_requests"],
            endpoint["num_errors"],
            endpoint["processing_time"],
            endpoint["average_processing_time"],
            endpoint["last_error"],
        ) == (0, 0, 0, 0, "")
        assert endpoint["queue_group"] == "keep-me"
        assert _started(after) >= _started(before)

    async def test_h66_control_requests_are_not_counted(self, service_env: ServiceEnv) -> None:
        service, client = await _serve(service_env, echo)
        for verb in VERBS:
            for subject in subject_forms(verb, service):
                await control(client, subject)
        stats = await _endpoint_stats(client, service)
        assert (stats["num_requests"], stats["num_errors"], stats["processing_time"]) == (0, 0, 0)


def _started(document: dict[str, Any]) -> datetime:
    return parse_timestamp(document["started"])
