"""Optional extensions of the :class:`~transports.base.Transport` protocol.

None of them is part of the ``Transport`` contract: a transport that implements none is
complete, and ``micro`` works on it unchanged.  ``micro`` checks for each by its members
(``transports._protocols.implements``: the same answer on every Python, unlike ``isinstance``
against a runtime protocol) and uses it when present:

* :class:`MultiSubjectSubscriber` -- several subjects behind one subscription, so that one
  consumer task serves them all (a service's nine control subjects: starting and stopping
  a service costs two tasks instead of ten);
* :class:`HandlerErrorSink` and :class:`HandlerTracker` -- told about service handlers,
  for test brokers (the memory transport's strict mode and ``wait_idle``);
* :class:`InProcessBroker` -- declares that the broker runs in this process, so that a
  caller may run cheap operations one after another instead of a task each;
* :class:`ReplyGatherer` -- a request to every subscriber whose replies end as soon as the
  broker knows every receiver of the request has finished with it (``micro`` discovery:
  ``Client.ping/info/stats`` end at once instead of waiting out ``max_wait``).

Both built-in transports implement ``MultiSubjectSubscriber`` (the conformance suite checks
``subscribe_many`` on every transport that offers it, ``testing.conformance``); only the
memory transport implements the other four.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from transports.base import Headers, Msg, Subscription

__all__ = [
    "HandlerErrorSink",
    "HandlerTracker",
    "InProcessBroker",
    "MultiSubjectSubscriber",
    "MultiSubscription",
    "ReplyGatherer",
    "ReplyStream",
]


@runtime_checkable
class MultiSubscription(Subscription, Protocol):
    """A :class:`~transports.base.Subscription` to several concrete subjects at once.

    Everything the ``Subscription`` protocol says holds, for all of its subjects together:
    one buffer, one iterator, ``unsubscribe``/``drain`` end the interest in every subject
    at once, and ``unsubscribe(limit=N)`` counts the messages of all subjects together.
    ``subject`` is the first of :attr:`subjects`; ``queue`` is always ``None``.
    """

    @property
    def subjects(self) -> tuple[str, ...]:
        """Every subject subscribed, in the order given to ``subscribe_many``."""
        ...


@runtime_checkable
class MultiSubjectSubscriber(Protocol):
    """Optional extension of a :class:`~transports.base.Transport`: ``subscribe_many``."""

    async def subscribe_many(self, subjects: Sequence[str]) -> MultiSubscription:
        """Subscribe to every subject of ``subjects`` through ONE subscription.

        The broker sees exactly what ``len(subjects)`` plain ``subscribe`` calls would
        give it (over NATS: one ``SUB`` per subject, never queue-grouped), so routing,
        interest and no-responders are unchanged; only the consumer side differs: every
        message arrives through one buffer, in arrival order, and ``Msg.subject`` tells
        which subject it came on.  Returns once every subject is live at the broker.

        ``subjects`` must be a non-empty sequence of distinct concrete subjects (no
        wildcards: a message then matches exactly one of them and is delivered once).
        Raises :class:`~transports.base.BadSubjectError` naming a subject that is
        invalid or a pattern, ``ValueError`` for an empty sequence or a repeated subject,
        and what ``subscribe`` raises otherwise (a refused subject ends the whole
        subscription).  The default pending limits apply: at most
        ``DEFAULT_PENDING_MSGS_LIMIT`` messages are buffered in all, and at most
        ``DEFAULT_PENDING_BYTES_LIMIT`` payload bytes per subject.
        """
        ...


@runtime_checkable
class HandlerErrorSink(Protocol):
    """Optional extension of a :class:`~transports.base.Transport`: told when a service
    handler fails.

    When a handler of an endpoint served over this transport raises an exception other
    than ``micro.ServiceError`` (an *unexpected* failure, which becomes a ``500`` error
    reply), the endpoint calls :meth:`handler_failed` once, after counting the error and
    before sending the error reply.  It also calls it, with a
    ``micro.request.UnansweredRequestError``, when a handler returned without responding
    to a request that has a reply subject.  The memory transport implements it so that a strict
    ``MemoryBroker`` can re-raise the exception in the test instead of letting it hide
    behind the error reply.
    """

    def handler_failed(self, subject: str, error: Exception) -> None:
        """``error`` escaped the handler of a request on ``subject``.  Must not block and
        must not raise (the endpoint keeps serving either way)."""
        ...


@runtime_checkable
class HandlerTracker(Protocol):
    """Optional extension of a :class:`~transports.base.Transport`: told about handlers
    running in tasks of their own.

    A consumer that hands a received message to another task -- an endpoint with
    ``max_concurrency > 1`` -- calls :meth:`handler_started` when it hands the message
    over and :meth:`handler_finished` once that task is done (also when it failed or was
    cancelled), so the pairs always balance.  A consumer that handles each message inside
    its own ``async for`` loop calls neither: a transport sees it come back for the next
    message.  The memory transport implements it so that ``MemoryBroker.wait_idle()``
    waits for every handler, whatever the endpoint's concurrency.
    """

    def handler_started(self) -> None:
        """A handler was handed a message.  Must not block and must not raise."""
        ...

    def handler_finished(self) -> None:
        """A handler announced by :meth:`handler_started` is done.  Must not block and must
        not raise."""
        ...


@runtime_checkable
class InProcessBroker(Protocol):
    """Optional extension of a :class:`~transports.base.Transport`: the broker runs in this
    process, with no network between it and the connection.

    A transport that declares it (:attr:`in_process` is True) promises that ``unsubscribe``
    and ``drain`` of a subscription with nothing buffered complete without waiting for any
    I/O, so a caller may run them one after another instead of concurrently: a service
    stopping on such a transport drains those subscriptions inline, which costs less than a
    task each.  (Over a network, the drains of a service run concurrently so that their
    round trips overlap.)
    """

    @property
    def in_process(self) -> bool:
        """True when the promise above holds for this connection."""
        ...


@runtime_checkable
class ReplyStream(Protocol):
    """The replies to one request published by :meth:`ReplyGatherer.gather_replies`."""

    @property
    def inbox(self) -> str:
        """The reply subject of the request (a fresh inbox, subscribed before publishing)."""
        ...

    async def next_reply(self, timeout: float) -> Msg | None:
        """The next reply, in arrival order, waiting up to ``timeout`` seconds (> 0).

        Returns ``None`` once the broker knows the request is *complete*: every
        subscription it was delivered to has finished with it and every reply they sent
        was returned by an earlier call.  A transport that cannot tell (a receiver read
        with ``next_msg``, a broker shared with other threads, a message a fault rule holds
        back) never returns ``None``: the caller's time limits decide.  A no-responders
        status is returned as a reply (``Msg.is_no_responders``).

        Raises builtin :class:`TimeoutError` when nothing came in time, and
        :class:`~transports.base.SubscriptionClosedError` once the inbox ended (the
        connection closed, or :meth:`aclose`).
        """
        ...

    async def aclose(self) -> None:
        """Remove the inbox (idempotent; never raises)."""
        ...


@runtime_checkable
class ReplyGatherer(Protocol):
    """Optional extension of a :class:`~transports.base.Transport`: a scatter/gather request
    that knows when every responder is done.

    Over a network a gatherer cannot know how many subscribers received a request, so it
    waits (ADR-32: an overall ``max_wait`` and a stall interval after the last reply).  An
    in-process broker knows: the memory transport implements this so that discovery ends
    as soon as every receiver -- on any connection, one member per queue group -- has
    answered or returned without answering, with the same replies a real server gives.
    """

    async def gather_replies(
        self, subject: str, data: bytes = b"", *, headers: Headers | None = None
    ) -> ReplyStream:
        """Subscribe a fresh inbox, publish ``data`` (and ``headers``) to ``subject`` with
        that inbox as reply subject, and return the :class:`ReplyStream` of its replies.

        Raises what ``subscribe`` and ``publish`` raise (``BadSubjectError``,
        ``MaxPayloadError``, ``ConnectionClosedError`` ...); the inbox is removed then.
        """
        ...
