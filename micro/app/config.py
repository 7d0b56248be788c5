"""The validated configuration of an App (its constructor arguments)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from micro.app.tasks import Sleep
from transports.base import Transport

__all__ = ["AppConfig", "positive_seconds"]


@dataclass(frozen=True)
class AppConfig:
    """The validated constructor arguments of an App (``label``: its service name, or
    ``"app"``; ``given``: the transport it was given, or ``None`` when it has a URL)."""

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
    max_concurrency: int = 1000


def positive_seconds(what: str, value: object) -> float:
    """``value`` as a float if it is a number > 0; ``ValueError`` naming ``what`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"invalid {what} {value!r}: must be a number of seconds > 0")
    return float(value)
