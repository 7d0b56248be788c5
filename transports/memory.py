"""An in-process broker with nats-server semantics, and its connections.

``MemoryBroker`` plays the server: all state lives on the instance, and any number of
``MemoryTransport`` connections share it exactly like processes sharing a nats-server
(a connection receives its own publishes when subscribed, as with nats "echo").
``MemoryTransport`` implements :class:`transports.base.Transport` and passes the same
conformance suite as ``transports.nats``.

What it reproduces from nats-server / nats-py:

* subject matching through a token trie (``transports._sublist``), so publish cost
  does not grow with unrelated subscriptions; every matching plain subscription gets a
  copy, each matching queue group exactly one member, chosen by the broker's seedable
  ``random.Random``;
* a publish with a reply subject that matches nothing sends ``Status: 503`` (empty
  payload) to the *publishing* connection's first plain subscription matching the reply
  subject, as ``nats-server`` does; ``request()`` turns it into ``NoRespondersError``;
* headers validated as ``transports.subjects`` demands (values NATS would alter are
  refused), an empty mapping delivered as ``None``, every receiver given its own
  ``dict``; ``max_payload`` counts payload plus the encoded header block;
* per-subscription bounded buffers: beyond a limit messages are dropped and reported
  (``dropped``, an ``ERROR`` event with :class:`SlowConsumerError`); publishers never block.

Delivery is asynchronous: ``publish`` only buffers and wakes waiting consumers.  Every
message passes through :meth:`MemoryBroker._dispatch`, the single place where test hooks
attach (``transports._memory_conveniences``): traffic recording (:meth:`MemoryBroker.record`),
:meth:`MemoryBroker.wait_idle`, strict mode for handler exceptions and fault rules by subject
pattern (drop, delay, duplicate, reorder, no-responders, slow consumer).  Per connection,
``MemoryTransport.force_disconnect()`` / ``force_reconnect()`` simulate losing the server the
way nats-py sees it.  While no hook is active they cost one attribute check per publish.
A broker serves one event loop at a time.

Determinism: queue-group choice, inbox ids and probabilistic faults come from the broker's
seedable ``random.Random`` (unseeded: seeded from the global ``random`` module); under
hypothesis every broker generator is re-seeded per example (``transports._memory_seeding``),
so a failing example replays the same choices.

URLs: ``memory://`` is the process-wide default broker, ``memory://name`` a named one
(:func:`get_broker`); that registry is this module's only global state.
"""

from __future__ import annotations

import random
from typing import Any
from urllib.parse import urlsplit

from transports._memory_conveniences import BrokerConveniences, HandlerFailure
from transports._memory_faults import FaultRule
from transports._memory_recording import RecordedMessage, Recording, Traffic
from transports._memory_seeding import new_rng, track
from transports._memory_subscription import MemorySubscription
from transports._memory_transport import DEFAULT_PENDING_SIZE, MemoryTransport, _ReplyMux
from transports._sublist import Sublist
from transports.base import NO_RESPONDERS_STATUS, STATUS_HEADER, Msg
from transports.subjects import make_msg, positive_number

__all__ = [
    "FaultRule",
    "HandlerFailure",
    "MemoryBroker",
    "MemorySubscription",
    "MemoryTransport",
    "RecordedMessage",
    "Recording",
    "Traffic",
    "connect_url",
    "get_broker",
]

_Receiver = MemorySubscription | _ReplyMux


class MemoryBroker(BrokerConveniences):
    """The in-process server: subscriptions, routing, queue-group choice, test hooks.

    ``max_payload`` is the largest message accepted (payload plus encoded headers, like
    the server's setting); ``rng`` (or a ``random.Random(seed)``) picks queue-group
    members and inbox ids, so a seeded broker replays the same choices for the same
    sequence of operations; ``strict`` keeps service handler exceptions to re-raise them
    in the test (see :attr:`strict`).
    Raises ``ValueError`` for a non-positive ``max_payload`` or both ``seed`` and ``rng``.
    """

    def __init__(
        self,
        *,
        max_payload: int = 1024 * 1024,
        seed: int | None = None,
        rng: random.Random | None = None,
        strict: bool = False,
    ) -> None:
        if not isinstance(max_payload, int) or isinstance(max_payload, bool) or max_payload <= 0:
            raise ValueError(f"invalid max_payload {max_payload!r}: must be a positive int")
        if seed is not None and rng is not None:
            raise ValueError("pass either seed or rng, not both")
        self._max_payload = max_payload
        self._rng = rng if rng is not None else new_rng(seed)
        self._id_rng = random.Random(self._rng.getrandbits(64))
        self._sublist: Sublist[_Receiver] = Sublist(uncached_prefix="_INBOX.")
        self._known_subjects: dict[str, None] = {}  # publish subjects found valid
        self._connections: dict[int, MemoryTransport] = {}
        self._next_cid = 0
        self._in_flight = 0
        self._init_conveniences(strict)
        track(self._rng)  # replayable choices inside hypothesis tests

    @property
    def max_payload(self) -> int:
        """Largest message (payload plus encoded headers, in bytes) connections may publish."""
        return self._max_payload

    @property
    def in_flight(self) -> int:
        """Messages buffered in subscriptions and not yet taken by their consumers."""
        return self._in_flight

    @property
    def subscription_count(self) -> int:
        """Interest entries in the sublist (subscriptions plus request inboxes)."""
        return len(self._sublist)

    @property
    def connections(self) -> list[MemoryTransport]:
        """Open connections, oldest first."""
        return list(self._connections.values())

    async def connect(
        self,
        *,
        name: str | None = None,
        drain_timeout: float = 30.0,
        pending_size: int = DEFAULT_PENDING_SIZE,
    ) -> MemoryTransport:
        """Open a new connection to this broker.

        ``name`` labels the connection; ``drain_timeout`` bounds ``drain()`` (after it the
        connection closes anyway, reporting an ``ERROR`` event); ``pending_size`` bounds
        the bytes buffered by publishes while disconnected (``0``: publishing while
        disconnected raises, see ``MemoryTransport.force_disconnect``).  Raises
        ``ValueError`` for a non-str ``name``, a non-positive ``drain_timeout`` or a
        negative ``pending_size``.
        """
        if name is not None and not isinstance(name, str):
            raise ValueError(f"invalid connection name {name!r}: must be a str or None")
        positive_number("drain_timeout", drain_timeout)
        if not isinstance(pending_size, int) or isinstance(pending_size, bool) or pending_size < 0:
            raise ValueError(f"invalid pending_size {pending_size!r}: must be an int >= 0")
        self._next_cid += 1
        conn = MemoryTransport(self, self._next_cid, name, drain_timeout, pending_size)
        self._connections[conn.cid] = conn
        return conn

    def _dispatch(self, origin: MemoryTransport, msg: Msg) -> None:
        """Route one published message; the single entry point for every publish.

        Buffers ``msg`` for every matching plain subscription and one member per
        matching queue group; with nothing matching and a reply subject, sends the
        no-responders status to the publisher.  Synchronous: runs no consumer code.
        """
        hooks = self._hooks
        if hooks is not None:  # recording, faults or a disconnected connection: the slow path
            hooks.dispatch(origin, msg)
            return
        plain, groups = self._sublist.match(msg.subject)
        copy_next = False
        with_headers = msg.headers is not None
        for receiver in plain:
            receiver._push(_copy(msg) if copy_next else msg)
            copy_next = with_headers
        if groups:
            rng = self._rng
            for members in groups:
                count = len(members)
                member = members[int(rng.random() * count)] if count > 1 else members[0]
                member._push(_copy(msg) if copy_next else msg)
                copy_next = with_headers
        elif not plain and msg.reply is not None:
            self._no_responders(origin, msg.reply)

    def _route(self, origin: MemoryTransport, msg: Msg, slow: bool = False) -> None:
        """:meth:`_dispatch`'s routing for the hooks (after recording and fault rules);
        ``slow``: every receiver drops the message as a slow consumer."""
        plain, groups = self._sublist.match(msg.subject)
        receivers = list(plain)
        rng = self._rng
        for members in groups:
            count = len(members)
            receivers.append(members[int(rng.random() * count)] if count > 1 else members[0])
        if not receivers:
            if msg.reply is not None:
                self._no_responders(origin, msg.reply)
            return
        for number, receiver in enumerate(receivers):
            delivered = msg if number == 0 or msg.headers is None else _copy(msg)
            if slow:
                receiver._push_dropped(delivered)
            else:
                receiver._push(delivered)

    def _no_responders(self, origin: MemoryTransport, reply: str) -> None:
        """nats-server's rule: the 503 goes only to the publisher's own first plain
        subscription matching the reply subject (nothing if it has none)."""
        for receiver in self._sublist.match(reply)[0]:
            if receiver._conn is origin:
                receiver._push(make_msg(reply, b"", {STATUS_HEADER: NO_RESPONDERS_STATUS}, None))
                return

    def _forget(self, conn: MemoryTransport) -> None:
        self._connections.pop(conn.cid, None)


def _copy(msg: Msg) -> Msg:
    """The same message with its own headers dict (receivers never share a mutable dict)."""
    headers = msg.headers
    return make_msg(msg.subject, msg.data, None if headers is None else dict(headers), msg.reply)


# ---------------------------------------------------------------------- named brokers

_brokers: dict[str, MemoryBroker] = {}


def get_broker(name: str = "") -> MemoryBroker:
    """The process-wide broker called ``name`` (``""``: the default), created on first use."""
    if not isinstance(name, str):
        raise ValueError(f"invalid broker name {name!r}: must be a str")
    broker = _brokers.get(name)
    if broker is None:
        broker = _brokers[name] = MemoryBroker()
    return broker


async def connect_url(url: str, **options: Any) -> MemoryTransport:
    """Connect to the broker a ``memory://`` URL names.

    ``memory://`` -> the default broker, ``memory://name`` -> the broker ``name``.
    ``options`` go to :meth:`MemoryBroker.connect` (e.g. ``name=`` for the connection).
    Raises ``ValueError`` naming the URL when it is not of that form.
    """
    if not isinstance(url, str):
        raise ValueError(f"invalid memory URL {url!r}: must be a str")
    parts = urlsplit(url)
    if (
        parts.scheme.lower() != "memory"
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or any(c in parts.netloc for c in "@:,")
    ):
        raise ValueError(
            f"invalid memory URL {url!r}: expected 'memory://' or 'memory://<broker name>'"
        )
    return await get_broker(parts.netloc).connect(**options)
