"""Service instance ids: NUID-style, 22 characters from ``[0-9A-Za-z]`` (ADR-32, Design).

The same shape as the ids of nats.go, nats.py and nats.js services.

An id is a 12-character random prefix followed by a 10-character base-62 sequence.
The sequence starts at a random value and grows by a random step (33..332); when
it would overflow, a fresh random prefix is drawn and the sequence restarts.  The
prefix comes from the operating system's CSPRNG, so ids from different processes
and hosts do not collide; within one generator the sequence makes them unique.

Ids are unpredictable enough to avoid collisions, **not** secret: consecutive ids
share their prefix.  Every id is a valid NATS subject token.
"""

from __future__ import annotations

import os
import random
import secrets
import threading
import weakref

__all__ = ["ALPHABET", "ID_LENGTH", "Nuid", "new_id"]

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
"""The 62 characters an id is made of."""

PREFIX_LENGTH = 12
SEQUENCE_LENGTH = 10
ID_LENGTH = PREFIX_LENGTH + SEQUENCE_LENGTH
"""Length of every id (22)."""

_BASE = len(ALPHABET)
_MAX_SEQUENCE = _BASE**SEQUENCE_LENGTH
_MIN_STEP = 33
_MAX_STEP = 333
# The 10 sequence digits are written as five 2-digit chunks looked up in this table.
_PAIR_BASE = _BASE * _BASE
_PAIRS = tuple(a + b for a in ALPHABET for b in ALPHABET)


def _encode(value: int, width: int) -> str:
    """``value`` in base 62 with exactly ``width`` digits (most significant first)."""
    digits = []
    for _ in range(width):
        value, digit = divmod(value, _BASE)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))


class Nuid:
    """A thread-safe generator of unique 22-character ids.

    ``rng`` is the source of randomness (prefix, start and step of the sequence);
    by default the OS CSPRNG (:class:`secrets.SystemRandom`).  Pass a seeded
    :class:`random.Random` only for reproducible tests.  Generators using the
    default source re-randomize after ``os.fork()`` so a child never repeats
    its parent's ids.
    """

    __slots__ = (
        "__weakref__",
        "_head",
        "_high",
        "_increment",
        "_lock",
        "_prefix",
        "_rng",
        "_sequence",
    )

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng: random.Random = rng if rng is not None else secrets.SystemRandom()
        self._lock = threading.Lock()
        self._prefix = ""
        self._sequence = 0
        self._increment = 0
        self._high = -1
        self._head = ""
        self._reset()
        if rng is None:
            _FORK_SENSITIVE.add(self)

    def _reset(self) -> None:
        """Draw a new prefix, sequence start and step (caller holds the lock or owns self)."""
        choice = self._rng.choice
        self._prefix = "".join(choice(ALPHABET) for _ in range(PREFIX_LENGTH))
        self._sequence = self._rng.randrange(_MAX_SEQUENCE)
        self._increment = self._rng.randrange(_MIN_STEP, _MAX_STEP)
        self._high = -1
        self._head = ""

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._reset()

    def next(self) -> str:
        """Return the next id: 22 characters from :data:`ALPHABET`, never repeated."""
        with self._lock:
            sequence = self._sequence + self._increment
            if sequence >= _MAX_SEQUENCE:
                self._reset()
                sequence = self._sequence
            self._sequence = sequence
            # The step (< 3844) rarely changes the high 8 digits: cache prefix + them.
            high, low = divmod(sequence, _PAIR_BASE)
            if high != self._high:
                self._high = high
                self._head = self._prefix + _encode(high, SEQUENCE_LENGTH - 2)
            return self._head + _PAIRS[low]

    __call__ = next


_FORK_SENSITIVE: weakref.WeakSet[Nuid] = weakref.WeakSet()


def _reseed_after_fork() -> None:
    for generator in list(_FORK_SENSITIVE):
        generator._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed_after_fork)

_DEFAULT = Nuid()


def new_id() -> str:
    """A fresh instance id from the process-wide :class:`Nuid`."""
    return _DEFAULT.next()
