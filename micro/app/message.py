"""The message a listener receives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Message"]


@dataclass(slots=True, eq=False)
class Message:
    """One received message, its body already decoded.

    ``subject`` is the concrete subject it was published to, ``data`` the body decoded
    with the listener's ``data_type``, ``reply`` the reply subject (``None`` when it was
    published rather than requested), ``headers`` ``None`` or the header mapping, ``raw``
    the payload bytes as received, ``ssid`` the id of the subscription that got it and
    ``context`` a dict for middlewares to hand values to each other and to the listener.

    A middleware may change any attribute (``msg.data = ...``) before passing the message
    on: the listener gets the same object.  ``raw`` stays the bytes received.
    """

    subject: str
    data: Any
    reply: str | None = None
    headers: Mapping[str, str] | None = None
    raw: bytes = b""
    ssid: str | None = None
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def is_request(self) -> bool:
        """True when the sender waits for a reply (the message has a reply subject)."""
        return bool(self.reply)

    @property
    def sid(self) -> str | None:
        """The subscription id under the name Panini's ``Msg`` gives it (``ssid``)."""
        return self.ssid
