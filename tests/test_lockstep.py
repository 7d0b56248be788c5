"""The lockstep machine (``testing.lockstep``): the in-memory broker against nats-server.

The step budget is ``MICRO_LOCKSTEP_STEPS`` (default 2,000) for the asyncio run, a quarter
of it for the trio run; raise it for long runs, e.g. ``MICRO_LOCKSTEP_STEPS=20000``.
"""

from __future__ import annotations

import pytest

from testing.lockstep import (
    DEFAULT_STEPS,
    STEPS_VARIABLE,
    LockstepDifference,
    configured_steps,
    memory_side,
    nats_side,
    run_lockstep,
)
from testing.nats_server import NatsServer


def test_memory_broker_on_asyncio_behaves_like_nats_server(
    micro_nats_server: NatsServer,
) -> None:
    run = run_lockstep(memory_side("asyncio"), nats_side(micro_nats_server.url))
    assert run.steps >= configured_steps(None) * 0.8  # hypothesis may end a program early
    assert run.messages > 0


def test_memory_broker_on_trio_behaves_like_nats_server(micro_nats_server: NatsServer) -> None:
    run = run_lockstep(
        memory_side("trio"),
        nats_side(micro_nats_server.url),
        steps=max(1, configured_steps(None) // 4),
    )
    assert run.steps > 0


def test_a_planted_difference_is_found_and_named() -> None:
    """Two memory brokers that differ only in ``max_payload``: the machine must notice."""
    with pytest.raises(LockstepDifference) as caught:
        run_lockstep(memory_side(max_payload=2), memory_side(), steps=2_000)
    assert "MaxPayloadError" in str(caught.value)


def test_the_step_budget_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STEPS_VARIABLE, raising=False)
    assert configured_steps(None) == DEFAULT_STEPS == 2_000
    monkeypatch.setenv(STEPS_VARIABLE, "20000")
    assert configured_steps(None) == 20_000
    assert configured_steps(7) == 7
    for bad in ("lots", "0", "-5"):
        monkeypatch.setenv(STEPS_VARIABLE, bad)
        with pytest.raises(ValueError, match=STEPS_VARIABLE):
            configured_steps(None)
