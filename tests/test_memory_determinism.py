"""Queue-group choices replay: seeded brokers, unseeded brokers under ``random.seed``, and
brokers made outside hypothesis examples (re-seeded per example through
``hypothesis.register_random``)."""

from __future__ import annotations

import random

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transports.memory import MemoryBroker
from transports.memory.seeding import BROKER_RANDOMS


async def _choices(broker: MemoryBroker, count: int = 30) -> list[int]:
    """Which of three queue members got each of ``count`` messages."""
    subscriber = await broker.connect()
    publisher = await broker.connect()
    members = [await subscriber.subscribe("work", queue="q") for _ in range(3)]
    for number in range(count):
        await publisher.publish("work", str(number).encode())
    owner: dict[int, int] = {}
    for index, member in enumerate(members):
        for _ in range(member.pending_msgs):
            owner[int((await member.next_msg(timeout=1)).data)] = index
    await subscriber.close()
    await publisher.close()
    return [owner[number] for number in range(count)]


@pytest.mark.anyio
async def test_an_unseeded_broker_follows_the_global_random_seed() -> None:
    random.seed(42)
    first = await _choices(MemoryBroker())
    random.seed(42)
    assert await _choices(MemoryBroker()) == first
    assert len(set(first)) == 3


def test_a_broker_made_outside_the_examples_replays_in_each_example() -> None:
    broker = MemoryBroker(seed=9)  # like a fixture: made once, used by every example
    seen: list[list[int]] = []

    @settings(max_examples=5, database=None)
    @given(st.integers())
    def each_example(_: int) -> None:
        seen.append(anyio.run(_choices, broker))

    each_example()
    assert len(seen) == 5
    assert all(choices == seen[0] for choices in seen), seen
    assert len(BROKER_RANDOMS) >= 1
    assert anyio.run(_choices, broker) != seen[0]  # outside hypothesis the stream goes on
