"""The request a handler receives, and the helpers it answers with (ADR-32, Request Handling).

:class:`Request` is ``nats_contrib.micro``'s interface (an abstract class, so a test can hand
a handler any implementation; see ``testing.stub_request.make_request``).  Subclasses implement
four methods -- :meth:`~Request.subject`, :meth:`~Request.headers`, :meth:`~Request.data`
and :meth:`~Request.respond` -- and inherit the helpers :meth:`~Request.respond_error`,
:meth:`~Request.respond_success`, :meth:`~Request.respond_json` and :meth:`~Request.json`.

:class:`TransportRequest` is the implementation services use: a received
:class:`~transports.base.Msg` plus the connection to answer on.  It records what was sent so
the endpoint can keep its statistics (an error reply or a failed send counts as an error).
"""

from __future__ import annotations

import abc
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio.to_thread

from micro.errors import ERROR_CODE_HEADER, ERROR_HEADER
from transports.base import Msg, Transport
from transports.subjects import validate_header_value

__all__ = [
    "ERROR_CODE_HEADER",
    "ERROR_HEADER",
    "SUCCESS_CODE_HEADER",
    "AlreadyRespondedError",
    "Handler",
    "NoReplySubjectError",
    "Request",
    "TransportRequest",
    "UnansweredRequestError",
    "as_async_handler",
    "call_in_thread",
    "is_async_callable",
]

SUCCESS_CODE_HEADER = "Nats-Service-Success-Code"
"""Non-standard success header of ``nats_contrib.micro`` (see :meth:`Request.respond_success`)."""

Handler = Callable[["Request"], Awaitable[None]]
"""An endpoint handler: ``async def handler(request: Request) -> None``.

A plain ``def`` handler is accepted too and runs as the App runs plain ``def`` listeners:
in a worker thread, with an awaitable it returns awaited in the event loop (so
``lambda request: request.respond(b"ok")`` works).  It cannot ``await request.respond()``
itself: for requests, prefer ``async def``.
"""


class NoReplySubjectError(RuntimeError):
    """A response was attempted for a request that carries no reply subject.

    Counted as an error, as nats.go and nats.py do.

    Nothing is published.  In a service, the attempt also counts as one endpoint error.
    """

    def __init__(self, subject: str) -> None:
        super().__init__(
            f"cannot respond to the request on {subject!r}: it has no reply subject "
            "(it was published, not requested)"
        )
        self.subject = subject


def is_async_callable(func: object) -> bool:
    """True for a coroutine function (also through ``functools.partial`` and an instance
    whose ``__call__`` is one): what is awaited in the event loop."""
    if inspect.iscoroutinefunction(func):
        return True
    call = getattr(func, "__call__", None)  # noqa: B004 - we want the method itself
    return call is not None and inspect.iscoroutinefunction(call)


def _boxed(func: Callable[..., object], args: tuple[Any, ...]) -> tuple[object]:
    # Boxed: trio refuses a worker-thread function whose result is a coroutine.
    return (func(*args),)


async def call_in_thread(func: Callable[..., object], *args: Any) -> Any:
    """Run the plain callable ``func(*args)`` in a worker thread and return its result; an
    awaitable it returns is awaited in the event loop and its result returned instead.

    The rule of every plain ``def`` the library calls for the user (handlers, the App's
    listeners and tasks), the same on asyncio and trio.  Whatever ``func`` raises (or the
    awaitable it returned) propagates.
    """
    (result,) = await anyio.to_thread.run_sync(_boxed, func, args)
    if inspect.isawaitable(result):
        return await result
    return result


def as_async_handler(handler: Callable[[Request], object]) -> Handler:
    """``handler`` as a coroutine function, by the rule of :data:`Handler`.

    A coroutine function is returned as it is.  Any other callable (a plain ``def``, a
    lambda) is run by :func:`call_in_thread` for each request -- the App's rule for plain
    ``def`` listeners -- and whatever it returns is ignored (a request it did not respond
    to is reported as :class:`UnansweredRequestError` by the endpoint).
    """
    if is_async_callable(handler):
        return handler  # type: ignore[return-value]

    async def run_in_thread(request: Request) -> None:
        await call_in_thread(handler, request)

    run_in_thread.__qualname__ = getattr(handler, "__qualname__", run_in_thread.__qualname__)
    return run_in_thread


class AlreadyRespondedError(RuntimeError):
    """A second response was attempted for one request: nothing more is published.

    A request gets exactly one reply (ADR-32); a handler that means to send several
    messages publishes them itself, explicitly, to ``request.reply()`` on its transport.
    In a service, the attempt escapes the handler like any other exception: it counts as
    one endpoint error and is logged (the caller already has the first reply).
    """

    def __init__(self, subject: str) -> None:
        super().__init__(
            f"the request on {subject!r} was already responded to: a request gets one "
            "response (publish further messages to request.reply() explicitly)"
        )
        self.subject = subject


class UnansweredRequestError(RuntimeError):
    """A handler returned without responding to a request that has a reply subject.

    The caller waits for a reply that will not come (until its own timeout).  The service
    logs a warning naming the endpoint and the service, counts the request as an endpoint
    error (``last_error`` = :data:`UNANSWERED_ERROR`) and reports this error to a
    transport that collects handler failures (``transports.extensions.HandlerErrorSink``):
    a strict ``MemoryBroker`` then fails the test.  Nothing is sent to the caller.  A
    handler that leaves the response to another service on purpose says so with
    :meth:`Request.answered_elsewhere`.
    """

    def __init__(
        self, endpoint: str, service: str, subject: str, *, plain_def: bool = False
    ) -> None:
        """``plain_def``: the handler is not a coroutine function (the message says what
        such a handler can do)."""
        hint = (
            "a plain def handler runs in a worker thread and cannot await request.respond(): "
            "return request.respond(...) from it, or make it an async def"
            if plain_def
            else "every request with a reply subject needs request.respond(...) or "
            "request.respond_error(...), or request.answered_elsewhere() when forwarded"
        )
        super().__init__(
            f"the handler of endpoint {endpoint!r} of service {service!r} returned without "
            f"responding to the request on {subject!r}: the caller waits until its timeout "
            f"({hint})"
        )
        self.endpoint = endpoint
        self.service = service
        self.subject = subject


UNANSWERED_ERROR = "500:the handler returned without responding"
"""``last_error`` of an endpoint whose handler returned without responding to a request."""


def _error_code_text(code: int | str) -> str:
    if isinstance(code, bool):
        raise TypeError(f"error code must be an int or a decimal str, got bool {code!r}")
    if isinstance(code, int):
        return str(code)
    if isinstance(code, str):
        if not code:
            raise ValueError("error code is required: got ''")
        try:
            int(code)
        except ValueError:
            raise ValueError(f"invalid error code {code!r}: must be a decimal integer") from None
        return code
    raise TypeError(f"error code must be an int or a decimal str, got {type(code).__name__}")


def _check_description(description: str) -> str:
    if not isinstance(description, str):
        raise TypeError(f"error description must be a str, got {type(description).__name__}")
    if not description:
        raise ValueError("error description is required: got ''")
    return validate_header_value(ERROR_HEADER, description)


class Request(abc.ABC):
    """A request received by an endpoint (``nats_contrib.micro``'s interface).

    Implementations provide :meth:`subject`, :meth:`headers`, :meth:`data` and
    :meth:`respond`; :meth:`reply` returns ``None`` unless overridden.  The helpers build
    on :meth:`respond` and validate their arguments *before* anything is sent.
    """

    __slots__ = ()

    @abc.abstractmethod
    def subject(self) -> str:
        """The concrete subject the request was published to (never a wildcard)."""

    @abc.abstractmethod
    def headers(self) -> dict[str, str]:
        """The request headers (an empty dict when there are none)."""

    @abc.abstractmethod
    def data(self) -> bytes:
        """The request payload."""

    @abc.abstractmethod
    async def respond(self, data: bytes = b"", headers: Mapping[str, str] | None = None) -> None:
        """Send ``data`` with exactly ``headers`` (none if ``None``) to the reply subject.

        Raises :class:`NoReplySubjectError` when the request has no reply subject,
        :class:`AlreadyRespondedError` when a response was already sent (a failed send
        does not count: it may be retried), and the transport's errors (e.g.
        ``MaxPayloadError``) when sending fails.
        """

    def reply(self) -> str | None:
        """The reply subject, or ``None`` when the request was only published."""
        return None

    def answered_elsewhere(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Declare that this handler leaves the response to someone else on purpose: the
        request was forwarded (published on with its ``reply()`` subject), or a reply was
        published to ``reply()`` directly.  The endpoint then neither warns nor counts an
        error for a request returned without a response, sends no error reply if the
        handler raises afterwards, and a later ``respond`` raises
        :class:`AlreadyRespondedError`.  The base implementation does nothing."""

    def json(self) -> Any:
        """The payload decoded as JSON; raises ``ValueError`` when it is not valid JSON."""
        return json.loads(self.data())

    async def respond_json(self, value: Any, headers: Mapping[str, str] | None = None) -> None:
        """Serialize ``value`` as compact JSON and respond with it.

        A value that cannot be serialized (or NaN/Infinity) raises ``TypeError`` /
        ``ValueError`` here and nothing is sent.
        """
        payload = json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
        await self.respond(payload, headers=headers)

    async def respond_error(
        self,
        code: int | str,
        description: str,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Send an error reply (ADR-32, Error Handling).

        The reply carries ``Nats-Service-Error: <description>`` and
        ``Nats-Service-Error-Code: <code>`` plus the user ``headers``; the two error
        headers win over user headers of the same name.  ``code`` is an ``int`` (or a
        decimal ``str``); an empty code or description raises ``ValueError``, a
        description with CR/LF or surrounding whitespace ``BadHeaderError`` (a
        ``ValueError``: a header cannot carry it), and nothing is sent.  In a service
        the error reply counts as an endpoint error with ``last_error`` =
        ``"<code>:<description>"``.
        """
        code_text = _error_code_text(code)
        description = _check_description(description)
        merged = dict(headers) if headers else {}
        merged[ERROR_HEADER] = description
        merged[ERROR_CODE_HEADER] = code_text
        await self.respond(data or b"", headers=merged)
        self._error_reply_sent(code_text, description)

    async def respond_success(
        self,
        code: int,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Send a success reply with a ``Nats-Service-Success-Code`` header (as nats_contrib).

        The header is not part of the protocol; plain :meth:`respond` adds no header.
        """
        merged = dict(headers) if headers else {}
        merged[SUCCESS_CODE_HEADER] = _error_code_text(code)
        await self.respond(data or b"", headers=merged)

    def _error_reply_sent(self, code: str, description: str) -> None:  # noqa: B027
        """Hook called after an error reply went out (statistics, test recording)."""


class TransportRequest(Request):
    """A request received from a :class:`~transports.base.Transport` subscription.

    Besides answering, it records for the endpoint's statistics whether a reply was sent
    (:attr:`responded`) and its latest :attr:`problem`: the ``"<code>:<description>"`` of
    an error reply sent, or the exception of a failed send.  (Kept to four slots: it is
    built for every message.)
    """

    __slots__ = ("_msg", "_transport", "problem", "responded")

    def __init__(self, transport: Transport, msg: Msg) -> None:
        self._transport = transport
        self._msg = msg
        self.responded = False
        self.problem: str | BaseException | None = None

    @property
    def msg(self) -> Msg:
        """The received message."""
        return self._msg

    @property
    def error(self) -> str | None:
        """``"<code>:<description>"`` when the latest problem is an error reply sent."""
        problem = self.problem
        return problem if isinstance(problem, str) else None

    @property
    def send_error(self) -> BaseException | None:
        """The exception when the latest problem is a failed send (or no reply subject)."""
        problem = self.problem
        return problem if isinstance(problem, BaseException) else None

    def subject(self) -> str:
        return self._msg.subject

    def headers(self) -> dict[str, str]:
        raw = self._msg.headers
        return dict(raw) if raw else {}

    def data(self) -> bytes:
        return self._msg.data

    def reply(self) -> str | None:
        return self._msg.reply or None

    def answered_elsewhere(self) -> None:
        self.responded = True  # the response is someone else's: nothing more from here

    async def respond(self, data: bytes = b"", headers: Mapping[str, str] | None = None) -> None:
        reply = self._msg.reply
        if not reply:
            error = NoReplySubjectError(self._msg.subject)
            self.problem = error
            raise error
        if self.responded:
            raise AlreadyRespondedError(self._msg.subject)
        if data.__class__ is not bytes:
            data = _as_bytes(data)
        try:
            if headers:
                await self._transport.publish(reply, data, headers=headers)
            else:
                await self._transport.publish(reply, data)
        except Exception as exc:
            self.problem = exc
            raise
        self.responded = True

    def _error_reply_sent(self, code: str, description: str) -> None:
        self.problem = f"{code}:{description}"


def _as_bytes(data: object) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"response data must be bytes, got {type(data).__name__}")
