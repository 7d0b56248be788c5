"""The connection flags of ``python -m micro``, in one place, for every sub-command.

The flags are natscli's (``nats --help``): ``-s/--server``, ``--user``, ``--password``,
``--creds``, ``--nkey``, ``--tlscert``, ``--tlskey``, ``--tlsca``, ``--tlsfirst``,
``--context`` (plus ``--no-context``) and ``--timeout``, each with natscli's environment
variable (``NATS_URL``, ``NATS_USER``, ``NATS_PASSWORD``, ``NATS_CREDS``, ``NATS_NKEY``,
``NATS_CERT``, ``NATS_KEY``, ``NATS_CA``, ``NATS_CONTEXT``, ``NATS_TIMEOUT``).

A sub-command gets them by taking :func:`connection_parser` as a parent::

    sub = commands.add_parser("exporter", parents=[connection_parser(defaults=False)])
    ...
    target = connect_target(args)                  # -> ConnectTarget (URL + options)
    async with open_connection(target) as transport:
        ...

What wins, per setting: the flag, else its environment variable, else the ``nats`` CLI
context (``--context NAME``, ``$NATS_CONTEXT``, else the one ``nats context select``
chose; see :mod:`micro.cli.natscontext`), else the default (``nats://127.0.0.1:4222``).
Credentials come as a whole from one place: any credential flag or variable replaces the
context's credentials.  A server given without a scheme (``-s host:4222``) is
``nats://host:4222``.  Nothing here ever prints a password or token: URLs are shown through
:func:`transports.urls.redact_url`.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from micro.cli.errors import CommandError
from micro.cli.natscontext import NatsContext, NatsContextError, load_context, selected_context
from transports.base import Transport
from transports.urls import redact_url

__all__ = [
    "CONNECTION_NAME",
    "DEFAULT_SERVER",
    "DEFAULT_TIMEOUT",
    "ConnectTarget",
    "connect_target",
    "connection_parser",
    "normalize_servers",
    "open_connection",
    "parse_seconds",
]

DEFAULT_SERVER = "nats://127.0.0.1:4222"
DEFAULT_TIMEOUT = 2.0
CONNECTION_NAME = "python -m micro"
"""The connection name the server shows (``/connz``) for the command line's connections."""

_NATS_SCHEMES = frozenset({"nats", "tls", "ws", "wss"})
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

# (dest, flags, environment variable, metavar, help)
_VALUE_FLAGS = (
    ("server", ("-s", "--server"), "NATS_URL", "URL", "server URL(s), comma-separated"),
    ("user", ("--user",), "NATS_USER", "USER", "user name (a token when given no --password)"),
    ("password", ("--password",), "NATS_PASSWORD", "PASSWORD", "password"),
    ("creds", ("--creds",), "NATS_CREDS", "FILE", "user credentials file (JWT and nkey seed)"),
    ("nkey", ("--nkey",), "NATS_NKEY", "FILE", "user nkey seed file"),
    ("tlscert", ("--tlscert",), "NATS_CERT", "FILE", "TLS client certificate file"),
    ("tlskey", ("--tlskey",), "NATS_KEY", "FILE", "TLS client private key file"),
    ("tlsca", ("--tlsca",), "NATS_CA", "FILE", "TLS certificate authority file"),
    ("context", ("--context",), "NATS_CONTEXT", "NAME", "nats CLI context to use"),
)
_CREDENTIALS = ("user", "password", "creds", "nkey")


def parse_seconds(text: str) -> float:
    """``"2"``, ``"2.5"``, ``"500ms"``, ``"2s"``, ``"1m"`` -> seconds (> 0, finite).

    Raises ``argparse.ArgumentTypeError`` naming the text and the rule."""
    match = _DURATION.match(text)
    value = float(match.group(1)) * _UNITS[match.group(2)] if match else math.nan
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(
            f"invalid timeout {text!r}: must be a number of seconds > 0, "
            "optionally with a unit (500ms, 2s, 1m)"
        )
    return value


def connection_parser(*, defaults: bool = True) -> argparse.ArgumentParser:
    """A parent parser (``add_help=False``) holding every connection flag and ``--timeout``.

    With ``defaults=False`` the flags leave the namespace untouched when absent (for a
    sub-command, so a flag given before the sub-command's name is not reset by it); read
    the namespace with :func:`connect_target`, which treats a missing flag as not given.
    """
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("connection options")

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    for dest, flags, variable, metavar, text in _VALUE_FLAGS:
        suffix = (
            f" (${variable})" if dest != "server" else f" (${variable}; default {DEFAULT_SERVER})"
        )
        group.add_argument(
            *flags, dest=dest, metavar=metavar, default=default(None), help=text + suffix
        )
    group.add_argument(
        "--tlsfirst",
        action="store_true",
        default=default(False),
        help="TLS handshake before the server's greeting (servers with handshake_first)",
    )
    group.add_argument(
        "--no-context",
        action="store_true",
        default=default(False),
        help="do not read any nats CLI context",
    )
    group.add_argument(
        "--timeout",
        "-t",
        type=parse_seconds,
        metavar="DURATION",
        default=default(None),
        help="how long to wait for the server and replies "
        f"($NATS_TIMEOUT; default {DEFAULT_TIMEOUT:g}s)",
    )
    return parser


@dataclass
class ConnectTarget:
    """Where and how to connect: ``url`` and the transport options
    (``transports.connect(url, **options)``)."""

    url: str
    options: dict[str, Any] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT
    context: str | None = None
    """The nats CLI context read, if any."""

    @property
    def shown_url(self) -> str:
        """``url`` without password or token (for messages)."""
        return redact_url(self.url)

    def __repr__(self) -> str:  # options hold secrets: name them, never show them
        return f"<ConnectTarget {self.shown_url!r} options={sorted(self.options)}>"


def normalize_servers(servers: str) -> str:
    """Each comma-separated server without a scheme gets ``nats://`` (``host:4222`` ->
    ``nats://host:4222``, as natscli and nats.go read it).  Raises :class:`CommandError`
    (usage) for an empty list."""
    items = [item.strip() for item in servers.split(",")]
    if not any(items) or not all(items):
        raise CommandError(
            f"invalid server list {redact_url(servers)!r}: expected URL[,URL...]", code=2
        )
    return ",".join(item if "://" in item else f"nats://{item}" for item in items)


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def _setting(args: argparse.Namespace, dest: str, env: Mapping[str, str], variable: str) -> str:
    value = getattr(args, dest, None)
    if value is None:
        value = env.get(variable) or None
    return str(value) if value is not None else ""


def _context(args: argparse.Namespace, env: Mapping[str, str]) -> NatsContext | None:
    if getattr(args, "no_context", False):
        return None
    name = _setting(args, "context", env, "NATS_CONTEXT") or selected_context(env)
    if not name:
        return None
    try:
        return load_context(name, env)
    except NatsContextError as exc:
        raise CommandError(str(exc), code=2) from None


def _existing_file(flag: str, path: str) -> str:
    if not os.path.isfile(path):
        raise CommandError(f"invalid {flag} {path!r}: no such file", code=2)
    return path


def _tls_context(cert: str, key: str, ca: str, label: Mapping[str, str]) -> ssl.SSLContext | None:
    if bool(cert) != bool(key):
        raise CommandError(
            f"{label['tlscert']} and {label['tlskey']} go together: give both or neither", code=2
        )
    if not (cert or ca):
        return None
    try:
        cafile = _existing_file(label["tlsca"], ca) if ca else None
        context = ssl.create_default_context(cafile=cafile)
        if cert:
            context.load_cert_chain(
                _existing_file(label["tlscert"], cert), _existing_file(label["tlskey"], key)
            )
    except (ssl.SSLError, OSError) as exc:
        raise CommandError(
            f"invalid TLS files (cert {cert!r}, key {key!r}, ca {ca!r}): {exc}", code=2
        ) from None
    return context


def connect_target(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> ConnectTarget:
    """Turn the parsed connection flags (of :func:`connection_parser`) into a
    :class:`ConnectTarget`, merging environment variables and the nats CLI context (see
    the module docstring for the order).  ``env`` defaults to ``os.environ``.

    Raises :class:`CommandError` (code 2, a usage error) for an unknown or malformed
    context, a file flag naming no file, ``--tlscert`` without ``--tlskey``, TLS files that
    do not load, or credential/TLS flags with a server that is not NATS (``memory://``; a
    context's credentials are not used for such a server).
    """
    environ = os.environ if env is None else env
    context = _context(args, environ)
    timeout = getattr(args, "timeout", None)
    if timeout is None:
        env_timeout = environ.get("NATS_TIMEOUT")
        try:
            timeout = parse_seconds(env_timeout) if env_timeout else DEFAULT_TIMEOUT
        except argparse.ArgumentTypeError as exc:
            raise CommandError(f"$NATS_TIMEOUT: {exc}", code=2) from None
    given = {
        dest: _setting(args, dest, environ, variable)
        for dest, _flags, variable, _metavar, _text in _VALUE_FLAGS
    }
    url = normalize_servers(given["server"] or (context.url if context else "") or DEFAULT_SERVER)
    target = ConnectTarget(url=url, timeout=timeout, context=context.name if context else None)

    user, password, creds, nkey = (given[name] for name in _CREDENTIALS)
    token = ""
    # where a file setting came from, for error messages: the flag, or the context's field
    label = {dest: f"--{dest}" for dest in ("creds", "nkey", "tlscert", "tlskey", "tlsca")}
    if context is not None:
        fields = {"creds": "creds", "nkey": "nkey", "tlscert": "cert", "tlskey": "key"}
        for dest, name in {**fields, "tlsca": "ca"}.items():
            if not given[dest]:
                label[dest] = f"{name!r} of context {context.name!r}"
    if context is not None and not any((user, password, creds, nkey)):
        user, password, creds, nkey = context.user, context.password, context.creds, context.nkey
        token = context.token
    cert = given["tlscert"] or (context.cert if context else "")
    key = given["tlskey"] or (context.key if context else "")
    ca = given["tlsca"] or (context.ca if context else "")
    tls_first = bool(getattr(args, "tlsfirst", False)) or bool(context and context.tls_first)

    options: dict[str, Any] = {}
    if user and password:
        options.update(user=user, password=password)
    elif user:  # natscli: a user without a password is a token
        options["token"] = user
    elif password:
        raise CommandError("--password needs --user", code=2)
    elif creds:  # natscontext's order: user, creds, nkey, token
        options["user_credentials"] = _existing_file(label["creds"], creds)
    elif nkey:
        options["nkeys_seed"] = _existing_file(label["nkey"], nkey)
    elif token:
        options["token"] = token
    tls = _tls_context(cert, key, ca, label)
    if tls is not None:
        options["tls"] = tls
    if tls_first:
        options["tls_handshake_first"] = True
    if context is not None and context.inbox_prefix:
        options["inbox_prefix"] = context.inbox_prefix
    explicit = any(given[name] for name in (*_CREDENTIALS, "tlscert", "tlskey", "tlsca"))
    explicit = explicit or bool(getattr(args, "tlsfirst", False))
    if _scheme(url.split(",")[0]) in _NATS_SCHEMES:
        # a command's connection fails fast and never reconnects: a one-shot command then
        # fails at once, and the exporter ends (for its supervisor to restart it)
        options.update(
            connect_timeout=timeout,
            name=CONNECTION_NAME,
            allow_reconnect=False,
            max_reconnect_attempts=0,
        )
    elif not explicit:  # a context's credentials do not apply to memory://
        options = {}
    elif options:
        raise CommandError(
            f"credentials and TLS options apply to NATS servers only, not {target.shown_url!r}",
            code=2,
        )
    target.options = options
    return target


@asynccontextmanager
async def open_connection(target: ConnectTarget) -> AsyncIterator[Transport]:
    """A connection to ``target``, closed on exit.  Any failure to connect is a
    :class:`CommandError` (code 2 for a bad URL, 1 otherwise) whose text shows the URL
    redacted; the library's connect already tries each server once and fails fast."""
    from transports import connect

    try:
        transport = await connect(target.url, **target.options)
    except ValueError as exc:
        raise CommandError(str(exc), code=2) from None
    except Exception as exc:
        text = str(exc).strip()
        if not text.startswith("cannot connect"):
            reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
            text = f"cannot connect to {target.shown_url}: {reason}"
        raise CommandError(text) from None
    try:
        yield transport
    finally:
        await transport.close()
