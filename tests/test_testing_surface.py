"""The public surface of the testing toolkit and the transports, pinned by tests of
``__all__``."""

from __future__ import annotations

import importlib

import pytest

SURFACES = {
    "transports.nats": [
        "NatsMultiSubscription",
        "NatsSubscription",
        "NatsTransport",
        "connect_url",
    ],
    "testing": [
        "NatsServer",
        "NatsServerError",
        "NatsServerNotFound",
        "NoResponseError",
        "StubRequest",
        "StubResponse",
        "find_nats_server",
        "make_request",
    ],
    "testing.conformance": [
        "CAP_THREADS",
        "CAP_TRIO",
        "ClientConformance",
        "ConformanceBackend",
        "FactoryBackend",
        "MemoryBackend",
        "NatsBackend",
        "ServiceConformance",
        "TransportConformance",
    ],
    "testing.lockstep": [
        "DEFAULT_STEPS",
        "STEPS_VARIABLE",
        "LockstepDifference",
        "LockstepRun",
        "Side",
        "configured_steps",
        "memory_side",
        "nats_side",
        "run_lockstep",
    ],
    "testing.differential": [
        "ANSWERED",
        "NO_RESPONDERS",
        "Delivery",
        "Drain",
        "Observations",
        "Publish",
        "Request",
        "RoutingDifference",
        "RoutingProgram",
        "Step",
        "Subscribe",
        "Unsubscribe",
        "compare",
        "predict",
        "run_program",
    ],
    "testing.pytest_plugin": [
        "micro_broker",
        "micro_connect",
        "micro_leg",
        "micro_nats_cluster",
        "micro_nats_server",
        "micro_nats_transport",
        "micro_transport",
    ],
    "transports.memory": [
        "FaultRule",
        "HandlerFailure",
        "MemoryBroker",
        "MemorySubscription",
        "MemoryTransport",
        "NotModelledError",
        "RecordedMessage",
        "Recording",
        "Traffic",
        "connect_url",
        "get_broker",
    ],
}


@pytest.mark.parametrize("module_name", list(SURFACES))
def test_the_public_names_are_exactly_these(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert sorted(module.__all__) == sorted(SURFACES[module_name])
    for name in module.__all__:
        assert getattr(module, name) is not None, name


def test_the_testing_package_resolves_names_lazily() -> None:
    import testing

    assert testing.make_request.__name__ == "make_request"
    assert "make_request" in dir(testing)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        testing.nope  # type: ignore[attr-defined]  # noqa: B018


def test_memory_broker_conveniences_are_public_methods() -> None:
    from transports.memory import MemoryBroker, MemoryTransport

    for name in (
        "record", "wait_idle", "is_idle", "strict", "handler_failures", "take_handler_errors",
        "raise_handler_errors", "faults", "clear_faults", "drop", "delay", "duplicate",
        "reorder", "no_responders", "slow_consumer",
    ):  # fmt: skip
        assert hasattr(MemoryBroker, name), name
    for name in ("force_disconnect", "force_reconnect", "disconnected", "outbox_bytes"):
        assert hasattr(MemoryTransport, name), name
