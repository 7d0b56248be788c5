"""Call a handler without a broker: :func:`make_request` builds a recording :class:`StubRequest`.

::

    stub = make_request("orders.create", b'{"id": 1}')
    await create_order(stub)
    assert stub.responded and stub.error_code is None
    assert stub.json_response() == {"ok": True}

The stub behaves like a service request (same helpers, same argument checks, the same
"no reply subject" error when built with ``reply=None``) and records the *last* response:
:meth:`StubRequest.response_data`, :meth:`StubRequest.response_headers` (``nats_contrib.micro``
API: they raise
:class:`NoResponseError` until something was sent), :attr:`~StubRequest.error_code`,
:attr:`~StubRequest.error_description`, :attr:`~StubRequest.success_code` and
:attr:`~StubRequest.responses` (every response, in order).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from micro.errors import ERROR_CODE_HEADER
from micro.request import (
    SUCCESS_CODE_HEADER,
    AlreadyRespondedError,
    NoReplySubjectError,
    Request,
)
from transports.subjects import validate_header_name, validate_header_value, validate_subject

__all__ = ["NoResponseError", "RequestStub", "StubRequest", "StubResponse", "make_request"]


class NoResponseError(AssertionError):
    """The handler has not responded, but the test asked for the response."""


class StubResponse:
    """One recorded response: ``data`` and ``headers`` (``{}`` when none were sent)."""

    __slots__ = ("data", "headers")

    def __init__(self, data: bytes, headers: dict[str, str]) -> None:
        self.data = data
        self.headers = headers

    def __repr__(self) -> str:
        return f"StubResponse(data={self.data!r}, headers={self.headers!r})"


def _check_headers(headers: Mapping[str, str] | None, what: str) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise TypeError(f"{what} must be a mapping of str to str, got {type(headers).__name__}")
    for name, value in headers.items():
        validate_header_name(name)
        if not isinstance(value, str):
            raise TypeError(f"{what} value for {name!r} must be a str, got {type(value).__name__}")
        validate_header_value(name, value)
    return dict(headers)


class StubRequest(Request):
    """A :class:`~micro.request.Request` that records what the handler sent."""

    def __init__(
        self,
        subject: str,
        data: bytes = b"",
        headers: Mapping[str, str] | None = None,
        reply: str | None = "_INBOX.stub",
    ) -> None:
        validate_subject(subject)
        if reply is not None:
            validate_subject(reply)
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")
        self._subject = subject
        self._data = bytes(data)
        self._headers = _check_headers(headers, "headers")
        self._reply = reply
        self.responses: list[StubResponse] = []
        self.error_code: int | None = None
        self.error_description: str | None = None

    def subject(self) -> str:
        return self._subject

    def headers(self) -> dict[str, str]:
        return self._headers

    def data(self) -> bytes:
        return self._data

    def reply(self) -> str | None:
        return self._reply

    async def respond(self, data: bytes = b"", headers: Mapping[str, str] | None = None) -> None:
        """Record ``data`` and ``headers``; raises like a service request would.

        ``NoReplySubjectError`` without a reply subject, ``AlreadyRespondedError`` when a
        response was already recorded (one response per request, as in a service),
        ``TypeError`` for data that is not
        bytes or a header value that is not a str, ``BadHeaderError`` for a bad name or a
        value NATS cannot carry (CR/LF, surrounding whitespace).
        """
        if self._reply is None:
            raise NoReplySubjectError(self._subject)
        if self.responses:
            raise AlreadyRespondedError(self._subject)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"response data must be bytes, got {type(data).__name__}")
        self.responses.append(StubResponse(bytes(data), _check_headers(headers, "headers")))

    def _error_reply_sent(self, code: str, description: str) -> None:
        self.error_code = int(code)
        self.error_description = description

    # ------------------------------------------------------------------ what the test reads

    @property
    def responded(self) -> bool:
        """True once at least one response was sent."""
        return bool(self.responses)

    @property
    def last_response(self) -> StubResponse:
        """The last response; raises :class:`NoResponseError` when there is none."""
        if not self.responses:
            raise NoResponseError(
                f"the handler did not respond to the request on {self._subject!r}"
            )
        return self.responses[-1]

    def response_data(self) -> bytes:
        """Payload of the last response (raises :class:`NoResponseError` if none).

        As in the ``nats_contrib.micro`` API."""
        return self.last_response.data

    def response_headers(self) -> dict[str, str]:
        """Headers of the last response, ``{}`` when it had none (``nats_contrib.micro`` API)."""
        return self.last_response.headers

    @property
    def success_code(self) -> int | None:
        """The ``Nats-Service-Success-Code`` of the last response, if it carried one."""
        if not self.responses:
            return None
        text = self.responses[-1].headers.get(SUCCESS_CODE_HEADER)
        return int(text) if text else None

    @property
    def is_error(self) -> bool:
        """True when the last response is a service error reply (non-empty code header)."""
        return bool(self.responses and self.responses[-1].headers.get(ERROR_CODE_HEADER))

    def json_response(self) -> Any:
        """The last response payload decoded as JSON (``ValueError`` if it is not JSON).

        Synchronous, like :meth:`response_data`."""
        return json.loads(self.last_response.data)


RequestStub = StubRequest
"""``nats_contrib.micro``'s name for :class:`StubRequest` (``nats_contrib.micro.testing``)."""


def make_request(
    subject: str,
    data: bytes | None = b"",
    headers: Mapping[str, str] | None = None,
    *,
    reply: str | None = "_INBOX.stub",
) -> StubRequest:
    """A request for calling a handler directly in a test (no broker involved).

    ``reply=None`` makes a request that was only published: responding to it raises
    ``NoReplySubjectError``, as in a service.  Raises ``BadSubjectError`` for an invalid
    subject or reply, ``TypeError`` for non-bytes data or non-str header values.
    """
    return StubRequest(subject, b"" if data is None else data, headers, reply)
