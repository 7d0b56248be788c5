"""``micro.App``: the decorator-style NATS app of the App Functions page, on the core.

See ``docs/app.md``.  Codecs (``micro.app.data_types``) work without an App.
"""

from __future__ import annotations

from micro.app.app import DEFAULT_MAX_CONCURRENCY, DEFAULT_REQUEST_TIMEOUT, App, NatsFacade
from micro.app.data_types import DecodeError, EncodeError, decode, encode
from micro.app.errors import AppError, AppFailedError, AppNotRunningError, SyncCallInLoopError
from micro.app.message import Message
from micro.app.middleware import ErrorLoggingMiddleware, Middleware, Timing, TimingMiddleware
from micro.app.registry import SERVICE_QUEUE

__all__ = [
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_REQUEST_TIMEOUT",
    "SERVICE_QUEUE",
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
