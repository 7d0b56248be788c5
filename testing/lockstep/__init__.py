"""Lockstep model-based checking: the same Transport calls on two brokers, compared step by step.

The in-memory broker is only worth having if a test that passes on it passes on
nats-server.  This package checks that by machine: a hypothesis rule-based state machine
drives several connections on two transports at once with the whole ``Transport`` API
(publish with every payload type, headers and reply subjects; plain, queue and wildcard
subscriptions with pending limits; ``unsubscribe()`` and ``unsubscribe(limit)`` at any
point of a backlog; ``Subscription.drain``; ``Transport.drain``; requests with zero, one
or several responders; flush; close) and, after every step, compares the call's outcome
(value, or exception type and attributes) and everything observable after a barrier:
messages per subscription in order, counters, connection state and events.

Typical use, in a test with a real server (``micro_nats_server`` is a pytest-plugin fixture)::

    from testing.lockstep import memory_side, nats_side, run_lockstep

    def test_memory_broker_behaves_like_nats_server(micro_nats_server):
        run = run_lockstep(memory_side(), nats_side(micro_nats_server.url))
        assert run.steps >= 1

A transport author compares their own transport the same way: a :class:`Side` is a name,
a ``connector`` (called once per generated program on the side's loop, returning
``async connect() -> Transport``) and an anyio backend.  A difference raises
:class:`LockstepDifference` with the shrunk program.  The number of steps comes from the
``steps`` argument, else the ``MICRO_LOCKSTEP_STEPS`` environment variable, else 2,000.
"""

from __future__ import annotations

from .machine import (
    DEFAULT_STEPS,
    STEPS_VARIABLE,
    LockstepDifference,
    LockstepRun,
    Side,
    configured_steps,
    memory_side,
    nats_side,
    run_lockstep,
)

__all__ = [
    "DEFAULT_STEPS",
    "STEPS_VARIABLE",
    "LockstepDifference",
    "LockstepRun",
    "Side",
    "configured_steps",
    "memory_side",
    "nats_side",
    "run_lockstep",
]
