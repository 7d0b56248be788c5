"""``implements``: one structural check of the transport protocols, the same on 3.10 and 3.13.

``isinstance`` against a runtime protocol changed in 3.12 (``inspect.getattr_static``
instead of ``hasattr``): a proxy serving members through ``__getattr__`` stopped being a
``Transport``, and a property raising ``AttributeError`` started being one.  Everything that
accepts a transport or looks for an extension goes through ``implements`` instead.
"""

from __future__ import annotations

import sys
import typing
from typing import Any

import pytest

from micro import add_service
from micro._support import as_transport, offers
from transports._protocols import implements, protocol_members
from transports.base import Subscription, Transport
from transports.extensions import (
    HandlerErrorSink,
    HandlerTracker,
    InProcessBroker,
    MultiSubjectSubscriber,
    MultiSubscription,
)
from transports.memory import MemoryBroker, MemoryTransport

PROTOCOLS = [
    Transport,
    Subscription,
    MultiSubscription,
    MultiSubjectSubscriber,
    HandlerErrorSink,
    HandlerTracker,
    InProcessBroker,
]


def _typing_members(protocol: type) -> set[str]:
    if sys.version_info >= (3, 12):
        return set(protocol.__protocol_attrs__)  # type: ignore[attr-defined]
    return set(typing._get_protocol_attrs(protocol))  # type: ignore[attr-defined]


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.__name__)
def test_members_are_the_ones_typing_checks(protocol: type) -> None:
    assert protocol_members(protocol) == _typing_members(protocol)


def test_members_of_something_that_is_no_protocol_are_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"MemoryTransport is not a typing\.Protocol class"):
        protocol_members(MemoryTransport)


class _Proxy:
    """Serves every member of the wrapped transport through ``__getattr__``."""

    def __init__(self, inner: object) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _RaisingProperty(_Proxy):
    @property
    def max_payload(self) -> int:  # isinstance evaluated it up to 3.11, and raised
        raise RuntimeError("not connected yet")


class _NoInProcess(_Proxy):
    in_process = None  # deliberately absent, like __hash__ = None


@pytest.mark.anyio
async def test_a_proxy_is_a_transport_on_every_python() -> None:
    inner = await MemoryBroker().connect()
    try:
        proxy = _Proxy(inner)
        assert implements(proxy, Transport)
        assert as_transport(proxy) is proxy
        assert implements(proxy, MultiSubjectSubscriber)
    finally:
        await inner.close()


@pytest.mark.anyio
async def test_properties_are_not_evaluated() -> None:
    inner = await MemoryBroker().connect()
    try:
        assert implements(_RaisingProperty(inner), Transport)
    finally:
        await inner.close()


@pytest.mark.anyio
async def test_missing_or_none_members_are_not_implemented() -> None:
    inner = await MemoryBroker().connect()
    try:
        assert not implements(object(), Transport)
        assert implements(inner, InProcessBroker)
        assert implements(_Proxy(inner), InProcessBroker)
        assert not implements(_NoInProcess(inner), InProcessBroker)
        assert not offers(_NoInProcess(inner), InProcessBroker)
    finally:
        await inner.close()


def test_something_else_is_refused_with_a_type_error_naming_it() -> None:
    with pytest.raises(TypeError, match=r"got builtins\.object"):
        as_transport(object())
    with pytest.raises(TypeError, match=r"got builtins\.object"):
        add_service(object(), "svc", "1.0.0")
