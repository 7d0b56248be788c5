"""Replayable randomness for the in-memory broker under hypothesis.

A broker draws queue-group members (and probabilistic faults) from its own
``random.Random``.  Two things make those draws replay when a hypothesis example fails:

* a broker created without ``seed``/``rng`` seeds its generator from the global ``random``
  module, which hypothesis seeds for every example (outside hypothesis, ``random.seed()``
  in a test does the same);
* when hypothesis is imported, every broker generator joins :data:`BROKER_RANDOMS`, one
  Random-like object registered once with ``hypothesis.register_random``: hypothesis
  re-seeds all live broker generators at the start of each example and restores them
  after, so a broker made by a fixture outside the examples replays too.

(Registering each generator separately would cost a full ``gc.collect()`` per broker.)
"""

from __future__ import annotations

import random
import sys
import weakref
from typing import Any

__all__ = ["BROKER_RANDOMS", "BrokerRandoms", "new_rng", "track"]


class BrokerRandoms:
    """Every live broker generator, seeded and restored together (Random-like: ``seed``,
    ``getstate``, ``setstate``)."""

    def __init__(self) -> None:
        self._live: weakref.WeakSet[random.Random] = weakref.WeakSet()
        self._registered = False

    def __len__(self) -> int:
        return len(self._live)

    def add(self, rng: random.Random) -> None:
        """Manage ``rng`` from now on; registers with hypothesis on first use."""
        self._live.add(rng)
        if not self._registered:
            from hypothesis import register_random

            register_random(self)
            self._registered = True

    def seed(self, a: Any = None) -> None:
        for rng in list(self._live):
            rng.seed(a)

    def getstate(self) -> list[tuple[random.Random, Any]]:
        return [(rng, rng.getstate()) for rng in list(self._live)]

    def setstate(self, state: list[tuple[random.Random, Any]]) -> None:
        for rng, saved in state:
            rng.setstate(saved)


BROKER_RANDOMS = BrokerRandoms()
"""The process-wide manager (module state: it only holds weak references)."""


def new_rng(seed: int | None) -> random.Random:
    """A broker generator: from ``seed``, or seeded from the global ``random`` module."""
    return random.Random(random.getrandbits(64) if seed is None else seed)


def track(rng: random.Random) -> None:
    """Let hypothesis re-seed ``rng`` per example, if hypothesis is in use."""
    if "hypothesis" in sys.modules:
        BROKER_RANDOMS.add(rng)
