"""Differential routing: the memory broker, a real nats-server and the oracle must agree.

Hypothesis generates routing programs (subscriptions with wildcards over a small alphabet,
some in queue groups with several members, publishes, requests, unsubscribes and drains
between them); each one runs on a fresh ``MemoryBroker`` and on fresh connections to the
session's nats-server, and both observations must equal the prediction of
``transports.subjects.matches`` plus the queue rule (``testing.differential.compare``).
CI runs at least 500 generated programs on both (``MAX_EXAMPLES``); the classic programs
below are kept as ``@example`` regressions.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings

from testing import strategies as mst
from testing.conformance.backend import MemoryBackend, NatsBackend
from testing.differential import (
    ANSWERED,
    NO_RESPONDERS,
    Drain,
    Observations,
    Publish,
    Request,
    RoutingDifference,
    RoutingProgram,
    Subscribe,
    Unsubscribe,
    compare,
    predict,
    run_program,
)
from transports.memory import MemoryBroker

pytestmark = pytest.mark.anyio

MAX_EXAMPLES = 500
"""Generated programs run on memory and on nats-server per CI run."""


def _program(*steps: Subscribe | Publish | Request | Unsubscribe | Drain) -> RoutingProgram:
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
    "requests_answered_or_not": _program(
        Request("a"),
        Subscribe("a", "q1"),
        Subscribe("a", "q1"),
        Request("a"),
        Request("b"),
        Subscribe("*"),
        Request("b"),
        Unsubscribe(2),
        Request("b"),
    ),
    "drain_keeps_the_buffer": _program(
        Subscribe("a.>"),
        Subscribe("a.>", "q1"),
        *(Publish("a.b") for _ in range(4)),
        Request("a.b"),
        Drain(0),
        Publish("a.b"),
        Drain(1),
        Drain(1),
        Request("a.b"),
        Publish("a.b"),
    ),
    "request_caught_by_a_wide_pattern": _program(Subscribe(">"), Request("a"), Subscribe("*.*")),
}


async def _compare(program: RoutingProgram, nats_url: str | None) -> None:
    memory = MemoryBackend()
    connects: dict[str, Any] = {"memory": memory.connect}
    nats = None
    if nats_url is not None:
        nats = NatsBackend(nats_url)
        connects["nats"] = nats.connect
    try:
        await compare(program, connects)
    finally:
        await memory.aclose()
        if nats is not None:
            await nats.aclose()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _with_classics(test: Any) -> Any:
    for program in CLASSIC.values():
        test = example(program=program)(test)
    return test


@pytest.mark.timeout(300)  # a failure is shrunk on the real server: give it time to finish
@settings(max_examples=MAX_EXAMPLES)
@_with_classics
@given(program=mst.routing_programs())
async def test_memory_and_nats_route_like_the_oracle(
    micro_nats_server: Any, program: RoutingProgram
) -> None:
    await _compare(program, micro_nats_server.url)


@pytest.mark.parametrize("name", list(CLASSIC))
async def test_classic_programs_repeatedly(micro_nats_server: Any, name: str) -> None:
    """Races (e.g. an unsubscribe not yet seen by the server) show up only sometimes, so
    the classic programs run several times each on both transports."""
    for _ in range(5):
        await _compare(CLASSIC[name], micro_nats_server.url)


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@settings(max_examples=100)
@_with_classics
@given(program=mst.routing_programs(max_steps=60))
async def test_memory_routes_like_the_oracle(program: RoutingProgram) -> None:
    await _compare(program, None)


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
    requests = predict(CLASSIC["requests_answered_or_not"])
    assert requests.replies == {
        0: NO_RESPONDERS,
        1: ANSWERED,
        2: NO_RESPONDERS,
        3: ANSWERED,
        4: NO_RESPONDERS,
    }
    drained = predict(CLASSIC["drain_keeps_the_buffer"])
    assert drained.plain == {0: tuple((n, "a.b") for n in range(5))}
    assert drained.groups == {"q1": tuple((n, "a.b") for n in range(6))}
    assert drained.replies == {4: ANSWERED, 6: NO_RESPONDERS}


def test_a_program_must_name_existing_subscriptions_and_keep_off_inboxes() -> None:
    with pytest.raises(ValueError, match="Unsubscribe"):
        _program(Subscribe("a"), Unsubscribe(1))
    with pytest.raises(ValueError, match="Drain"):
        _program(Drain(0))
    with pytest.raises(ValueError, match="_INBOX"):
        _program(Publish("_INBOX.x"))


async def test_compare_reports_a_broker_that_routes_wrongly() -> None:
    """The harness can fail: a broker that loses every message to a queue group differs."""
    program = CLASSIC["queue_groups_with_plain"]
    broken = MemoryBroker(seed=1)
    broken.drop("a.c.c")  # a routing bug, simulated with a fault rule
    with pytest.raises(RoutingDifference) as caught:
        await compare(program, {"broken": broken.connect})
    difference = caught.value
    assert difference.differences == [
        "broken: queue group 'q1': "
        f"{tuple((n, 'a.b') for n in range(6))} != {predict(program).groups['q1']}"
    ]
    assert "broken" in difference.observed
    assert isinstance(difference.observed["broken"], Observations)
    with pytest.raises(ValueError, match="at least one"):
        await compare(program, {})


async def test_run_program_observes_anomalies_without_an_oracle() -> None:
    broker = MemoryBroker(seed=2)
    broker.duplicate("a")
    got = await run_program(broker.connect, _program(Subscribe("a"), Publish("a")))
    assert got.anomalies == ("#0 got publish 0 after publish 0", "#0 got (0, 'a') 2 times")
