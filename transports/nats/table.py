"""The subscriptions of one ``NatsTransport``, by sid, and what the server says about them.

:class:`SubscriptionTable` is the one place that knows a multi subscription is listed once
per sid (each subscription is visited once however many sids it has), routes nats-py's
``error_cb`` reports about subscriptions (slow consumers, permissions violations) to the
subscriptions they concern, and drains them all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from transports.base import PermissionViolationError, SlowConsumerError, TransportError
from transports.nats.errors import map_nats_error, permission_violation_parts
from transports.nats.subscription import NatsSubscription

__all__ = ["SubscriptionTable"]


class SubscriptionTable:
    """The live subscriptions of one connection.

    ``by_sid`` maps each sid to its subscription (a multi subscription under each of its
    sids); nats-py's reader consults it for every message (``msg_factory``), so it is a
    plain ``dict``.  ``reports`` counts nats-py's ``error_cb`` reports so far: a subscribe
    notes it before its barrier and asks :meth:`denied` afterwards.
    """

    __slots__ = ("_denied", "_draining", "by_sid", "reports")

    def __init__(self) -> None:
        self.by_sid: dict[int, NatsSubscription] = {}
        self._draining: dict[NatsSubscription, None] = {}  # no longer routed, not yet ended
        self.reports = 0
        self._denied: dict[str, int] = {}  # subscription denied -> `reports` at the time

    def add(self, sub: NatsSubscription) -> None:
        """List ``sub`` under each of its sids."""
        for sid in sub.sids:
            self.by_sid[sid] = sub

    def remove(self, sub: NatsSubscription) -> tuple[int, ...]:
        """Stop listing ``sub``; returns its sids."""
        self._draining.pop(sub, None)
        sids = sub.sids
        for sid in sids:
            self.by_sid.pop(sid, None)
        return sids

    def subscriptions(self) -> list[NatsSubscription]:
        """Every subscription listed, once each."""
        return list(dict.fromkeys(self.by_sid.values()))

    def start_drain(self, sub: NatsSubscription) -> tuple[int, ...]:
        """A drain of ``sub`` began: no more messages for it, but it is not over until its
        consumer took what it holds (or the connection closes); returns its sids."""
        sids = self.remove(sub)
        self._draining[sub] = None
        return sids

    def end_all(self) -> None:
        """The connection closed: end every subscription, draining ones included, and
        discard what they buffered (nats-py's iterators stop there too)."""
        for sub in [*self.subscriptions(), *self._draining]:
            sub._end(discard=True)

    async def drain_all(self, timeout: float) -> list[Exception]:
        """Drain every subscription concurrently; returns what failed, or a
        :class:`TransportError` when ``timeout`` seconds ran out."""
        drains = [sub.drain() for sub in self.subscriptions()]
        try:
            done = await asyncio.wait_for(asyncio.gather(*drains, return_exceptions=True), timeout)
        except asyncio.TimeoutError:
            return [TransportError(f"drain timed out after {timeout:g} s; closing anyway")]
        return [error for error in done if isinstance(error, Exception)]

    def denied(self, subjects: Sequence[str], since: int) -> list[str]:
        """Those of ``subjects`` the server refused after report number ``since``."""
        return [s for s in subjects if self._denied.pop(s.lower(), -1) >= since]

    def on_error(self, exc: Exception) -> tuple[TransportError, list[NatsSubscription]]:
        """What nats-py's ``error_cb`` report ``exc`` means: the error to report, and the
        subscriptions it ends (the caller ends them once it reported the error).

        A slow consumer is counted on its subscription and named by the subject it came on
        (among a multi subscription's subjects).  A subscription refused by the server is
        recorded for :meth:`denied` and ends the live subscriptions it names
        (:meth:`_denied_subscriptions`).
        """
        self.reports += 1
        error = map_nats_error(exc)
        if isinstance(error, SlowConsumerError):
            sid: Any = getattr(exc, "sid", None)
            sub = self.by_sid.get(sid)
            if sub is None:
                return error, []
            sub._note_dropped()
            return SlowConsumerError(sub._subject_of(sid)), []
        if isinstance(error, PermissionViolationError) and error.operation == "subscription":
            self._denied[error.subject.lower()] = self.reports
            return self._denied_subscriptions(error, str(exc))
        return error, []

    def _denied_subscriptions(
        self, error: PermissionViolationError, text: str
    ) -> tuple[PermissionViolationError, list[NatsSubscription]]:
        """The server refused (or, after a configuration reload, removed) a subscription.

        nats-py lower-cases the server's line (``text``): give the error the subject as
        subscribed, and return the live subscriptions it names (subject and queue,
        case-insensitively; any of a multi subscription's subjects), which the server no
        longer serves and which must therefore end (a multi subscription as a whole: it is
        one subscription).  Each is returned once, however many sids it is listed under.
        """
        parts = permission_violation_parts(text)
        queue = (parts[2] if parts is not None else None) or ""
        named: list[NatsSubscription] = []
        subject = error.subject
        for sub in self.subscriptions():
            if (sub.queue or "").lower() != queue:
                continue
            subjects: tuple[str, ...] = getattr(sub, "subjects", (sub.subject,))
            match = next((s for s in subjects if s.lower() == error.subject), None)
            if match is not None:
                if not named:
                    subject = match
                named.append(sub)
        if not named:
            return error, []
        detail = f"queue group {named[0].queue!r}" if named[0].queue else ""
        return PermissionViolationError("subscription", subject, detail), named
