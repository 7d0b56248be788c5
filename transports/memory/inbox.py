"""Inbox ids of the in-memory broker (``transports.memory``): NUID-shaped, seeded."""

from __future__ import annotations

import random

__all__ = ["Nuid"]

_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SEQ_MAX = 62**10


class Nuid:
    """22-character NUID-style ids (12 random base-62 chars + a 10-char sequence)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._prefix = ""
        self._seq = 0
        self._step = 0
        self._reset()

    def _reset(self) -> None:
        rng = self._rng
        self._prefix = "".join(rng.choice(_DIGITS) for _ in range(12))
        self._seq = rng.randrange(_SEQ_MAX)
        self._step = rng.randrange(33, 333)

    def next(self) -> str:
        """The next id; unique per instance (the prefix is re-drawn when the sequence wraps)."""
        self._seq += self._step
        if self._seq >= _SEQ_MAX:
            self._reset()
        value, digits = self._seq, []
        for _ in range(10):
            value, digit = divmod(value, 62)
            digits.append(_DIGITS[digit])
        return self._prefix + "".join(reversed(digits))
