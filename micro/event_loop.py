"""Choosing the event loop: uvloop under asyncio, when asked for and never silently.

uvloop (the ``fast`` extra: ``pip install 'nats-service-kit[fast]'``) is a drop-in asyncio event
loop.  It is used only when asked for, by an option or by the environment variable
:data:`UVLOOP_ENV` (``MICRO_UVLOOP=1``); an explicit option wins over the variable.  Asked
for but not installed, it is an ``ImportError`` naming the extra -- never a quiet fallback
to the default loop.  It applies to the asyncio backend only: trio runs its own loop, so
the environment variable does not concern trio runs, and ``use_uvloop=True`` with trio is a
``ValueError``.

Where it applies: :func:`micro.run` (``use_uvloop=``), :meth:`micro.app.App.start` (the
app's own thread; ``App(backend_options={"use_uvloop": True})`` or the variable), the
pytest plugin's asyncio legs (``--micro-uvloop`` or the variable), and :func:`run` here for
any coroutine function -- e.g. a ``main`` that uses :class:`micro.Context`, which runs in
whatever loop its caller started.  This module never imports uvloop itself (anyio does,
when the loop starts).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import anyio

__all__ = ["UVLOOP_ENV", "backend_options", "run", "wants_uvloop"]

UVLOOP_ENV = "MICRO_UVLOOP"
"""``MICRO_UVLOOP=1`` (or ``true``/``yes``/``on``) asks for uvloop; ``0``/``false``/``no``/
``off``/empty leaves the default loop."""

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}
USE_UVLOOP = "use_uvloop"  # anyio's asyncio backend option

T = TypeVar("T")


def wants_uvloop(use_uvloop: bool | None = None) -> bool:
    """``use_uvloop`` when given, else what :data:`UVLOOP_ENV` says (default ``False``).

    ``ValueError`` naming the variable and its value when it is neither true nor false;
    ``TypeError`` for a ``use_uvloop`` that is not a bool or ``None``.
    """
    if use_uvloop is not None:
        if not isinstance(use_uvloop, bool):
            raise TypeError(f"use_uvloop must be a bool or None, got {use_uvloop!r}")
        return use_uvloop
    raw = os.environ.get(UVLOOP_ENV, "")
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(
        f"invalid {UVLOOP_ENV}={raw!r}: must be one of 1/true/yes/on or 0/false/no/off"
    )


def backend_options(
    backend: str,
    options: Mapping[str, Any] | None = None,
    *,
    use_uvloop: bool | None = None,
) -> dict[str, Any] | None:
    """The anyio ``backend_options`` for ``backend``, with uvloop's choice resolved.

    The choice is ``use_uvloop`` if given, else ``options["use_uvloop"]`` if present, else
    :data:`UVLOOP_ENV` (asyncio only).  When uvloop is chosen the result carries
    ``use_uvloop=True``; ``ImportError`` (naming the ``fast`` extra) when it is not
    installed, ``ValueError`` when ``backend`` is not asyncio.  Returns ``None`` when there
    is nothing to pass.
    """
    merged = dict(options) if options else {}
    explicit = use_uvloop if use_uvloop is not None else merged.get(USE_UVLOOP)
    if backend != "asyncio":
        if explicit:
            raise ValueError(
                f"uvloop is an asyncio event loop: backend {backend!r} cannot use it "
                "(drop use_uvloop or run on backend='asyncio')"
            )
        return merged or None
    if wants_uvloop(explicit if explicit is None else bool(explicit)):
        if importlib.util.find_spec("uvloop") is None:
            raise ImportError(
                "uvloop was asked for (use_uvloop=True or "
                f"{UVLOOP_ENV}={os.environ.get(UVLOOP_ENV, '')!r}) but is not installed: "
                "pip install 'nats-service-kit[fast]'"
            )
        merged[USE_UVLOOP] = True
    else:
        merged.pop(USE_UVLOOP, None)
    return merged or None


def run(
    func: Callable[..., Awaitable[T]],
    *args: Any,
    backend: str = "asyncio",
    use_uvloop: bool | None = None,
) -> T:
    """``anyio.run(func, *args, backend=backend)`` on the loop :func:`backend_options`
    chooses; raises what it raises, then whatever ``func`` raises."""
    options = backend_options(backend, use_uvloop=use_uvloop)
    return anyio.run(func, *args, backend=backend, backend_options=options)
