"""The validated configuration of an App (its constructor arguments)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from micro.app.tasks import Sleep
from transports.base import Transport

__all__ = ["AppConfig", "config_from", "positive_seconds"]


@dataclass(frozen=True)
class AppConfig:
    """The validated constructor arguments of an App."""

    label: str
    url: str | None
    given: Transport | None
    service_name: str | None
    service_version: str | None
    service_description: str | None
    service_metadata: dict[str, str]
    request_timeout: float
    shutdown_timeout: float
    connect_options: dict[str, Any]
    backend: str
    backend_options: dict[str, Any] | None
    sleep: Sleep
    stop_signals: tuple[int, ...]


def positive_seconds(what: str, value: object) -> float:
    """``value`` as a float if it is a number > 0; ``ValueError`` naming ``what`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"invalid {what} {value!r}: must be a number of seconds > 0")
    return float(value)


def config_from(
    *,
    url: str | None,
    given: Transport | None,
    service_name: str | None,
    service_version: str | None,
    service_description: str | None,
    service_metadata: dict[str, str],
    request_timeout: object,
    shutdown_timeout: object,
    connect_options: Mapping[str, Any] | None,
    backend: str,
    backend_options: Mapping[str, Any] | None,
    sleep: Sleep | None,
    stop_signals: Sequence[int],
) -> AppConfig:
    """Build the :class:`AppConfig` (numbers and callables checked here)."""
    if sleep is not None and not callable(sleep):
        raise TypeError(f"sleep must be an async callable, got {sleep!r}")
    return AppConfig(
        label=service_name or "app",
        url=url,
        given=given,
        service_name=service_name,
        service_version=service_version,
        service_description=service_description,
        service_metadata=service_metadata,
        request_timeout=positive_seconds("request_timeout", request_timeout),
        shutdown_timeout=positive_seconds("shutdown_timeout", shutdown_timeout),
        connect_options=dict(connect_options or {}),
        backend=backend,
        backend_options=dict(backend_options) if backend_options else None,
        sleep=sleep or anyio.sleep,
        stop_signals=tuple(stop_signals),
    )
