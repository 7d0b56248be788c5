"""The message a listener receives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Message"]


@dataclass(frozen=True, slots=True)
class Message:
    """One received message, its body already decoded.

    ``subject`` is the concrete subject it was published to, ``data`` the body decoded
    with the listener's ``data_type``, ``reply`` the reply subject (``None`` when it was
    published rather than requested), ``headers`` ``None`` or the header mapping, ``raw``
    the payload bytes as received and ``ssid`` the id of the subscription that got it.
    """

    subject: str
    data: Any
    reply: str | None = None
    headers: Mapping[str, str] | None = None
    raw: bytes = b""
    ssid: str | None = None

    @property
    def is_request(self) -> bool:
        """True when the sender waits for a reply (the message has a reply subject)."""
        return bool(self.reply)
