"""Server URLs as they may be shown: :func:`redact_url` hides the secrets a URL can carry.

A NATS URL may hold credentials in its user-info part: ``nats://user:password@host:4222``
(user and password) or ``nats://token@host:4222`` (a token, or an nkey/JWT user name).
Every error message, log line and ``repr`` of this library, and everything the command
line prints, shows a URL only through :func:`redact_url`, so no password or token is ever
written out.  The user name of a ``user:password`` pair is kept (it helps to tell which
account failed); a lone user-info part is a token and is hidden whole -- the rule of
nats.go's ``ConnectedUrlRedacted`` and Go's ``url.Redacted``.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["REDACTED", "redact_url", "redact_urls"]

REDACTED = "xxxxx"
"""What stands in for a password or token in a shown URL."""


def _redact_one(url: str) -> str:
    scheme, separator, rest = url.partition("://")
    if not separator:  # "user:pw@host:4222" without a scheme
        scheme, rest = "", url
    end = len(rest)
    for stop in "/?#":
        index = rest.find(stop)
        if index != -1:
            end = min(end, index)
    netloc, tail = rest[:end], rest[end:]
    if "@" not in netloc:
        return url
    userinfo, host = netloc.rsplit("@", 1)
    user, colon, _secret = userinfo.partition(":")
    shown = f"{user}:{REDACTED}" if colon else REDACTED
    return f"{scheme}{separator}{shown}@{host}{tail}"


def redact_url(url: str) -> str:
    """``url`` with any password or token replaced by :data:`REDACTED`.

    ``nats://bob:s3cret@host:4222`` -> ``nats://bob:xxxxx@host:4222``;
    ``nats://t0ken@host`` -> ``nats://xxxxx@host``; a URL without credentials is returned
    unchanged.  A comma-separated list of URLs is redacted item by item, and a URL without
    a scheme (``bob:pw@host:4222``) is handled too.  Never raises for any ``str``.
    """
    if "@" not in url:
        return url
    return ",".join(_redact_one(part) for part in url.split(","))


def redact_urls(urls: Iterable[str]) -> list[str]:
    """:func:`redact_url` of each of ``urls``."""
    return [redact_url(url) for url in urls]
