"""The service conformance suite on a transport WITHOUT the optional extensions.

``micro`` uses ``subscribe_many`` (``transports.extensions``) where a transport offers it,
and one subscription per control subject otherwise.  The memory and NATS bindings cover
the first path; this binding covers the second: the memory broker behind
``TappedTransport``, which delegates only the ``Transport`` protocol itself (as a
third-party transport that implements nothing optional would).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from testing.conformance._tapped_transport import TappedTransport
from testing.conformance.backend import ConformanceBackend, MemoryBackend
from testing.conformance.service import ServiceConformance
from transports.base import Transport
from transports.extensions import HandlerErrorSink, HandlerTracker, MultiSubjectSubscriber


class PlainMemoryBackend(MemoryBackend):
    """Memory connections with only the ``Transport`` protocol visible."""

    async def _connect(self, **options: Any) -> Transport:
        return TappedTransport(await super()._connect(**options))


class TestServiceOnAPlainTransport(ServiceConformance):
    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    async def conformance_backend(self) -> AsyncIterator[ConformanceBackend]:
        backend = PlainMemoryBackend()
        yield backend
        await backend.aclose()


@pytest.mark.anyio
async def test_the_plain_transport_offers_no_extension() -> None:
    backend = PlainMemoryBackend()
    try:
        connection = await backend.connect()
        for extension in (MultiSubjectSubscriber, HandlerErrorSink, HandlerTracker):
            assert not isinstance(connection, extension)
    finally:
        await backend.aclose()
