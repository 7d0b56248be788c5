"""The production transport: nats-py behind the ``Transport`` seam (asyncio only).

This package is the only one that imports ``nats`` (nats-py; ``tests/test_import_isolation.py``
checks it), and importing ``transports`` or ``micro`` does not import it: ``transports.connect``
loads it for a ``nats://`` URL, ``micro`` when it is handed a nats-py client.  Its modules:

* ``connection``: :class:`NatsTransport`, the ``Transport`` itself;
* ``connect``: connect options, the server list, and when a first connect gives up;
* ``subscription``: :class:`NatsSubscription` and :class:`NatsMultiSubscription`;
* ``table``: the subscriptions of one connection by sid, and the server's errors about them;
* ``incoming``: our ``Msg`` built by nats-py's reader, and messages it cannot read made harmless;
* ``barrier``: the coalescing PING/PONG barrier after ``SUB``, ``UNSUB`` and flush;
* ``errors``: nats-py's exceptions mapped into the ``transports.base`` error tree.

nats-py internals used where its API falls short (pinned by ``test_nats_internals_we_rely_on``):

* a barrier after SUB, UNSUB and flush: nats-py's ``flush()`` writes its PING straight to the
  socket, possibly *ahead* of commands still queued for its flusher task (``Client._pending``),
  so one flush is no barrier.  We hand those to the socket first, then PING ourselves
  (``barrier``, via ``Client._pongs``): one round trip, shared by every barrier asked for in
  the same event-loop turn;
* ``Client.msg_class`` builds our ``Msg`` directly for our subscriptions (one object per
  message); a ``Subscription``'s queue and counters (``subscription``; the nats-py
  subscriptions of a ``subscribe_many`` are made to share one queue);
* ``Client._remove_sub`` (drain keeps in-flight messages), ``_flush_queue`` (an UNSUB sent
  without waiting) and ``Client._resp_map`` / ``_pongs`` (requests and barriers fail on close);
* ``Client._ps.parse``, ``_process_headers`` and ``_build_message`` are wrapped
  (``incoming.guard_incoming``): a message line nats-py cannot parse makes it reconnect, and a
  header block or subject it cannot decode kills its reader silently; any client on the
  network can send such messages.  We drop them (or their headers) and report an ``ERROR``
  event.
"""

from transports.nats.connection import NatsTransport, connect_url
from transports.nats.subscription import NatsMultiSubscription, NatsSubscription

__all__ = ["NatsMultiSubscription", "NatsSubscription", "NatsTransport", "connect_url"]
