"""Traffic recording for the in-memory broker (``MemoryBroker.record()``).

A :class:`Recording` sees every message *published* to its broker while it is active --
service requests, replies to inboxes, ``$SRV`` discovery traffic, everything -- at the moment
the broker receives it (before any fault rule acts on it), in broker order.  Queries return
:class:`Traffic`, a list of :class:`RecordedMessage` with the same query methods, so they
chain::

    with broker.record() as traffic:
        ...
    assert traffic.matching("orders.>").requests().unanswered() == []

Messages a broker generates itself (the no-responders ``503`` status) are not publishes and
are not recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType

from transports.base import Headers, Msg
from transports.memory.connection import MemoryTransport
from transports.subjects import matches, validate_pattern

__all__ = ["RecordedMessage", "Recording", "Traffic"]


@dataclass(frozen=True, slots=True)
class RecordedMessage:
    """One published message as the broker received it.

    ``seq`` orders messages across the whole broker (from 1); ``connection`` is the
    publishing :class:`~transports.memory.MemoryTransport`; ``headers`` is a private copy
    (``None`` when there were none).
    """

    seq: int
    connection: MemoryTransport
    subject: str
    data: bytes
    headers: Headers | None
    reply: str | None

    @property
    def is_request(self) -> bool:
        """True when the message carries a reply subject."""
        return self.reply is not None

    @property
    def msg(self) -> Msg:
        """The message as a :class:`~transports.base.Msg`."""
        return Msg(self.subject, self.data, self.headers, self.reply)

    def __repr__(self) -> str:
        reply = f" reply={self.reply!r}" if self.reply else ""
        headers = f" headers={dict(self.headers)!r}" if self.headers else ""
        return (
            f"<#{self.seq} cid={self.connection.cid} {self.subject!r}{reply}{headers} "
            f"data={self.data[:40]!r}{'...' if len(self.data) > 40 else ''}>"
        )


class Traffic(list[RecordedMessage]):
    """A list of recorded messages (in broker order) with queries that return more Traffic.

    Reply lookups (:meth:`replies_to`, :meth:`unanswered`) search the whole recording the
    messages came from, not just this selection.
    """

    def __init__(
        self, items: Iterable[RecordedMessage] = (), source: list[RecordedMessage] | None = None
    ) -> None:
        super().__init__(items)
        self._source = self if source is None else source

    def _select(self, items: Iterable[RecordedMessage]) -> Traffic:
        return Traffic(items, self._source)

    def matching(self, pattern: str) -> Traffic:
        """Messages whose subject matches ``pattern`` (wildcards allowed: ``orders.>``).

        Raises ``BadSubjectError`` for an invalid pattern.
        """
        validate_pattern(pattern)
        return self._select(m for m in self if matches(pattern, m.subject))

    def excluding(self, pattern: str) -> Traffic:
        """Messages whose subject does *not* match ``pattern`` (e.g. ``"$SRV.>"``)."""
        validate_pattern(pattern)
        return self._select(m for m in self if not matches(pattern, m.subject))

    def from_connection(self, connection: MemoryTransport) -> Traffic:
        """Messages published by ``connection``."""
        return self._select(m for m in self if m.connection is connection)

    def requests(self) -> Traffic:
        """Messages that carry a reply subject."""
        return self._select(m for m in self if m.reply is not None)

    def replies_to(self, request: RecordedMessage) -> Traffic:
        """Messages published to ``request.reply`` after ``request`` (empty for a message
        without a reply subject)."""
        if request.reply is None:
            return self._select(())
        return self._select(
            m for m in self._source if m.seq > request.seq and m.subject == request.reply
        )

    def unanswered(self) -> Traffic:
        """The requests among these messages that nobody published a reply to (a handler
        that forgot to respond, a lost reply...)."""
        published_to = {m.subject for m in self._source}
        return self._select(
            m
            for m in self
            if m.reply is not None and (m.reply not in published_to or not self.replies_to(m))
        )

    def subjects(self) -> list[str]:
        """The subjects, in order."""
        return [m.subject for m in self]

    def payloads(self) -> list[bytes]:
        """The payloads, in order."""
        return [m.data for m in self]


class Recording(Traffic):
    """Live recording of a broker's traffic; a :class:`Traffic` that grows while active.

    Created by ``MemoryBroker.record()``; use it as a context manager (or call
    :meth:`stop`) to stop recording.  Recording costs nothing once stopped.
    """

    def __init__(self, on_stop: Callable[[Recording], None]) -> None:
        """``on_stop``: called once, by :meth:`stop` (the broker stops feeding it)."""
        super().__init__()
        self._on_stop = on_stop
        self._active = True

    @property
    def active(self) -> bool:
        """True until :meth:`stop`."""
        return self._active

    def stop(self) -> None:
        """Stop recording (what was recorded stays).  Idempotent."""
        if self._active:
            self._active = False
            self._on_stop(self)

    def record(self, seq: int, origin: MemoryTransport, msg: Msg) -> None:
        """Record ``msg`` as published by ``origin`` (called by the broker's hooks)."""
        headers: Mapping[str, str] | None = msg.headers
        self.append(
            RecordedMessage(
                seq,
                origin,
                msg.subject,
                msg.data,
                None if headers is None else dict(headers),
                msg.reply,
            )
        )

    def __enter__(self) -> Recording:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "active" if self._active else "stopped"
        return f"<Recording {state}, {len(self)} message(s)>"
