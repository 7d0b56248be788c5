"""``python -m micro exporter``: serve the ``$SRV.STATS`` of every service as Prometheus metrics.

Needs the ``prometheus`` extra.  Takes the connection options of every command (``--server``
and friends) and ``--timeout`` (how long one scrape waits for STATS replies), plus
``--listen HOST:PORT`` (default ``127.0.0.1:9464``), ``--api-prefix PREFIX`` (repeatable;
default ``$SRV``) and ``--forget-after SECONDS``.  It prints the scrape URL on one line,
then serves until interrupted -- or until its connection closes (the server went away: the
commands' connections do not reconnect), which ends it with exit code 1 and a message, so a
supervisor can restart it rather than it answering every scrape with an error.  The metrics
are those of :mod:`micro.metrics`.
"""

from __future__ import annotations

import argparse
from typing import Any

import anyio

from micro.cli.commands import CommandError, Invocation
from transports.base import Transport, TransportEvent, TransportEventKind

__all__ = ["DEFAULT_LISTEN", "add_exporter_parser", "run_exporter"]

DEFAULT_LISTEN = "127.0.0.1:9464"


def add_exporter_parser(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add the ``exporter`` sub-command to ``commands`` (with the CLI's ``parents`` options:
    connection flags, ``--json``...)."""
    sub = commands.add_parser(
        "exporter",
        parents=parents,
        help="serve $SRV.STATS of every service as Prometheus metrics (needs [prometheus])",
    )
    sub.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"where to serve /metrics (default: {DEFAULT_LISTEN}; port 0: a free one)",
    )
    sub.add_argument(
        "--api-prefix",
        action="append",
        dest="api_prefixes",
        metavar="PREFIX",
        help="control prefix to gather from (repeatable; default: $SRV)",
    )
    sub.add_argument(
        "--forget-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long an instance that stopped answering is reported with up 0 (default: 600)",
    )


async def run_exporter(transport: Transport, inv: Invocation, args: argparse.Namespace) -> int:
    """Serve until cancelled (Ctrl-C); ``CommandError`` when the extra is missing or the
    options are bad (exit code 2), when the address cannot be bound or the connection
    closes (1)."""
    try:
        from micro.metrics import (
            DEFAULT_FORGET_AFTER,
            StatsExporter,
            parse_listen,
            serve_exporter,
        )
    except ImportError as exc:  # the message names the extra to install
        raise CommandError(str(exc), code=2) from None

    try:
        parse_listen(args.listen)
        exporter = StatsExporter(
            transport,
            args.api_prefixes or ("$SRV",),
            max_wait=inv.timeout,
            forget_after=(DEFAULT_FORGET_AFTER if args.forget_after is None else args.forget_after),
        )
    except (TypeError, ValueError) as exc:
        raise CommandError(str(exc), code=2) from None
    closed = anyio.Event()

    def on_event(event: TransportEvent) -> None:
        if event.kind is TransportEventKind.CLOSED:
            closed.set()

    remove_listener = transport.add_event_listener(on_event)
    try:
        async with serve_exporter(exporter, args.listen) as server:
            inv.print(f"serving {server.url} (api prefixes: {', '.join(exporter.api_prefixes)})")
            inv.out.flush()
            await closed.wait()
    except OSError as exc:
        raise CommandError(f"cannot listen on {args.listen}: {exc}") from None
    finally:
        remove_listener()
    raise CommandError("the connection to the server closed: the exporter stops")
