"""Errors raised by :class:`~micro.app.App` (codec errors live in ``micro.app.data_types``)."""

from __future__ import annotations

__all__ = ["AppError", "AppFailedError", "AppNotRunningError", "SyncCallInLoopError"]


class AppError(RuntimeError):
    """Root of the errors specific to the App layer."""


class AppNotRunningError(AppError):
    """An operation needs a running app: it has not started yet, or it was disconnected."""


class SyncCallInLoopError(AppError):
    """A blocking (``*_sync`` / ``*_from_another_thread``) method was called from the thread
    running the app's event loop, where it would wait for the loop it blocks.

    Use the ``await``-able method of the same name without the suffix instead.
    """

    def __init__(self, method: str, async_method: str) -> None:
        super().__init__(
            f"app.{method}() blocks until the app's event loop has run the call, but it was "
            f"called from that event loop's own thread (a listener, task or coroutine of the "
            f"app) and would wait forever: use 'await app.{async_method}(...)' there"
        )
        self.method = method


class AppFailedError(AppError):
    """The app stopped because of an error: a task with ``on_error="stop"`` failed, the
    connection closed, or the service stopped by itself.  ``__cause__`` is that error."""
