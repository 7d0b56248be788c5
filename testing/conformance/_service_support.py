"""Helpers of the service conformance suite: discovery, schema checks, recorders, a tap.

* :func:`gather` -- scatter/gather (PROTOCOL §11.2): publish once with a fresh inbox, collect
  replies until ``max_count``, an inactivity window after the last reply, the overall
  deadline, or a no-responders status.
* :func:`control` -- one control request, decoded and validated against the JSON schemas
  shipped next to this module (``schemas/``, copied from nats-io/jsm.go).
* :class:`Recorder` -- a notification callback that tests can wait on.
* :class:`TappedTransport` -- a delegating Transport through which a test can inject
  connection events (to exercise error-subject matching deterministically).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from importlib import resources
from types import TracebackType
from typing import Any

import anyio
import jsonschema

from micro.timestamps import parse_timestamp
from transports.base import (
    EventListener,
    Headers,
    Msg,
    PermissionViolationError,
    Subscription,
    Transport,
    TransportEvent,
)

__all__ = [
    "QUIET",
    "STALL",
    "WAIT",
    "Recorder",
    "TappedTransport",
    "control",
    "gather",
    "validate_document",
]

WAIT = 10.0
"""Upper bound (seconds) of any wait for something that must happen."""

STALL = 0.25
"""Inactivity window (seconds) that ends a discovery after the last reply (CONFORMANCE)."""

QUIET = 0.1
"""Bounded wait (seconds) for something that must NOT happen."""

_TYPES = {
    "PING": "io.nats.micro.v1.ping_response",
    "INFO": "io.nats.micro.v1.info_response",
    "STATS": "io.nats.micro.v1.stats_response",
}
_SCHEMAS: dict[str, Any] = {}


def _schema(verb: str) -> Any:
    if verb not in _SCHEMAS:
        text = (
            resources.files("testing.conformance")
            .joinpath("schemas")
            .joinpath(f"{verb.lower()}_response.json")
            .read_text(encoding="utf-8")
        )
        _SCHEMAS[verb] = json.loads(text)
    return _SCHEMAS[verb]


def validate_document(verb: str, document: Mapping[str, Any]) -> None:
    """Assert ``document`` is a valid ``verb`` response (jsm.go schema + our writer rules)."""
    jsonschema.validate(
        dict(document),
        _schema(verb),
        format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER,
    )
    assert document["type"] == _TYPES[verb]
    assert isinstance(document["metadata"], dict), "service metadata is written as an object"
    if verb == "STATS":
        started = document["started"]
        assert started.endswith("Z"), f"started {started!r} must be UTC with 'Z'"
        parse_timestamp(started)
        for endpoint in document["endpoints"]:
            assert endpoint["average_processing_time"] == (
                endpoint["processing_time"] // endpoint["num_requests"]
                if endpoint["num_requests"]
                else 0
            )


async def control(client: Transport, subject: str) -> dict[str, Any]:
    """Send one control request to ``subject``; return the validated JSON document."""
    verb = next(verb for verb in _TYPES if f".{verb}" in f".{subject}")
    reply = await client.request(subject, timeout=WAIT)
    document: dict[str, Any] = json.loads(reply.data)
    validate_document(verb, document)
    return document


async def gather(
    client: Transport,
    subject: str,
    *,
    max_count: int | None = None,
    stall: float = STALL,
    timeout: float = WAIT,  # noqa: ASYNC109 (the overall deadline of the gathering)
    data: bytes = b"",
) -> list[Msg]:
    """Scatter/gather: every reply to one request, in arrival order (no-responders -> [])."""
    inbox = await client.subscribe(client.new_inbox())
    replies: list[Msg] = []
    try:
        await client.publish(subject, data, reply=inbox.subject)
        with anyio.move_on_after(timeout):
            while max_count is None or len(replies) < max_count:
                try:
                    msg = await inbox.next_msg(timeout=stall if replies else timeout)
                except TimeoutError:
                    break
                if msg.is_no_responders:
                    break
                replies.append(msg)
    finally:
        await inbox.unsubscribe()
    return replies


async def gather_json(client: Transport, subject: str, **options: Any) -> list[dict[str, Any]]:
    """:func:`gather`, each reply decoded and schema-validated."""
    verb = next(verb for verb in _TYPES if f".{verb}" in f".{subject}")
    documents = []
    for msg in await gather(client, subject, **options):
        document = json.loads(msg.data)
        validate_document(verb, document)
        documents.append(document)
    return documents


class Recorder:
    """A sync notification callback recording its calls; ``await wait(n)`` for n calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self._changed = anyio.Event()

    def __call__(self, *args: Any) -> None:
        self.calls.append(args)
        self._changed.set()
        self._changed = anyio.Event()

    async def wait(self, count: int = 1, limit: float = WAIT) -> list[tuple[Any, ...]]:
        with anyio.fail_after(limit):
            while len(self.calls) < count:
                await self._changed.wait()
        return self.calls

    async def stays_below(self, count: int, quiet: float = QUIET) -> bool:
        """True when fewer than ``count`` calls happened within ``quiet`` seconds."""
        with anyio.move_on_after(quiet):
            await self.wait(count, limit=quiet + 1)
        return len(self.calls) < count


class TappedTransport:
    """A :class:`Transport` delegating to ``inner``, with two test hooks.

    :meth:`inject` emits a fake connection event to the listeners added through it;
    :meth:`deny` makes later subscribes to a subject fail like a permissions violation.
    """

    def __init__(self, inner: Transport) -> None:
        self._inner = inner
        self._listeners: list[EventListener] = []
        self._denied: set[str] = set()

    def inject(self, event: TransportEvent) -> None:
        for listener in list(self._listeners):
            listener(event)

    def deny(self, subject: str) -> None:
        self._denied.add(subject)

    @property
    def max_payload(self) -> int:
        return self._inner.max_payload

    @property
    def is_connected(self) -> bool:
        return self._inner.is_connected

    @property
    def is_closed(self) -> bool:
        return self._inner.is_closed

    def new_inbox(self) -> str:
        return self._inner.new_inbox()

    async def publish(
        self,
        subject: str,
        data: bytes = b"",
        *,
        reply: str | None = None,
        headers: Headers | None = None,
    ) -> None:
        await self._inner.publish(subject, data, reply=reply, headers=headers)

    async def subscribe(
        self,
        subject: str,
        *,
        queue: str | None = None,
        pending_msgs_limit: int | None = None,
        pending_bytes_limit: int | None = None,
    ) -> Subscription:
        if subject in self._denied:
            raise PermissionViolationError("subscribe", subject)
        return await self._inner.subscribe(
            subject,
            queue=queue,
            pending_msgs_limit=pending_msgs_limit,
            pending_bytes_limit=pending_bytes_limit,
        )

    async def request(
        self,
        subject: str,
        data: bytes = b"",
        *,
        headers: Headers | None = None,
        timeout: float = 1.0,  # noqa: ASYNC109 (signature fixed by the Transport protocol)
    ) -> Msg:
        return await self._inner.request(subject, data, headers=headers, timeout=timeout)

    async def flush(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 (protocol signature)
        await self._inner.flush(timeout)

    async def drain(self) -> None:
        await self._inner.drain()

    async def close(self) -> None:
        await self._inner.close()

    def add_event_listener(self, listener: EventListener) -> Callable[[], None]:
        remove_inner = self._inner.add_event_listener(listener)
        self._listeners.append(listener)

        def remove() -> None:
            remove_inner()
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    async def __aenter__(self) -> TappedTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
