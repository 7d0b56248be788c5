"""Differential routing: the memory broker, a real nats-server and the oracle must agree.

Hypothesis generates routing programs (subscriptions with wildcards over a small alphabet,
some in queue groups with several members, publishes, unsubscribes between them); each one
runs on a fresh ``MemoryBroker`` and on fresh connections to the session's nats-server
(``testing.differential.run_program``), and both observations must equal the prediction of
``transports.subjects.matches`` plus the queue rule (``testing.differential.predict``).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings

from testing import strategies as mst
from testing.conformance.backend import ConformanceBackend, MemoryBackend, NatsBackend
from testing.differential import (
    Observations,
    Publish,
    RoutingProgram,
    Subscribe,
    Unsubscribe,
    predict,
    run_program,
)

pytestmark = pytest.mark.anyio


def _program(*steps: Subscribe | Publish | Unsubscribe) -> RoutingProgram:
    return RoutingProgram(tuple(steps))


CLASSIC = {
    "wildcards": _program(
        Subscribe("a.*"),
        Subscribe("a.>"),
        Subscribe(">"),
        Subscribe("*.b"),
        Subscribe("a"),
        *(Publish(s) for s in ("a", "a.b", "a.b.c", "b.b", "c")),
    ),
    "queue_groups_with_plain": _program(
        Subscribe("a.>", "q1"),
        Subscribe("a.>", "q1"),
        Subscribe("a.*", "q2"),
        Subscribe("a.b", "q2"),
        Subscribe("a.b"),
        *(Publish("a.b") for _ in range(6)),
        Publish("a.c.c"),
    ),
    "queue_member_leaves": _program(
        Subscribe("a", "q1"),
        Subscribe("a", "q1"),
        Subscribe("a.>", "q1"),
        *(Publish("a") for _ in range(5)),
        Unsubscribe(0),
        *(Publish("a") for _ in range(20)),
        Unsubscribe(1),
        *(Publish(s) for s in ("a", "a.b") * 10),
    ),
    "unsubscribe_twice_and_resubscribe": _program(
        Subscribe("b.*"),
        Publish("b.a"),
        Unsubscribe(0),
        Unsubscribe(0),
        Publish("b.a"),
        Subscribe("b.*"),
        Publish("b.a"),
    ),
    "nobody_listens": _program(Publish("a"), Publish("a.b.c")),
}


def _check(program: RoutingProgram, name: str, observed: Observations) -> None:
    expected = predict(program)
    assert observed.anomalies == (), f"{name}: {observed.anomalies}"
    assert observed == expected, f"{name} differs from the oracle: " + "; ".join(
        observed.differences(expected)
    )


async def _observe(backend: ConformanceBackend, program: RoutingProgram) -> Observations:
    try:
        return await run_program(backend.connect, program)
    finally:
        await backend.aclose()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _with_classics(test: Any) -> Any:
    for program in CLASSIC.values():
        test = example(program=program)(test)
    return test


@pytest.mark.timeout(300)  # a failure is shrunk on the real server: give it time to finish
@settings(max_examples=200)
@_with_classics
@given(program=mst.routing_programs())
async def test_memory_and_nats_route_like_the_oracle(
    micro_nats_server: Any, program: RoutingProgram
) -> None:
    memory = await _observe(MemoryBackend(), program)
    nats = await _observe(NatsBackend(micro_nats_server.url), program)
    _check(program, "memory", memory)
    _check(program, "nats", nats)


@pytest.mark.parametrize("name", list(CLASSIC))
async def test_classic_programs_repeatedly(micro_nats_server: Any, name: str) -> None:
    """Races (e.g. an unsubscribe not yet seen by the server) show up only sometimes, so
    the classic programs run several times each on both transports."""
    program = CLASSIC[name]
    for _ in range(10):
        _check(program, "memory", await _observe(MemoryBackend(), program))
        _check(program, "nats", await _observe(NatsBackend(micro_nats_server.url), program))


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@settings(max_examples=100)
@_with_classics
@given(program=mst.routing_programs(max_steps=60))
async def test_memory_routes_like_the_oracle(program: RoutingProgram) -> None:
    _check(program, "memory", await _observe(MemoryBackend(), program))


def test_classic_programs_predict_what_a_person_would() -> None:
    wildcards = predict(CLASSIC["wildcards"])
    assert wildcards.plain == {
        0: ((1, "a.b"),),
        1: ((1, "a.b"), (2, "a.b.c")),
        2: ((0, "a"), (1, "a.b"), (2, "a.b.c"), (3, "b.b"), (4, "c")),
        3: ((1, "a.b"), (3, "b.b")),
        4: ((0, "a"),),
    }
    member_leaves = predict(CLASSIC["queue_member_leaves"])
    assert member_leaves.groups == {
        "q1": (*((n, "a") for n in range(25)), *((n, "a.b") for n in range(26, 45, 2)))
    }
    queues = predict(CLASSIC["queue_groups_with_plain"])
    assert queues.groups["q1"] == (*((n, "a.b") for n in range(6)), (6, "a.c.c"))
    assert queues.groups["q2"] == tuple((n, "a.b") for n in range(6))
    assert queues.plain == {4: tuple((n, "a.b") for n in range(6))}


def test_a_program_must_unsubscribe_an_existing_subscription() -> None:
    with pytest.raises(ValueError, match="Unsubscribe"):
        _program(Subscribe("a"), Unsubscribe(1))
