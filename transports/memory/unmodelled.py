"""What the in-memory broker does not model: features nats-server provides itself.

nats-server answers some requests on its own (its system account's ``$SYS.REQ.`` services,
JetStream's ``$JS.API.`` and the other JetStream prefixes) and offers features a plain
broker has no part of (message tracing with ``Nats-Trace-Dest``).  The in-memory broker
routes such subjects like any other: with no subscriber, a request gets "no responders".
A test that relies on one of them would pass or fail for the wrong reason, so in strict
mode (``MemoryBroker(strict=True)``, the pytest plugin's default) such a request raises
:class:`NotModelledError` naming the feature instead.

The list is also in ``docs/testing.md`` ("What the memory broker does not model").
"""

from __future__ import annotations

from transports.base import TransportError

__all__ = ["SERVER_ANSWERED", "NotModelledError", "unmodelled_feature"]

SERVER_ANSWERED: tuple[tuple[str, str], ...] = (
    ("$SYS.REQ.", "nats-server's system services ($SYS.REQ.*)"),
    ("$JS.API.", "the JetStream API ($JS.API.*)"),
    ("$JS.ACK.", "JetStream acknowledgements ($JS.ACK.*)"),
    ("$JS.FC.", "JetStream flow control ($JS.FC.*)"),
    ("$KV.", "JetStream key-value buckets ($KV.*)"),
    ("$O.", "JetStream object stores ($O.*)"),
)
"""Subject prefixes nats-server (with JetStream or its system account) answers itself."""


class NotModelledError(TransportError):
    """A request needs a nats-server feature the in-memory broker does not model."""

    def __init__(self, subject: str, feature: str) -> None:
        super().__init__(
            f"request to {subject!r} needs {feature}, which the in-memory broker does not "
            "model (nats-server answers it itself); subscribe a stand-in responder, or test "
            "this part against a real server (testing.NatsServer)"
        )
        self.subject = subject
        self.feature = feature


def unmodelled_feature(subject: str) -> str | None:
    """The feature a request to ``subject`` would need from nats-server, if any."""
    if subject[:1] != "$":
        return None
    for prefix, feature in SERVER_ANSWERED:
        if subject.startswith(prefix):
            return feature
    return None
