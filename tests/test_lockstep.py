"""The lockstep machine (``testing.lockstep``): the in-memory broker against nats-server.

The step budget is ``MICRO_LOCKSTEP_STEPS`` (default 2,000) for the asyncio run, a quarter
of it for the trio run; raise it for long runs, e.g. ``MICRO_LOCKSTEP_STEPS=20000``.
"""

from __future__ import annotations

from typing import Any

import pytest

from testing.lockstep import (
    DEFAULT_STEPS,
    STEPS_VARIABLE,
    LockstepDifference,
    Side,
    configured_steps,
    memory_side,
    nats_side,
    run_lockstep,
)
from testing.nats_server import NatsServer
from transports.base import Transport
from transports.memory import MemoryBroker


def test_memory_broker_on_asyncio_behaves_like_nats_server(
    micro_nats_server: NatsServer,
) -> None:
    run = run_lockstep(memory_side("asyncio"), nats_side(micro_nats_server.url))
    assert run.steps >= configured_steps(None)
    assert run.messages > 0


def test_memory_broker_on_trio_behaves_like_nats_server(micro_nats_server: NatsServer) -> None:
    run = run_lockstep(
        memory_side("trio"),
        nats_side(micro_nats_server.url),
        steps=max(1, configured_steps(None) // 4),
    )
    assert run.steps > 0


class _DropsHeaders:
    """A transport that loses the headers of what it publishes (a planted bug)."""

    def __init__(self, inner: Transport) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def publish(
        self, subject: str, data: bytes = b"", *, reply: str | None = None, headers: Any = None
    ) -> None:
        await self._inner.publish(subject, data, reply=reply)


def _headers_dropped() -> Side:
    def connector() -> Any:
        broker = MemoryBroker()

        async def connect() -> Transport:
            return _DropsHeaders(await broker.connect())

        return connect

    return Side("memory, headers dropped", connector)


def test_a_planted_difference_is_found_and_named() -> None:
    """A transport that drops published headers, against the memory broker: the machine
    must notice, and say what differed after which step."""
    with pytest.raises(LockstepDifference) as caught:
        run_lockstep(_headers_dropped(), memory_side(), steps=1_000, shrink=False)
    assert caught.value.step.startswith(("publish", "subscription", "drain", "take"))
    assert caught.value.left != caught.value.right


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
