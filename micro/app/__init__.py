"""``micro.App``: the decorator-style NATS app of the App Functions page, on the core.

See ``docs/app.md``.  Codecs (``micro.app.data_types``) work without an App.
"""

from __future__ import annotations

from micro.app.app import DEFAULT_REQUEST_TIMEOUT, App, NatsFacade
from micro.app.data_types import DecodeError, EncodeError, decode, encode
from micro.app.errors import AppError, AppFailedError, AppNotRunningError, SyncCallInLoopError
from micro.app.message import Message
from micro.app.middleware import ErrorLoggingMiddleware, Middleware, Timing, TimingMiddleware

__all__ = [
    "DEFAULT_REQUEST_TIMEOUT",
    "App",
    "AppError",
    "AppFailedError",
    "AppNotRunningError",
    "DecodeError",
    "EncodeError",
    "ErrorLoggingMiddleware",
    "Message",
    "Middleware",
    "NatsFacade",
    "SyncCallInLoopError",
    "Timing",
    "TimingMiddleware",
    "decode",
    "encode",
]
