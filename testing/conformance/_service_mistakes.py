"""Service conformance: handler mistakes surface at once, the same on every transport.

* a plain ``def`` handler runs in a worker thread (the App's rule for plain ``def``
  listeners) and an awaitable it returns is awaited;
* a handler that returns without responding to a request: a warning naming the endpoint
  and the service, one endpoint error, and the caller gets nothing (it times out) --
  unless it declared ``request.answered_elsewhere()`` (it forwarded the request);
* a second response raises ``AlreadyRespondedError`` inside the handler: exactly one reply
  reaches the caller, and the attempt counts as the request's one error;
* an endpoint name already used in the service is refused, before and after start.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable

import anyio
import pytest

from micro.errors import ValidationError
from micro.request import UNANSWERED_ERROR, AlreadyRespondedError, Request
from transports.base import RequestTimeoutError

from ._service_support import (
    ServiceEnv,
    ServiceSuiteBase,
    echo,
    endpoint_entries,
)
from ._suite_base import QUIET, WAIT, assert_no_responders

__all__ = ["HandlerMistakeCases"]


class HandlerMistakeCases(ServiceSuiteBase):
    """Handler mistakes: plain ``def`` handlers, no response, two responses, twin names."""

    async def test_plain_def_handler_runs_in_a_worker_thread(self, service_env: ServiceEnv) -> None:
        threads: list[int] = []

        def returns_the_response(request: Request) -> Awaitable[None]:
            threads.append(threading.get_ident())
            return request.respond(b"sync:" + request.data())

        service = await service_env.service()
        await service.add_endpoint("plain", returns_the_response)
        await service.add_endpoint("lam", lambda request: request.respond(b"lambda"))
        client = await service_env.client()
        assert (await client.request("plain", b"x", timeout=WAIT)).data == b"sync:x"
        assert (await client.request("lam", timeout=WAIT)).data == b"lambda"
        assert threads
        assert threads[0] != threading.get_ident()
        stats = {entry["name"]: entry for entry in await endpoint_entries(client, "STATS", service)}
        assert (stats["plain"]["num_requests"], stats["plain"]["num_errors"]) == (1, 0)
        assert service.endpoints[0].handler is returns_the_response  # as given

    async def test_a_handler_that_returns_without_responding_is_reported(
        self, service_env: ServiceEnv, caplog: pytest.LogCaptureFixture
    ) -> None:
        returned: list[anyio.Event] = [anyio.Event(), anyio.Event()]

        async def forgets(request: Request) -> None:
            returned.pop(0).set()  # the endpoint accounts for it before its next await

        service = await service_env.service("forgetful")
        await service.add_endpoint("lost", forgets)
        client = await service_env.client()
        with caplog.at_level(logging.WARNING, logger="micro.service"):
            wait_first = returned[0]
            with pytest.raises(RequestTimeoutError):
                await client.request("lost", b"", timeout=QUIET)
            with anyio.fail_after(WAIT):
                await wait_first.wait()
            # A message published without a reply subject needs no response: no error.
            wait_second = returned[0]
            await client.publish("lost", b"")
            with anyio.fail_after(WAIT):
                await wait_second.wait()
        (entry,) = await endpoint_entries(client, "STATS", service)
        assert (entry["num_requests"], entry["num_errors"]) == (2, 1)
        assert entry["last_error"] == UNANSWERED_ERROR
        records = [r for r in caplog.records if "without responding" in r.getMessage()]
        assert len(records) == 1
        assert records[0].levelno == logging.WARNING
        assert "'lost'" in records[0].getMessage()
        assert "'forgetful'" in records[0].getMessage()

    async def test_a_forwarding_handler_says_the_answer_comes_from_elsewhere(
        self, service_env: ServiceEnv, caplog: pytest.LogCaptureFixture
    ) -> None:
        service = await service_env.service("front")

        async def forward(request: Request) -> None:
            reply = request.reply()
            assert reply is not None
            await service.transport.publish("back", request.data(), reply=reply)
            request.answered_elsewhere()
            with pytest.raises(AlreadyRespondedError):
                await request.respond(b"too late")

        await service.add_endpoint("front", forward)
        await service.add_endpoint("back", echo)
        client = await service_env.client()
        with caplog.at_level(logging.WARNING, logger="micro.service"):
            assert (await client.request("front", b"via back", timeout=WAIT)).data == b"via back"
        entries = {e["name"]: e for e in await endpoint_entries(client, "STATS", service)}
        assert (entries["front"]["num_requests"], entries["front"]["num_errors"]) == (1, 0)
        assert not [r for r in caplog.records if "without responding" in r.getMessage()]

    async def test_a_second_response_raises_and_is_not_sent(self, service_env: ServiceEnv) -> None:
        raised: list[BaseException] = []
        finished = anyio.Event()

        async def twice(request: Request) -> None:
            try:
                await request.respond(b"first")
                await request.respond(b"second")
            except AlreadyRespondedError as exc:
                raised.append(exc)
                raise
            finally:
                finished.set()

        service = await service_env.service()
        await service.add_endpoint("twice", twice)
        client = await service_env.client()
        inbox = await client.subscribe(client.new_inbox())
        await client.publish("twice", b"", reply=inbox.subject)
        first = await inbox.next_msg(timeout=WAIT)
        assert first.data == b"first"
        assert not first.headers
        with anyio.fail_after(WAIT):
            await finished.wait()
        with pytest.raises(TimeoutError):
            await inbox.next_msg(timeout=QUIET)  # no second reply, no error reply
        await inbox.unsubscribe()
        assert len(raised) == 1
        assert "already responded" in str(raised[0])
        (entry,) = await endpoint_entries(client, "STATS", service)
        assert (entry["num_requests"], entry["num_errors"]) == (1, 1)
        assert entry["last_error"].startswith("500:AlreadyRespondedError")

    async def test_an_endpoint_name_is_unique_within_a_service(
        self, service_env: ServiceEnv
    ) -> None:
        service = await service_env.service(start=False)
        await service.add_endpoint("ep", echo)
        with pytest.raises(ValidationError, match="'ep' is already used in service 'svc'"):
            await service.add_group("g").add_endpoint("ep", echo)  # another subject: still
        await service.start()
        with pytest.raises(ValidationError, match="endpoint names are unique"):
            await service.add_endpoint("ep", echo, subject="other")
        client = await service_env.client()
        entries = await endpoint_entries(client, "INFO", service)
        assert [(e["name"], e["subject"]) for e in entries] == [("ep", "ep")]
        assert (await client.request("ep", b"still", timeout=WAIT)).data == b"still"
        await assert_no_responders(client, "other")  # the refused endpoint never subscribed
