"""Tiny benchmark harness: interleaved rounds, min / median per case, markdown output.

The machine is shared and noisy, so every comparison is a ratio between cases measured
in the same run, in interleaved rounds (case A, case B, case A, case B, ...).
"""

from __future__ import annotations

import statistics
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Case = Callable[[], Awaitable[float]]
"""A coroutine function that runs one measurement and returns microseconds per operation."""


@dataclass
class Result:
    name: str
    samples: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def cell(self) -> str:
        return f"{self.best:,.1f} / {self.median:,.1f}"


async def run_interleaved(cases: dict[str, Case], rounds: int = 3) -> dict[str, Result]:
    """Run every case once per round, in order, ``rounds`` times."""
    results = {name: Result(name) for name in cases}
    for _ in range(rounds):
        for name, case in cases.items():
            results[name].samples.append(await case())
    return results


def table(results: dict[str, Result], unit: str = "µs/op") -> str:
    lines = [f"| case | {unit}, min / median |", "|---|---|"]
    lines += [f"| {r.name} | {r.cell()} |" for r in results.values()]
    return "\n".join(lines)


def ratio(results: dict[str, Result], slow: str, fast: str) -> float:
    """How many times faster ``fast`` is than ``slow`` (medians)."""
    return results[slow].median / results[fast].median
