"""``python -m micro`` (or ``micro``): discover and call NATS micro-services from a shell,
as ``nats micro`` does.

Commands: ``ls [NAME]`` (alias ``list``), ``info [NAME [ID]]``, ``stats [NAME [ID]]``
(either with ``--stats``/``--info`` shows both together, as ``nats micro info`` does),
``ping [NAME [ID]]``, ``request SUBJECT [DATA]``, ``demo`` and ``exporter``
(:mod:`micro.cli.exporter`).  Every command takes the
connection flags of :mod:`micro.cli.connection` (natscli's: ``-s``, ``--user``,
``--password``, ``--creds``, ``--nkey``, ``--tls*``, ``--context``, ``--timeout``, and their
``NATS_*`` variables), ``--json`` and ``-v``, before or after the command name.

Exit codes: 0 success; 1 a service error reply, nothing found where something was asked
for, or a connection failure; 2 a usage error.  Expected failures are one line on stderr
(``<prog>: error: ...``), never a traceback, and never show a password or token.  Usage
text names the program as it was invoked (``micro``, ``python -m micro``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import anyio

from micro.cli.commands import (
    Invocation,
    parse_headers,
    run_info,
    run_info_and_stats,
    run_ls,
    run_ping,
    run_request,
    run_stats,
)
from micro.cli.connection import (
    DEFAULT_SERVER,
    ConnectTarget,
    connect_target,
    connection_parser,
    open_connection,
)
from micro.cli.errors import CommandError
from micro.cli.exporter import add_exporter_parser, run_exporter
from micro.client import Client
from micro.errors import ValidationError
from transports.base import TransportError

__all__ = ["DEFAULT_SERVER", "build_parser", "execute", "main", "program_name", "version"]

_EXAMPLES = """\
examples:
  {prog} ls                           # every service instance
  {prog} ls greeter                   # the instances of one service
  {prog} info greeter --stats         # information and statistics together
  {prog} stats greeter --json         # statistics as JSON documents
  {prog} ping greeter                 # round-trip times
  {prog} request greeter.hello world  # call an endpoint, write the reply as is
  {prog} request thumbs.make - < a.png > thumb.png
  {prog} ls -s demo.nats.io:4222      # no scheme: nats://
  {prog} ls --context prod            # a nats CLI context (~/.config/nats/context)
  {prog} ls -s tls://host:4222 --tlsca ca.pem --creds app.creds
  {prog} demo                         # a sample service, no server needed
"""

_COMMAND_EXAMPLES = {
    "ls": "examples:\n  {prog} ls\n  {prog} ls greeter --json",
    "info": "examples:\n  {prog} info greeter\n  {prog} info greeter ID --stats --json",
    "stats": "examples:\n  {prog} stats greeter\n  {prog} stats greeter --info",
    "ping": "examples:\n  {prog} ping\n  {prog} ping greeter",
    "request": (
        "The reply payload is written as is (bytes); to a terminal a newline is added.\n"
        "With --json: {{subject, headers, data (text, or null when not UTF-8),\n"
        "data_base64 (the exact bytes)}}.\n\n"
        "examples:\n  {prog} request greeter.hello world\n"
        "  echo -n world | {prog} request greeter.hello -\n"
        "  {prog} request greeter.echo hi -H X-Trace:1 --json"
    ),
    "demo": "examples:\n  {prog} demo\n  {prog} demo --server nats://127.0.0.1:4222",
}


def program_name(argv0: str | None = None) -> str:
    """The name the program was invoked by: ``micro`` for the console script (any path),
    ``python -m micro`` when run as a module (``argv[0]`` is ``.../micro/__main__.py``)."""
    path = sys.argv[0] if argv0 is None else argv0
    base = os.path.basename(path) or "micro"
    if base in ("__main__.py", "__main__", "-m", "-c"):
        return "python -m micro"
    return base


def version() -> str:
    """``<distribution> <version>`` of the installed distribution whose ``micro`` console
    script runs this package (whatever the distribution is named)."""
    from importlib import metadata

    for entry_point in metadata.entry_points(group="console_scripts", name="micro"):
        dist = entry_point.dist
        if entry_point.value.startswith("micro.") and dist is not None:
            return f"{dist.metadata['Name']} {dist.version}"
    return "version unknown: micro is not installed as a distribution"


class _VersionAction(argparse.Action):
    """``--version``: looked up only when asked for (reading the installed distributions
    costs tens of milliseconds)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        sys.stdout.write(f"{parser.prog} ({version()})\n")
        parser.exit()


def _common(defaults: bool) -> argparse.ArgumentParser:
    """The output options every command accepts, before or after the command name (on
    sub-commands the defaults are suppressed, so an option given before the command name
    is not reset by the sub-command)."""
    parser = argparse.ArgumentParser(add_help=False)

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--json", "-j", action="store_true", default=default(False), help="print JSON documents"
    )
    parser.add_argument(
        "--verbose", "-v", action="store_true", default=default(False), help="log details"
    )
    return parser


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; usage text and examples name the program ``prog`` (default:
    :func:`program_name`)."""
    prog = prog or program_name()
    parents = [connection_parser(defaults=False), _common(defaults=False)]
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Discover and call NATS micro-services (the NATS Service API, ADR-32).",
        epilog=_EXAMPLES.format(prog=prog),
        formatter_class=raw,
        parents=[connection_parser(defaults=True), _common(defaults=True)],
    )
    parser.add_argument(
        "--version", action=_VersionAction, nargs=0, help="show the version and exit"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, text: str, aliases: Sequence[str] = ()) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            aliases=list(aliases),
            parents=parents,
            help=text,
            description=text,
            epilog=_COMMAND_EXAMPLES[name].format(prog=prog),
            formatter_class=raw,
        )

    ls = command("ls", "list service instances", aliases=["list"])
    ls.add_argument("name", nargs="?", metavar="NAME", help="only the instances of this service")
    for name, text, both in (
        ("info", "show service information and endpoints", "--stats"),
        ("stats", "show endpoint statistics", "--info"),
        ("ping", "ping service instances and show round-trip times", None),
    ):
        sub = command(name, text)
        sub.add_argument("name", nargs="?", metavar="NAME", help="service name")
        sub.add_argument("id", nargs="?", metavar="ID", help="instance id (needs NAME)")
        if both:
            sub.add_argument(
                both,
                dest="both",
                action="store_true",
                help="show information and statistics together (as 'nats micro info')",
            )
    request = command("request", "send a request, write the reply")
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
    command("demo", "run a sample service and show discovery and requests (no server needed)")
    add_exporter_parser(commands, parents)
    return parser


async def _dispatch(args: argparse.Namespace, inv: Invocation, stdin: Any, prog: str) -> int:
    if args.command == "demo":
        from micro.cli.demo import run_demo

        explicit = args.server is not None or args.context is not None
        return await run_demo(inv, connect_target(args) if explicit else None, prog)
    target: ConnectTarget = connect_target(args)
    inv.timeout = target.timeout
    data = b""
    headers = None
    if args.command == "request":
        headers = parse_headers(args.header)
        data = stdin.buffer.read() if args.data == "-" else args.data.encode()
    async with open_connection(target) as transport:
        if args.command == "exporter":
            return await run_exporter(transport, inv, args)
        client = Client(transport)
        if args.command in ("ls", "list"):
            return await run_ls(client, inv, args.name)
        if args.command in ("info", "stats") and args.both:
            return await run_info_and_stats(client, inv, args.name, args.id)
        if args.command == "info":
            return await run_info(client, inv, args.name, args.id)
        if args.command == "stats":
            return await run_stats(client, inv, args.name, args.id)
        if args.command == "ping":
            return await run_ping(client, inv, args.name, args.id)
        return await run_request(client, inv, args.subject, data, headers)


class _OneLine(logging.Formatter):
    def __init__(self, prog: str) -> None:
        super().__init__()
        self.prog = prog

    def format(self, record: logging.LogRecord) -> str:
        return f"{self.prog}: {record.levelname.lower()}: {record.getMessage()}"


def execute(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    stdin: Any = None,
    prog: str | None = None,
) -> int:
    """Run one command line; returns the exit code (see the module docstring).

    ``stdout``/``stderr``/``stdin`` default to the ``sys`` streams (payloads are written
    to ``stdout.buffer`` when it has one); ``prog`` to :func:`program_name`.
    """
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    prog = prog or program_name()
    parser = build_parser(prog)
    try:
        saved_streams = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err  # argparse prints help, version and usage there
        try:
            args = parser.parse_args(argv)
        finally:
            sys.stdout, sys.stderr = saved_streams
    except SystemExit as exit_:  # --help, --version (0) or a usage error (2), printed
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 2
    handler = logging.StreamHandler(err)
    handler.setFormatter(_OneLine(prog))
    micro_logger = logging.getLogger("micro")
    quiet = [logging.getLogger(name) for name in ("nats", "transports")]
    saved = (micro_logger.level, micro_logger.propagate, [q.level for q in quiet])
    micro_logger.addHandler(handler)
    micro_logger.propagate = False
    micro_logger.setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    if not args.verbose:  # the connection's own logs repeat what the error line says
        for logger in quiet:
            logger.setLevel(logging.CRITICAL + 1)
    inv = Invocation(out=out, json=args.json)
    try:
        return anyio.run(_dispatch, args, inv, stdin if stdin is not None else sys.stdin, prog)
    except CommandError as error:
        err.write(f"{prog}: error: {error}\n")
        return error.code
    except ValidationError as error:
        err.write(f"{prog}: error: {error}\n")
        return 2
    except TransportError as error:
        err.write(f"{prog}: error: {error}\n")
        return 1
    except KeyboardInterrupt:
        err.write(f"{prog}: interrupted\n")
        return 130
    except asyncio.CancelledError:
        # Python 3.10: anyio's runner cancels the command on Ctrl-C and, without
        # Task.uncancel(), re-raises the cancellation instead of KeyboardInterrupt
        if sys.version_info >= (3, 11):
            raise
        err.write(f"{prog}: interrupted\n")
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
