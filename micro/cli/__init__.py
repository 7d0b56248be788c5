"""``python -m micro``: discover and call NATS micro-services from a shell.

Commands: ``ls``, ``info [NAME [ID]]``, ``stats [NAME [ID]]``, ``ping [NAME [ID]]``,
``request SUBJECT [DATA]``, ``demo`` and ``exporter`` (:mod:`micro.cli.exporter`).  Every
command takes ``--server URL`` (default ``$NATS_URL`` or ``nats://127.0.0.1:4222``;
``memory://`` works too), ``--json`` and ``--timeout SECONDS``.

Exit codes: 0 success; 1 a service error reply, nothing found where something was asked
for, or a connection failure; 2 a usage error.  Expected failures are one line on stderr
(``micro: error: ...``), never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import anyio

from micro.cli.commands import (
    CommandError,
    Invocation,
    connection,
    parse_headers,
    run_info,
    run_ls,
    run_ping,
    run_request,
    run_stats,
)
from micro.cli.exporter import add_exporter_parser, run_exporter
from micro.client import Client
from micro.errors import ValidationError
from transports.base import TransportError

__all__ = ["DEFAULT_SERVER", "build_parser", "execute", "main"]

DEFAULT_SERVER = "nats://127.0.0.1:4222"
PROG = "python -m micro"


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid timeout {text!r}: not a number") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"invalid timeout {text!r}: must be a finite number > 0")
    return value


def _common(defaults: bool) -> argparse.ArgumentParser:
    """The options every command accepts, before or after the command name.

    On sub-commands the defaults are suppressed so an option given before the command is
    not overwritten by the sub-command's default.
    """
    parser = argparse.ArgumentParser(add_help=False)

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--server",
        "-s",
        metavar="URL",
        default=default(None),
        help=f"server URL (default: $NATS_URL or {DEFAULT_SERVER}; memory:// for in-process)",
    )
    parser.add_argument(
        "--json", action="store_true", default=default(False), help="print JSON documents"
    )
    parser.add_argument(
        "--timeout",
        "-t",
        type=_positive_seconds,
        metavar="SECONDS",
        default=default(2.0),
        help="how long to wait for replies (default: 2.0)",
    )
    parser.add_argument(
        "--verbose", "-v", action="store_true", default=default(False), help="log details"
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m micro``."""
    common = _common(defaults=False)
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Discover and call NATS micro-services (the NATS Service API).",
        parents=[_common(defaults=True)],
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands.add_parser("ls", parents=[common], help="list every service instance")
    for name, text in (
        ("info", "show service information and endpoints"),
        ("stats", "show endpoint statistics"),
        ("ping", "ping service instances and show round-trip times"),
    ):
        sub = commands.add_parser(name, parents=[common], help=text)
        sub.add_argument("name", nargs="?", metavar="NAME", help="service name")
        sub.add_argument("id", nargs="?", metavar="ID", help="instance id (needs NAME)")
    request = commands.add_parser(
        "request", parents=[common], help="send a request, print the reply"
    )
    request.add_argument("subject", metavar="SUBJECT")
    request.add_argument("data", nargs="?", default="", metavar="DATA", help="payload ('-': stdin)")
    request.add_argument(
        "--header",
        "-H",
        action="append",
        default=[],
        metavar="KEY:VALUE",
        help="request header (repeatable)",
    )
    commands.add_parser(
        "demo",
        parents=[common],
        help="run a sample service and show discovery and requests (no server needed)",
    )
    add_exporter_parser(commands, common)
    return parser


def _server(args: argparse.Namespace) -> str:
    return str(args.server or os.environ.get("NATS_URL") or DEFAULT_SERVER)


async def _dispatch(args: argparse.Namespace, inv: Invocation, stdin: Any) -> int:
    if args.command == "demo":
        from micro.cli.demo import run_demo

        return await run_demo(inv, args.server)
    url = _server(args)
    data = b""
    headers = None
    if args.command == "request":
        headers = parse_headers(args.header)
        data = stdin.buffer.read() if args.data == "-" else args.data.encode()
    async with connection(url, inv.timeout) as transport:
        if args.command == "exporter":
            return await run_exporter(transport, inv, args)
        client = Client(transport)
        if args.command == "ls":
            return await run_ls(client, inv)
        if args.command == "info":
            return await run_info(client, inv, args.name, args.id)
        if args.command == "stats":
            return await run_stats(client, inv, args.name, args.id)
        if args.command == "ping":
            return await run_ping(client, inv, args.name, args.id)
        return await run_request(client, inv, args.subject, data, headers)


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"micro: {record.levelname.lower()}: {record.getMessage()}"


def execute(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    stdin: Any = None,
) -> int:
    """Run one command line; returns the exit code (see the module docstring).

    ``stdout``/``stderr``/``stdin`` default to the ``sys`` streams.
    """
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2), already printed
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 2
    handler = logging.StreamHandler(err)
    handler.setFormatter(_OneLine())
    micro_logger = logging.getLogger("micro")
    quiet = [logging.getLogger(name) for name in ("nats", "transports")]
    saved = (micro_logger.level, micro_logger.propagate, [q.level for q in quiet])
    micro_logger.addHandler(handler)
    micro_logger.propagate = False
    micro_logger.setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    if not args.verbose:  # the connection's own logs repeat what the error line says
        for logger in quiet:
            logger.setLevel(logging.CRITICAL + 1)
    inv = Invocation(out=out, json=args.json, timeout=args.timeout)
    try:
        return anyio.run(_dispatch, args, inv, stdin if stdin is not None else sys.stdin)
    except CommandError as error:
        err.write(f"micro: error: {error}\n")
        return error.code
    except ValidationError as error:
        err.write(f"micro: error: {error}\n")
        return 2
    except TransportError as error:
        err.write(f"micro: error: {error}\n")
        return 1
    except KeyboardInterrupt:
        err.write("micro: interrupted\n")
        return 130
    finally:
        micro_logger.removeHandler(handler)
        micro_logger.setLevel(saved[0])
        micro_logger.propagate = saved[1]
        for logger, level in zip(quiet, saved[2], strict=True):
            logger.setLevel(level)
        out.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m micro`` and of the ``micro`` console script."""
    return execute(argv)
