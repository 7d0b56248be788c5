"""``implements(obj, protocol)``: the one structural check of a transport protocol.

``isinstance`` against a ``runtime_checkable`` protocol is not the same check on every
Python this package supports: up to 3.11 it evaluates each member with ``hasattr`` (a
property that raises anything but ``AttributeError`` escapes from ``isinstance``; one
that raises ``AttributeError`` makes the object "not a transport"), from 3.12 on it
looks members up with ``inspect.getattr_static`` (a member served by ``__getattr__``, as
in a proxy or wrapper, is then missing).  Everything that decides whether an object is a
``Transport`` or offers an optional extension (``transports.extensions``) asks this
function instead, so the answer is the same on 3.10 and 3.13.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Generic, Protocol, TypeGuard, TypeVar, cast

__all__ = ["implements", "protocol_members"]

# Names typing itself puts on a protocol class, or that every class has: never members.
_NOT_MEMBERS = frozenset(
    {
        "__abstractmethods__",
        "__annotate__",
        "__annotate_func__",
        "__annotations__",
        "__annotations_cache__",
        "__callable_proto_members_only__",
        "__class_getitem__",
        "__dict__",
        "__doc__",
        "__firstlineno__",
        "__init__",
        "__match_args__",
        "__module__",
        "__new__",
        "__non_callable_proto_members__",
        "__orig_bases__",
        "__orig_class__",
        "__parameters__",
        "__protocol_attrs__",
        "__qualname__",
        "__slots__",
        "__static_attributes__",
        "__subclasshook__",
        "__type_params__",
        "__weakref__",
        "_is_protocol",
        "_is_runtime_protocol",
    }
)


@functools.cache
def protocol_members(protocol: type) -> frozenset[str]:
    """The member names of ``protocol`` (methods, properties and annotated attributes,
    inherited from protocol bases included): what ``typing`` checks, as a set.  Since 3.12
    typing computes it (``__protocol_attrs__``; the private names it adds change between
    patch releases), before it is computed here the way typing does."""
    if not getattr(protocol, "_is_protocol", False):
        raise TypeError(f"{protocol.__qualname__} is not a typing.Protocol class")
    computed = getattr(protocol, "__protocol_attrs__", None)
    if computed is not None:
        return frozenset(computed)
    members: set[str] = set()
    for base in protocol.__mro__:
        if base in (object, Protocol, Generic):
            continue
        names = {*vars(base), *inspect.get_annotations(base)}
        members.update(n for n in names if n not in _NOT_MEMBERS and not n.startswith("_abc_"))
    return frozenset(members)


_Protocol = TypeVar("_Protocol")


def implements(obj: object, protocol: Callable[..., _Protocol]) -> TypeGuard[_Protocol]:
    """Does ``obj`` have every member of ``protocol``?

    A member counts when the object's class has it (a method, a property -- which is not
    evaluated -- or a class attribute), or else when ``hasattr(obj, name)`` finds it (an
    instance attribute, or one served by ``__getattr__``).  A class attribute set to
    ``None`` marks a member as deliberately absent, as for ``__hash__``.  Signatures and
    types are not checked, exactly as with ``isinstance``.  (``protocol`` is typed as a
    callable only because mypy accepts no protocol class where ``type[T]`` is expected.)"""
    cls = type(obj)
    for name in protocol_members(cast(type, protocol)):
        try:
            on_class = getattr(cls, name)
        except AttributeError:
            if not hasattr(obj, name):
                return False
        else:
            if on_class is None:
                return False
    return True
