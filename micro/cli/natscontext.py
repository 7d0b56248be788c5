"""The ``nats`` CLI's named contexts, read as that tool writes them (natscli, jsm.go's
``natscontext``).

A context is a JSON file ``<config>/nats/context/NAME.json``, where ``<config>`` is
``$XDG_CONFIG_HOME`` or else ``~/.config``; ``<config>/nats/context.txt`` holds the name of
the selected one (``nats context select NAME``).  Of its fields this module reads ``url``,
``user``, ``password``, ``token``, ``creds``, ``nkey``, ``cert``, ``key``, ``ca``,
``tls_first``, ``inbox_prefix`` and ``description``; the others (JetStream prefixes, colour
scheme, ...) are ignored.  File paths (``creds``, ``nkey``, ``cert``, ``key``, ``ca``) may
start with ``~`` and hold ``$VARIABLES``, expanded as natscli does.

Reading never shows a secret: errors name the file and the field, never a value.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "NatsContext",
    "NatsContextError",
    "config_dir",
    "load_context",
    "selected_context",
]

_TEXT_FIELDS = ("url", "user", "password", "token", "inbox_prefix", "description")
_PATH_FIELDS = ("creds", "nkey", "cert", "key", "ca")
_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


class NatsContextError(ValueError):
    """A context that cannot be used: unknown name, unreadable or malformed file."""


@dataclass(frozen=True)
class NatsContext:
    """What a context file says (``""`` for a field it does not set)."""

    name: str
    path: Path
    url: str = ""
    user: str = ""
    password: str = ""
    token: str = ""
    creds: str = ""
    nkey: str = ""
    cert: str = ""
    key: str = ""
    ca: str = ""
    tls_first: bool = False
    inbox_prefix: str = ""
    description: str = ""

    def __repr__(self) -> str:  # no password or token, ever
        return f"<NatsContext {self.name!r} {str(self.path)!r}>"


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/nats``, else ``~/.config/nats`` (``~`` from ``$HOME``)."""
    environ = os.environ if env is None else env
    parent = environ.get("XDG_CONFIG_HOME")
    if parent:
        return Path(parent) / "nats"
    home = environ.get("HOME")
    return (Path(home) if home else Path.home()) / ".config" / "nats"


def selected_context(env: Mapping[str, str] | None = None) -> str | None:
    """The name in ``context.txt`` (the ``nats context select``-ed one), or ``None``."""
    try:
        name = (config_dir(env) / "context.txt").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return name or None


def _check_name(name: str) -> str:
    bad = not name or any(c in name for c in "/\\") or ".." in name or name != name.strip()
    if bad:
        raise NatsContextError(
            f"invalid context name {name!r}: must be non-empty, without '/', '\\' or '..'"
        )
    return name


def _expand(path: str, env: Mapping[str, str]) -> str:
    if not path:
        return path
    if path.startswith("~"):
        home = env.get("HOME") or str(Path.home())
        path = home + path[1:]
    # $VAR and ${VAR}; an unset variable expands to "" (Go's os.ExpandEnv, as natscli)
    return _VARIABLE.sub(lambda m: env.get(m.group(1) or m.group(2), ""), path)


def load_context(name: str, env: Mapping[str, str] | None = None) -> NatsContext:
    """The context ``name`` (its file in :func:`config_dir`).

    Raises :class:`NatsContextError` naming the context and the file when the name is
    invalid, the file is missing or unreadable, is not a JSON object, or a field has the
    wrong type (the message names the field, never its value).
    """
    environ = os.environ if env is None else env
    _check_name(name)
    path = config_dir(environ) / "context" / f"{name}.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NatsContextError(f"unknown context {name!r}: no file {str(path)!r}") from None
    except OSError as exc:
        raise NatsContextError(f"cannot read context {name!r} ({str(path)!r}): {exc}") from None
    try:
        document: Any = json.loads(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", "?")
        raise NatsContextError(
            f"context {name!r} ({str(path)!r}) is not valid JSON (line {line})"
        ) from None
    if not isinstance(document, dict):
        raise NatsContextError(f"context {name!r} ({str(path)!r}) must be a JSON object")
    values: dict[str, Any] = {}
    for field in (*_TEXT_FIELDS, *_PATH_FIELDS):
        value = document.get(field)
        if value is None:
            continue
        if not isinstance(value, str):
            raise NatsContextError(
                f"context {name!r} ({str(path)!r}): field {field!r} must be a string"
            )
        values[field] = _expand(value, environ) if field in _PATH_FIELDS else value
    tls_first = document.get("tls_first", False)
    if not isinstance(tls_first, bool):
        raise NatsContextError(f"context {name!r} ({str(path)!r}): 'tls_first' must be a bool")
    return NatsContext(name=name, path=path, tls_first=tls_first, **values)
