"""Errors raised by the ``micro`` package.

* :class:`ValidationError` -- a bad configuration value (name, version, subject,
  queue group, metadata, limits); raised at once, before anything is subscribed.
* :class:`ServiceError` -- a typed service error (ADR-32, Error Handling).  Handlers raise it
  to send an error reply with that code and description; clients raise it when a
  reply carries a non-empty ``Nats-Service-Error-Code`` header.
* :class:`ServiceStoppedError` -- an operation on a service that has stopped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = [
    "ERROR_CODE_HEADER",
    "ERROR_HEADER",
    "ServiceError",
    "ServiceStoppedError",
    "ValidationError",
    "last_error_text",
]

ERROR_HEADER = "Nats-Service-Error"
"""Header carrying the human-readable description of a service error (exact case)."""

ERROR_CODE_HEADER = "Nats-Service-Error-Code"
"""Header carrying the decimal code of a service error (exact case)."""

FALLBACK_ERROR_CODE = 400
"""Code given to an error reply whose code header is not a decimal integer (as nats.js)."""

_DECIMAL = re.compile(r"[+-]?[0-9]{1,18}")  # fits int64; longer text is "not a code"


class ValidationError(ValueError):
    """A configuration value breaks a rule; the message names the value and the rule."""


class ServiceStoppedError(RuntimeError):
    """The service has stopped: no endpoint can be added and no request is served."""


class ServiceError(Exception):
    """A service error: an integer ``code`` and a ``description``.

    ``str(err)`` is ``"<code>:<description>"`` (no space), the form used for
    ``last_error`` in STATS (ADR-32, STATS; as nats.go).  ``subject``, ``data`` and
    ``headers`` describe the reply the error came from (client side) or extra
    payload/headers to send with the error reply (service side).

    The constructor takes ``nats_contrib.micro``'s positional order ``(code, description, subject,
    data, headers)``.  Instances pickle and copy: ``args`` are ``(code, description)``
    and the other attributes travel in the instance ``__dict__``.
    """

    code: int
    description: str
    subject: str | None
    data: bytes
    headers: dict[str, str]

    def __init__(
        self,
        code: int,
        description: str,
        subject: str | None = None,
        data: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(code, description)
        self.code = code
        self.description = description
        self.subject = subject
        self.data = data
        self.headers = dict(headers) if headers is not None else {}

    def __str__(self) -> str:
        return f"{self.code}:{self.description}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, description={self.description!r})"

    @classmethod
    def from_headers(
        cls,
        headers: Mapping[str, str] | None,
        *,
        subject: str | None = None,
        data: bytes = b"",
    ) -> ServiceError | None:
        """Build the error an error reply describes, or ``None`` for a normal reply.

        A reply is an error if and only if it carries a non-empty
        ``Nats-Service-Error-Code`` header (ADR-32, Error Handling; header names are
        matched exactly, as the Go and JS clients do).  Like nats.js: a code that
        is not a decimal integer becomes ``400`` (:data:`FALLBACK_ERROR_CODE`),
        and an empty or missing description is replaced by the code text, so the
        raised error never hides what the service sent.  The returned error keeps
        a copy of all reply headers, the payload ``data`` and the ``subject``.
        """
        if not headers:
            return None
        code_text = headers.get(ERROR_CODE_HEADER)
        if not code_text:
            return None
        stripped = code_text.strip()
        code = int(stripped) if _DECIMAL.fullmatch(stripped) else FALLBACK_ERROR_CODE
        description = headers.get(ERROR_HEADER) or code_text
        return cls(code, description, subject=subject, data=data, headers=headers)


def last_error_text(error: BaseException) -> str:
    """The ``last_error`` STATS entry for ``error``: every entry starts with ``<code>:``.

    A :class:`ServiceError` gives its own ``code:description``; any other exception (a
    handler that raised, a reply that could not be sent, a slow consumer, a stats callback
    that failed) gives ``500:<Type>: <message>``.
    """
    if isinstance(error, ServiceError):
        return str(error)
    return f"500:{type(error).__name__}: {error}"
