"""The event listeners of one connection: what ``Transport.add_event_listener`` keeps.

Both built-in transports hold one :class:`EventListeners` per connection.  When a listener
runs is each transport's business (nats-py's callbacks call them from its tasks; the memory
broker queues events and delivers them soon, never inside the call that caused them); how
they are kept, called and isolated from each other is the same everywhere and lives here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from transports.base import EventListener, TransportEvent

__all__ = ["EventListeners"]


class EventListeners:
    """Listeners in the order they were added; :meth:`emit` calls each of them in turn.

    A listener that raises is logged on ``logger`` (with its traceback) and does not stop
    the others, nor affect the connection.  The same callable may be added twice (it is then
    called twice per event); each ``add`` returns its own remover.
    """

    __slots__ = ("_listeners", "_logger", "_next_key")

    def __init__(self, logger: logging.Logger) -> None:
        self._listeners: dict[int, EventListener] = {}
        self._logger = logger
        self._next_key = 0

    def __bool__(self) -> bool:
        return bool(self._listeners)

    def add(self, listener: EventListener) -> Callable[[], None]:
        """Call ``listener`` for every later event; returns a function that removes it
        (idempotent).  Raises ``TypeError`` for something that is not callable."""
        if not callable(listener):
            raise TypeError(f"listener must be callable, got {type(listener).__name__}")
        self._next_key += 1
        key = self._next_key
        self._listeners[key] = listener

        def remove() -> None:
            self._listeners.pop(key, None)

        return remove

    def emit(self, event: TransportEvent) -> None:
        """Call every listener with ``event``, oldest first (those added during the call wait
        for the next event)."""
        for listener in list(self._listeners.values()):
            try:
                listener(event)
            except Exception:
                self._logger.exception("event listener %r failed on %r", listener, event)
