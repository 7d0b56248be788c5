"""What every conformance suite (transport, service, client) shares: the bounds of its waits
and the base class of its test classes."""

from __future__ import annotations

import pytest

from testing.conformance.backend import CAP_TRIO, ConformanceBackend

__all__ = ["QUIET", "WAIT", "SuiteBase"]

WAIT = 10.0
"""Upper bound (seconds) of any wait for something that must happen; generous for busy CI
machines."""

QUIET = 0.1
"""Bounded wait (seconds) for something that must NOT happen."""


class SuiteBase:
    """The anyio marker, and the skip by declared capability (never by transport name)."""

    pytestmark = pytest.mark.anyio

    @pytest.fixture(autouse=True)
    def _declared_capabilities(
        self, conformance_backend: ConformanceBackend, anyio_backend_name: str
    ) -> None:
        if anyio_backend_name == "trio" and CAP_TRIO not in conformance_backend.capabilities:
            pytest.skip("the backend does not declare the 'trio' capability")
