"""An in-process broker with nats-server semantics, and its connections.

``MemoryBroker`` plays the server: all state lives on the instance, and any number of
``MemoryTransport`` connections share it exactly like processes sharing a nats-server
(a connection receives its own publishes when subscribed, as with nats "echo").
``MemoryTransport`` implements :class:`transports.base.Transport` and passes the same
conformance suite as ``transports.nats``.

What it reproduces from nats-server / nats-py:

* subject matching through a token trie (``transports.memory.sublist``), so publish cost
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
message passes through ``Router.dispatch`` (``transports.memory.routing``), the single
place where test hooks attach (``transports.memory.broker``): traffic recording
(:meth:`MemoryBroker.record`), :meth:`MemoryBroker.wait_idle`, strict mode for handler
exceptions and fault rules by subject pattern (drop, delay, duplicate, reorder,
no-responders, slow consumer).  Per connection, ``MemoryTransport.force_disconnect()`` /
``force_reconnect()`` simulate losing the server the way nats-py sees it.  While no hook is
active they cost one attribute check per publish.  A broker serves one event loop at a time.

The package's modules, from the bottom layer up (each imports only modules listed before
it): ``unmodelled`` (what nats-server answers itself, which this broker does not model),
``sublist`` (the subject trie), ``seeding`` (replayable randomness), ``inbox`` (inbox
ids), ``routing`` (the :class:`~transports.memory.routing.Receiver` protocol and the one
routing function), ``subscription``, ``gathering`` (scatter/gather that ends when every
receiver is done), ``outbox`` (what a disconnected connection holds until it
reconnects), ``connection`` (``MemoryTransport``, simulated outages included),
``recording``, ``faults`` (fault rules and the hooks in front of routing), ``idle``
(``wait_idle``), ``broker`` (``MemoryBroker``), and this module: the public names and the
named brokers.

Determinism: queue-group choice, inbox ids and probabilistic faults come from the broker's
seedable ``random.Random`` (unseeded: seeded from the global ``random`` module); under
hypothesis every broker generator is re-seeded per example (``transports.memory.seeding``),
so a failing example replays the same choices.

URLs: ``memory://`` is the process-wide default broker, ``memory://name`` a named one
(:func:`get_broker`); that registry is this module's only global state.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from transports.memory.broker import HandlerFailure, MemoryBroker
from transports.memory.connection import MemoryTransport
from transports.memory.faults import FaultRule
from transports.memory.recording import RecordedMessage, Recording, Traffic
from transports.memory.subscription import MemorySubscription
from transports.memory.unmodelled import NotModelledError
from transports.urls import redact_url

__all__ = [
    "FaultRule",
    "HandlerFailure",
    "MemoryBroker",
    "MemorySubscription",
    "MemoryTransport",
    "NotModelledError",
    "RecordedMessage",
    "Recording",
    "Traffic",
    "connect_url",
    "get_broker",
]

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
    ``options`` go to :meth:`MemoryBroker.connect` (e.g. ``name=`` for the connection),
    except ``retry_on_failed_connect`` (the NATS transport's option), accepted and ignored:
    connecting to an in-process broker does not fail, so the same options serve both.
    Raises ``ValueError`` naming the URL when it is not of that form.
    """
    options.pop("retry_on_failed_connect", None)
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
            f"invalid memory URL {redact_url(url)!r}: "
            "expected 'memory://' or 'memory://<broker name>'"
        )
    return await get_broker(parts.netloc).connect(**options)
