"""Code written for ``nats_contrib.micro`` (package ``nats-micro``) keeps working with ``micro``.

``nats_contrib.micro`` is installed as a dev dependency (``nats-micro``); this test walks its
public surface and checks ours against it: every exported name exists, every public method
or attribute of its classes exists on ours, and every parameter of its functions and
methods is accepted by ours at the same position (for positional parameters) with the same
default.  Our own additions (keyword-only options, extra methods) are allowed.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

seed = pytest.importorskip("nats_contrib.micro")

import micro  # noqa: E402

SEED_NAMES = list(seed.__all__)


def _public_members(cls: type) -> list[str]:
    names = []
    for klass in cls.__mro__:
        if klass.__module__.startswith("nats_contrib"):
            names += [n for n in vars(klass) if not n.startswith("_")]
            names += [n for n in ("__aenter__", "__aexit__") if n in vars(klass)]
    dataclass_fields = getattr(cls, "__dataclass_fields__", {})
    return sorted(set(names) | set(dataclass_fields))


def _check_parameters(theirs: Any, ours: Any, where: str) -> None:
    their_sig = inspect.signature(theirs)
    our_sig = inspect.signature(ours)
    our_params = list(our_sig.parameters.values())
    accepts_kwargs = any(p.kind is p.VAR_KEYWORD for p in our_params)
    for index, param in enumerate(their_sig.parameters.values()):
        if param.name == "self" or param.kind is param.VAR_KEYWORD:
            continue
        if where.endswith("__aexit__"):
            break  # (*args) there vs our (exc_type, exc, tb): the same call
        if param.kind is param.VAR_POSITIONAL:
            assert any(p.kind is p.VAR_POSITIONAL for p in our_params), (
                f"{where}: seed accepts *{param.name}, ours does not"
            )
            continue
        mine = our_sig.parameters.get(param.name)
        if mine is None:
            assert accepts_kwargs, f"{where}: parameter {param.name!r} of the reference is missing"
            assert param.kind is param.KEYWORD_ONLY, f"{where}: {param.name!r} is missing"
            continue
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            assert our_params.index(mine) == index, (
                f"{where}: parameter {param.name!r} is at position "
                f"{our_params.index(mine)}, nats_contrib.micro has it at {index}"
            )
            assert mine.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD), (
                f"{where}: parameter {param.name!r} must stay positional"
            )
        if param.default is not param.empty:
            # Optional stays optional.  The value may differ where docs/wire.md says
            # otherwise (e.g. Client's default_max_wait: None = the discovery defaults).
            assert mine.default is not mine.empty, f"{where}: {param.name!r} needs a default"


@pytest.mark.parametrize("name", SEED_NAMES)
def test_every_seed_name_is_exported(name: str) -> None:
    assert hasattr(micro, name), f"micro.{name} is missing"


@pytest.mark.parametrize("name", [n for n in SEED_NAMES if inspect.isclass(getattr(seed, n))])
def test_seed_classes_have_every_public_member(name: str) -> None:
    theirs, ours = getattr(seed, name), getattr(micro, name)
    for member in _public_members(theirs):
        assert hasattr(ours, member) or member in getattr(ours, "__dataclass_fields__", {}), (
            f"micro.{name}.{member} is missing"
        )
        their_member = getattr(theirs, member, None)
        our_member = getattr(ours, member, None)
        if inspect.isfunction(their_member) and callable(our_member):
            _check_parameters(their_member, our_member, f"micro.{name}.{member}")
        if inspect.iscoroutinefunction(their_member):
            assert inspect.iscoroutinefunction(our_member) or inspect.isasyncgenfunction(
                our_member
            ), f"micro.{name}.{member} must stay awaitable"


@pytest.mark.parametrize("name", [n for n in SEED_NAMES if inspect.isfunction(getattr(seed, n))])
def test_seed_functions_take_the_same_parameters(name: str) -> None:
    _check_parameters(getattr(seed, name), getattr(micro, name), f"micro.{name}")


@pytest.mark.parametrize("name", [n for n in SEED_NAMES if inspect.isclass(getattr(seed, n))])
def test_seed_constructors_take_the_same_parameters(name: str) -> None:
    theirs, ours = getattr(seed, name), getattr(micro, name)
    if "__dataclass_fields__" in vars(theirs) or name in {"Client", "Context", "ServiceError"}:
        _check_parameters(theirs.__init__, ours.__init__, f"micro.{name}()")
