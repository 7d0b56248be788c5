"""Routing in the in-memory broker: the one path every published message takes.

:class:`Router` holds what routing needs -- the subject trie (:mod:`.sublist`) and the
broker's seedable ``random.Random`` -- and :meth:`Router.route` is the single routing
function: every matching plain subscription gets the message, each matching queue group
exactly one member (chosen by the generator), and with nothing matching, a message with a
reply subject makes the broker send the no-responders status to its publisher
(:meth:`Router.send_no_responders`, nats-server's rule).  Every receiver but the first gets
its own copy of the headers (:func:`copy_msg`), so no two receivers share a mutable dict.

What the router delivers to is declared by :class:`Receiver` (a subscription, or a
connection's request inbox).  Test hooks (recording, fault rules) attach through one slot,
:attr:`Router.interceptor`: while it is ``None``, :meth:`Router.dispatch` costs one
attribute check more than routing itself.

This module knows nothing of connections: a message's origin is only compared by identity
with :attr:`Receiver.connection`.
"""

from __future__ import annotations

import random
from collections.abc import Hashable
from typing import Protocol

from transports.base import NO_RESPONDERS_STATUS, STATUS_HEADER, Msg
from transports.memory.sublist import Sublist
from transports.subjects import make_msg, server_match_order

__all__ = [
    "SUBJECT_HEADER",
    "Interceptor",
    "Receiver",
    "Router",
    "copy_msg",
]


class Receiver(Hashable, Protocol):
    """What the router delivers to: a ``MemorySubscription`` or a connection's reply inbox.

    ``deliver`` and ``deliver_dropped`` are called synchronously while routing: they only
    buffer (or report) and never run consumer code.
    """

    @property
    def connection(self) -> object:
        """The connection the receiver belongs to (the no-responders rule compares it)."""

    @property
    def subjects(self) -> tuple[str, ...]:
        """The patterns it is registered under (the no-responders rule orders by them)."""

    def deliver(self, msg: Msg) -> None:
        """Take ``msg`` (buffer it, or hand it to a waiting request)."""

    def deliver_dropped(self, msg: Msg) -> None:
        """Lose ``msg`` as a slow consumer would, visibly (forced by a fault rule)."""


class Interceptor(Protocol):
    """A test hook that takes over dispatching (``faults.BrokerHooks``)."""

    def dispatch(self, origin: object, msg: Msg) -> None:
        """Handle a published message instead of routing it directly; it calls
        :meth:`Router.route` for what it lets through."""


def copy_msg(msg: Msg) -> Msg:
    """The same message with its own headers dict (receivers never share a mutable dict)."""
    headers = msg.headers
    return make_msg(msg.subject, msg.data, None if headers is None else dict(headers), msg.reply)


class Router:
    """The broker's subscriptions and its routing of published messages.

    ``rng`` picks queue-group members.  Request inboxes (``_INBOX.`` subjects) are matched
    without caching, since each is used once.
    """

    __slots__ = ("_rng", "_sublist", "interceptor", "known_subjects")

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._sublist: Sublist[Receiver] = Sublist(uncached_prefix="_INBOX.")
        self.known_subjects: dict[str, None] = {}
        """Publish subjects already found valid (a cache for ``subjects.check_message``)."""
        self.interceptor: Interceptor | None = None
        """Set by the test hooks while one is active; :meth:`dispatch` then hands every
        message to it instead of routing it."""

    def __len__(self) -> int:
        """Interest entries (subscriptions, one per subject, plus request inboxes)."""
        return len(self._sublist)

    def derived_rng(self) -> random.Random:
        """A new generator seeded from the routing one (for fault rules: seeded brokers
        replay their faults too)."""
        return random.Random(self._rng.getrandbits(64))

    def add_interest(self, subject: str, receiver: Receiver, queue: str | None = None) -> None:
        """Route messages matching the pattern ``subject`` to ``receiver`` from now on."""
        self._sublist.insert(subject, receiver, queue)

    def remove_interest(self, subject: str, receiver: Receiver, queue: str | None = None) -> None:
        """Undo :meth:`add_interest` (no effect when not registered)."""
        self._sublist.remove(subject, receiver, queue)

    def dispatch(self, origin: object, msg: Msg) -> None:
        """Route one message ``origin`` published: the single entry point for every publish
        reaching the broker; the :attr:`interceptor` takes it when set."""
        interceptor = self.interceptor
        if interceptor is not None:
            interceptor.dispatch(origin, msg)
        else:
            self.route(origin, msg)

    def route(self, origin: object, msg: Msg, slow: bool = False) -> None:
        """Deliver ``msg`` to every matching plain receiver and one member per matching
        queue group; with nothing matching and a reply subject, send the no-responders
        status to ``origin``.  ``slow``: every receiver drops the message as a slow
        consumer (a fault rule).  Synchronous: runs no consumer code.
        """
        plain, groups = self._sublist.match(msg.subject)
        copy_next = False  # the first receiver takes msg itself, the others a copy
        with_headers = msg.headers is not None
        for receiver in plain:
            delivered = copy_msg(msg) if copy_next else msg
            if slow:
                receiver.deliver_dropped(delivered)
            else:
                receiver.deliver(delivered)
            copy_next = with_headers
        if groups:
            rng = self._rng
            for members in groups:
                count = len(members)
                member = members[int(rng.random() * count)] if count > 1 else members[0]
                delivered = copy_msg(msg) if copy_next else msg
                if slow:
                    member.deliver_dropped(delivered)
                else:
                    member.deliver(delivered)
                copy_next = with_headers
        elif not plain and msg.reply is not None:
            self.send_no_responders(origin, msg)

    def send_no_responders(self, origin: object, msg: Msg) -> None:
        """nats-server's rule for a message with a reply subject that nothing received: a
        ``503`` status message, with header ``Nats-Subject`` naming the subject published
        to, goes to ``origin``'s own first plain receiver matching the reply subject in
        nats-server's match order (:func:`server_match_order`), and nowhere if it has none.
        """
        reply = msg.reply
        assert reply is not None
        own = [r for r in self._sublist.match(reply)[0] if r.connection is origin]
        if not own:
            return
        if len(own) > 1:
            order = server_match_order([p for r in own for p in r.subjects], reply)
            own.sort(key=lambda r: min(order.get(p, len(order)) for p in r.subjects))
        headers = {STATUS_HEADER: NO_RESPONDERS_STATUS, SUBJECT_HEADER: msg.subject}
        own[0].deliver(make_msg(reply, b"", headers, None))


SUBJECT_HEADER = "Nats-Subject"
"""Header of a no-responders status naming the subject the request was published to."""
