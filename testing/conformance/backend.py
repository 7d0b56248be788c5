"""What a conformance suite needs from a transport: a factory of connections to one broker.

A test suite (``testing.conformance.transport``, ``testing.conformance.service``) receives a
:class:`ConformanceBackend` through the fixture ``conformance_backend`` and calls
``await backend.connect()`` for every connection it needs; all connections of one backend
reach the same broker or server, exactly like processes sharing a nats-server.  The
backend closes every connection it made in :meth:`ConformanceBackend.aclose`.

Suites skip by *declared capability* (``backend.capabilities``), never by transport name.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from typing import Any

from transports.base import Transport

__all__ = [
    "CAP_THREADS",
    "CAP_TRIO",
    "ConformanceBackend",
    "FactoryBackend",
    "MemoryBackend",
    "NatsBackend",
]

CAP_TRIO = "trio"
"""The transport works under trio as well as asyncio."""

CAP_THREADS = "threads"
"""Connections made on other threads, each on its own event loop, reach the same broker
(``ThreadCases``)."""


class ConformanceBackend(abc.ABC):
    """A source of fresh connections to one broker, plus declared capabilities."""

    capabilities: frozenset[str] = frozenset()
    """Optional features the transport declares (e.g. :data:`CAP_TRIO`)."""

    def __init__(self) -> None:
        self._made: list[Transport] = []

    @abc.abstractmethod
    async def _connect(self, **options: Any) -> Transport:
        """Open one new connection to the backend's broker."""

    async def connect(self, **options: Any) -> Transport:
        """A new connection to the same broker as every other ``connect()`` of this backend."""
        transport = await self._connect(**options)
        self._made.append(transport)
        return transport

    async def aclose(self) -> None:
        """Close every connection this backend made (already-closed ones are skipped)."""
        made, self._made = self._made, []
        for transport in reversed(made):
            if not transport.is_closed:
                await transport.close()


class FactoryBackend(ConformanceBackend):
    """A backend around any ``async factory(**options) -> Transport``: the few lines a
    third-party transport needs to run our suites."""

    def __init__(
        self,
        factory: Callable[..., Awaitable[Transport]],
        capabilities: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__()
        self._factory = factory
        self.capabilities = capabilities

    async def _connect(self, **options: Any) -> Transport:
        return await self._factory(**options)


class MemoryBackend(ConformanceBackend):
    """Connections to one fresh ``MemoryBroker`` (seeded, so queue choices replay)."""

    capabilities = frozenset({CAP_TRIO, CAP_THREADS})

    def __init__(self, seed: int = 0, **broker_options: Any) -> None:
        super().__init__()
        from transports.memory import MemoryBroker

        self.broker = MemoryBroker(seed=seed, **broker_options)

    async def _connect(self, **options: Any) -> Transport:
        return await self.broker.connect(**options)


class NatsBackend(ConformanceBackend):
    """Connections to one real nats-server at ``url`` (asyncio only)."""

    capabilities = frozenset({CAP_THREADS})

    def __init__(self, url: str, **connect_options: Any) -> None:
        super().__init__()
        self.url = url
        self._connect_options = connect_options

    async def _connect(self, **options: Any) -> Transport:
        from transports.nats import NatsTransport

        return await NatsTransport.connect(self.url, **{**self._connect_options, **options})
