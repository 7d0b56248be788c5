"""Backends for the conformance suites: one fresh memory broker, or the session's nats-server.

Each fixture yields a :class:`~testing.conformance.backend.ConformanceBackend` and closes every
connection it made after the test.  Bindings (``test_*_memory.py``, ``test_*_nats.py``) pick one.
The suites' own ``assert`` statements get pytest's rewriting (readable failures) when they are
imported here first.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from testing.conformance.backend import ConformanceBackend, MemoryBackend, NatsBackend

_SUITES = ("testing.conformance.transport", "testing.differential")
pytest.register_assert_rewrite(*(name for name in _SUITES if name not in sys.modules))


@pytest.fixture
async def memory_backend() -> AsyncIterator[ConformanceBackend]:
    backend = MemoryBackend()
    yield backend
    await backend.aclose()


@pytest.fixture
async def nats_backend(micro_nats_server: Any) -> AsyncIterator[ConformanceBackend]:
    backend = NatsBackend(micro_nats_server.url)
    yield backend
    await backend.aclose()
