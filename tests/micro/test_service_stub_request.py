"""``testing.stub_request.make_request``: call handlers with no broker, inspect what they did."""

from __future__ import annotations

import pytest

from micro.errors import ServiceError
from micro.request import AlreadyRespondedError, NoReplySubjectError, Request
from testing.stub_request import NoResponseError, RequestStub, StubRequest, make_request
from transports.base import BadHeaderError, BadSubjectError

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def greet(request: Request) -> None:
    name = request.json()["name"]
    await request.respond_json({"greeting": f"hello {name}"}, headers={"lang": "en"})


async def test_stub_records_the_response_of_a_handler() -> None:
    stub = make_request("greet", b'{"name": "ada"}', {"trace": "1"})
    assert isinstance(stub, Request)
    assert not stub.responded
    await greet(stub)
    assert stub.responded
    assert stub.json_response() == {"greeting": "hello ada"}
    assert stub.response_data() == b'{"greeting":"hello ada"}'
    assert stub.response_headers() == {"lang": "en"}
    assert stub.error_code is None
    assert stub.error_description is None
    assert not stub.is_error


async def test_stub_exposes_the_request_like_a_service_would() -> None:
    stub = make_request("a.b", b"payload", {"key": "value"}, reply="_INBOX.x")
    assert stub.subject() == "a.b"
    assert stub.data() == b"payload"
    assert stub.headers() == {"key": "value"}
    assert stub.reply() == "_INBOX.x"
    assert make_request("a").headers() == {}
    assert make_request("a", None).data() == b""


async def test_seed_api_raises_until_something_was_sent() -> None:
    stub = make_request("quiet")
    with pytest.raises(NoResponseError, match="quiet"):
        stub.response_data()
    with pytest.raises(NoResponseError):
        stub.response_headers()
    with pytest.raises(NoResponseError):
        stub.json_response()
    assert stub.success_code is None


async def test_error_reply_is_recorded_with_code_and_description() -> None:
    stub = make_request("x")
    await stub.respond_error(404, "not found", b"details", headers={"extra": "1"})
    assert stub.is_error
    assert stub.error_code == 404
    assert stub.error_description == "not found"
    assert stub.response_data() == b"details"
    assert stub.response_headers() == {
        "extra": "1",
        "Nats-Service-Error": "not found",
        "Nats-Service-Error-Code": "404",
    }
    error = ServiceError.from_headers(stub.response_headers())
    assert error is not None
    assert (error.code, error.description) == (404, "not found")


async def test_error_headers_win_over_user_headers() -> None:
    stub = make_request("x")
    await stub.respond_error(
        500, "oops", headers={"Nats-Service-Error": "mine", "Nats-Service-Error-Code": "1"}
    )
    assert stub.response_headers() == {
        "Nats-Service-Error": "oops",
        "Nats-Service-Error-Code": "500",
    }


@pytest.mark.parametrize(
    ("code", "description", "problem"),
    [("", "oops", ValueError), (500, "", ValueError), ("abc", "oops", ValueError)],
)
async def test_error_reply_needs_a_code_and_a_description(
    code: int | str, description: str, problem: type[Exception]
) -> None:
    stub = make_request("x")
    with pytest.raises(problem):
        await stub.respond_error(code, description)
    assert not stub.responded


async def test_success_code_is_recorded() -> None:
    stub = make_request("x")
    await stub.respond_success(201, b"created")
    assert stub.success_code == 201
    assert stub.response_headers() == {"Nats-Service-Success-Code": "201"}
    assert not stub.is_error


async def test_json_helper_failure_sends_nothing() -> None:
    stub = make_request("x")
    with pytest.raises(TypeError):
        await stub.respond_json({"bad": object()})
    with pytest.raises(ValueError, match="Out of range float"):
        await stub.respond_json(float("nan"))
    assert not stub.responded


async def test_request_without_reply_cannot_be_answered() -> None:
    stub = make_request("fire.and.forget", reply=None)
    assert stub.reply() is None
    with pytest.raises(NoReplySubjectError, match=r"fire\.and\.forget"):
        await stub.respond(b"x")
    with pytest.raises(NoReplySubjectError):
        await stub.respond_error(500, "oops")
    assert not stub.responded


async def test_a_second_response_is_refused_as_in_a_service() -> None:
    stub = make_request("x")
    await stub.respond(b"one", headers={"n": "1"})
    with pytest.raises(AlreadyRespondedError, match="'x' was already responded to"):
        await stub.respond(b"two")
    assert [(r.data, r.headers) for r in stub.responses] == [(b"one", {"n": "1"})]
    assert stub.last_response.data == b"one"


async def test_bad_arguments_fail_loudly() -> None:
    with pytest.raises(BadSubjectError):
        make_request("bad subject")
    with pytest.raises(BadSubjectError):
        make_request("ok", reply="bad reply")
    with pytest.raises(TypeError, match="data must be bytes"):
        make_request("ok", "text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="str"):
        make_request("ok", headers={"k": 1})  # type: ignore[dict-item]
    stub = make_request("ok")
    with pytest.raises(TypeError, match="bytes"):
        await stub.respond("text")  # type: ignore[arg-type]
    with pytest.raises(BadHeaderError):
        await stub.respond(b"", headers={"bad name": "v"})
    assert not stub.responded


async def test_stub_is_a_subclassable_request() -> None:
    assert RequestStub is StubRequest  # nats_contrib.micro's name

    class Traced(StubRequest):
        pass

    stub = Traced("x")
    await stub.respond(b"ok")
    assert stub.response_data() == b"ok"


async def test_header_values_nats_cannot_carry_are_rejected_before_sending() -> None:
    stub = make_request("x")
    with pytest.raises(BadHeaderError):
        await stub.respond_error(500, "two\nlines")
    with pytest.raises(BadHeaderError):
        await stub.respond(b"", headers={"k": " padded "})
    with pytest.raises(BadHeaderError):
        make_request("x", headers={"k": "a\r\nb"})
    assert not stub.responded
