"""The command line's one error type: an expected failure, shown as one line."""

from __future__ import annotations

__all__ = ["CommandError"]


class CommandError(Exception):
    """An expected failure: shown as one line on stderr, the process exits with ``code``
    (1: a failure, 2: a usage error).  The message never holds a password or token."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code
