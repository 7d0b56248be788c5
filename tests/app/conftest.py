"""Fixtures of the App tests: a fresh named memory broker per test, and a client on it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from transports.base import Transport
from transports.memory import get_broker


@pytest.fixture
def broker_name() -> str:
    return f"app-test-{uuid.uuid4().hex}"


@pytest.fixture
def url(broker_name: str) -> str:
    """A ``memory://`` URL naming a broker no other test uses."""
    return f"memory://{broker_name}"


@pytest.fixture
async def client(broker_name: str) -> AsyncIterator[Transport]:
    """A second connection to the test's broker (another 'process')."""
    connection = await get_broker(broker_name).connect(name="client")
    yield connection
    await connection.close()
