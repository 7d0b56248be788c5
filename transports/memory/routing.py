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
import threading
from collections.abc import Hashable, Sequence
from typing import Protocol

from transports.base import NO_RESPONDERS_STATUS, STATUS_HEADER, Msg
from transports.memory.sublist import Sublist
from transports.runtime import call_soon_in, current_home
from transports.subjects import make_msg, server_match_order

__all__ = [
    "SUBJECT_HEADER",
    "Interceptor",
    "Receiver",
    "Router",
    "copy_msg",
]


_SHARING = threading.Lock()
"""Taken while a broker turns shared (:meth:`Router.note_home`)."""


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

    @property
    def home(self) -> object:
        """The event loop its consumer runs on (``runtime.current_home()``): messages
        routed from another loop or thread are handed over there."""

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

    __slots__ = ("_home", "_lock", "_rng", "_sublist", "interceptor", "is_shared", "known_subjects")

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._sublist: Sublist[Receiver] = Sublist(uncached_prefix="_INBOX.")
        self._home: object = None  # the one event loop every user ran on so far
        self._lock: threading.RLock | None = None  # set once a second loop uses the broker
        self.is_shared = False
        """True once connections on more than one event loop (or thread) used the broker
        (:meth:`note_home`)."""
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

    # ------------------------------------------------------------------ loops and threads

    def note_home(self, home: object) -> None:
        """A connection or receiver lives on the event loop ``home``.

        While every one lives on one loop, routing delivers inline.  From the second loop on
        (another thread, trio beside asyncio, or a later event loop in the same thread) the
        broker is *shared*, for good: the subject trie is guarded by a lock, and a message
        for a receiver on another loop is handed to that loop (``runtime.call_soon_in``),
        the way a server in another process would write it to that connection's socket.
        Each publisher's messages still reach each receiver in publish order.
        """
        if home is not self._home and home is not None:
            if self._home is None:
                self._home = home
            elif self._lock is None:
                with _SHARING:  # two threads may get here at once: one lock for the broker
                    if self._lock is None:
                        self._lock = threading.RLock()
                        self.is_shared = True

    def add_interest(self, subject: str, receiver: Receiver, queue: str | None = None) -> None:
        """Route messages matching the pattern ``subject`` to ``receiver`` from now on."""
        self.note_home(receiver.home)
        lock = self._lock
        if lock is None:
            self._sublist.insert(subject, receiver, queue)
        else:
            with lock:
                self._sublist.insert(subject, receiver, queue)

    def remove_interest(self, subject: str, receiver: Receiver, queue: str | None = None) -> None:
        """Undo :meth:`add_interest` (no effect when not registered)."""
        lock = self._lock
        if lock is None:
            self._sublist.remove(subject, receiver, queue)
        else:
            with lock:
                self._sublist.remove(subject, receiver, queue)

    def _match(self, subject: str) -> tuple[Sequence[Receiver], Sequence[Sequence[Receiver]]]:
        lock = self._lock
        if lock is None:
            return self._sublist.match(subject)
        with lock:
            return self._sublist.match(subject)

    def receivers(self, subject: str) -> list[Receiver]:
        """Every receiver a message published to ``subject`` may reach now: the plain ones
        and every member of each matching queue group."""
        plain, groups = self._match(subject)
        return [*plain, *(member for members in groups for member in members)]

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
        lock = self._lock
        if lock is None:
            plain, groups = self._sublist.match(msg.subject)
            here = None
        else:  # shared: what is for a receiver on another loop is handed over there
            with lock:
                plain, groups = self._sublist.match(msg.subject)
            here = current_home()
        copy_next = False  # the first receiver takes msg itself, the others a copy
        with_headers = msg.headers is not None
        for receiver in plain:
            delivered = copy_msg(msg) if copy_next else msg
            if here is not None and receiver.home is not here:
                call_soon_in(receiver.home, _deliver, receiver, delivered, slow)
            elif slow:
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
                if here is not None and member.home is not here:
                    call_soon_in(member.home, _deliver, member, delivered, slow)
                elif slow:
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
        own = [r for r in self._match(reply)[0] if r.connection is origin]
        if not own:
            return
        if len(own) > 1:
            order = server_match_order([p for r in own for p in r.subjects], reply)
            own.sort(key=lambda r: min(order.get(p, len(order)) for p in r.subjects))
        headers = {STATUS_HEADER: NO_RESPONDERS_STATUS, SUBJECT_HEADER: msg.subject}
        status = make_msg(reply, b"", headers, None)
        if self._lock is None or own[0].home is current_home():
            own[0].deliver(status)
        else:
            call_soon_in(own[0].home, _deliver, own[0], status, False)


def _deliver(receiver: Receiver, msg: Msg, slow: bool) -> None:
    """A message handed over from another loop, delivered on the receiver's own."""
    if slow:
        receiver.deliver_dropped(msg)
    else:
        receiver.deliver(msg)


SUBJECT_HEADER = "Nats-Subject"
"""Header of a no-responders status naming the subject the request was published to."""
