"""The commands of ``python -m micro``: each an async function of a connected Client.

A command writes its result to ``out`` and returns the exit code (0 ok, 1 nothing found or
a service error).  Expected failures are raised as :class:`CommandError` (one line, an exit
code); connecting is :mod:`micro.cli.connection`'s.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import anyio

from micro.cli import render
from micro.cli.errors import CommandError
from micro.client import Client
from micro.discovery import Gathering
from micro.errors import ServiceError
from micro.models import PingInfo, ServiceInfo, ServiceStats
from transports.base import NoRespondersError, RequestTimeoutError

__all__ = [
    "CommandError",
    "Invocation",
    "parse_headers",
    "run_info",
    "run_info_and_stats",
    "run_ls",
    "run_ping",
    "run_request",
    "run_stats",
]


@dataclass
class Invocation:
    """What every command needs: where to write, how to format, how long to wait."""

    out: TextIO
    json: bool = False
    timeout: float = 2.0

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def write_bytes(self, data: bytes) -> None:
        """Write ``data`` exactly (a payload).  To a terminal a newline is added when
        ``data`` does not end with one, so the prompt starts on its own line.  A text
        stream without a binary buffer (``io.StringIO``) gets the bytes decoded as UTF-8,
        undecodable ones as ``\\xNN``."""
        tty = getattr(self.out, "isatty", lambda: False)()
        if tty and not data.endswith(b"\n"):
            data += b"\n"
        buffer = getattr(self.out, "buffer", None)
        if buffer is None:
            self.out.write(render.render_reply_data(data))
            return
        self.out.flush()
        buffer.write(data)
        buffer.flush()


def _what(name: str | None, instance_id: str | None) -> str:
    if name and instance_id:
        return f"instance {instance_id!r} of service {name!r}"
    if name:
        return f"service {name!r}"
    return "services"


def _scoped(
    client: Client, verb: str, name: str | None, instance_id: str | None, timeout: float
) -> Gathering[Any]:
    if instance_id:
        if not name:
            raise CommandError("an instance ID needs a service NAME", code=2)
        scope = client.instance(name, instance_id)
        return getattr(scope, f"{verb}_iter")(max_wait=timeout)  # type: ignore[no-any-return]
    return getattr(client, f"{verb}_iter")(name, max_wait=timeout)  # type: ignore[no-any-return]


async def _collect(gathering: Gathering[Any]) -> list[Any]:
    return await gathering.collect()


def _nothing_found(inv: Invocation, name: str | None, instance_id: str | None) -> int:
    if inv.json:
        inv.print("[]")
    raise CommandError(f"no {_what(name, instance_id)} found" if name else "no services found")


async def run_ls(client: Client, inv: Invocation, name: str | None = None) -> int:
    """``ls [NAME]``: every instance (of service ``NAME``), by INFO, sorted by name then
    id; ``[]`` or a note when none (exit 0: an empty list is an answer)."""
    infos = await _collect(_scoped(client, "info", name, None, inv.timeout))
    if inv.json:
        inv.print(render.dumps([info.as_dict() for info in render.by_name_and_id(infos)]))
    elif infos:
        inv.print(render.render_ls(infos))
    else:
        inv.print(f"no {_what(name, None)} found" if name else "no services found")
    return 0


async def run_info(
    client: Client, inv: Invocation, name: str | None, instance_id: str | None
) -> int:
    """``info [NAME [ID]]``: INFO documents; exit 1 when nothing answered."""
    infos = await _collect(_scoped(client, "info", name, instance_id, inv.timeout))
    if not infos:
        return _nothing_found(inv, name, instance_id)
    if inv.json:
        inv.print(render.dumps([info.as_dict() for info in render.by_name_and_id(infos)]))
    else:
        inv.print(render.render_info(infos))
    return 0


async def run_stats(
    client: Client, inv: Invocation, name: str | None, instance_id: str | None
) -> int:
    """``stats [NAME [ID]]``: STATS documents; exit 1 when nothing answered."""
    all_stats = await _collect(_scoped(client, "stats", name, instance_id, inv.timeout))
    if not all_stats:
        return _nothing_found(inv, name, instance_id)
    if inv.json:
        inv.print(render.dumps([stats.as_dict() for stats in render.by_name_and_id(all_stats)]))
    else:
        inv.print(render.render_stats(all_stats))
    return 0


async def run_info_and_stats(
    client: Client, inv: Invocation, name: str | None, instance_id: str | None
) -> int:
    """``info --stats`` / ``stats --info``: each instance's INFO and STATS together (as
    ``nats micro info`` shows them), gathered at once.  JSON: a list of
    ``{"info": INFO, "stats": STATS or null}`` (natscli's document, one per instance).
    Exit 1 when no instance answered."""
    infos: list[ServiceInfo] = []
    all_stats: list[ServiceStats] = []

    async def gather(verb: str, into: list[Any]) -> None:
        into.extend(await _collect(_scoped(client, verb, name, instance_id, inv.timeout)))

    async with anyio.create_task_group() as group:
        group.start_soon(gather, "info", infos)
        group.start_soon(gather, "stats", all_stats)
    if not infos:
        return _nothing_found(inv, name, instance_id)
    by_key = {(s.name, s.id): s for s in all_stats}
    pairs = [(info, by_key.get((info.name, info.id))) for info in render.by_name_and_id(infos)]
    if inv.json:
        documents = [
            {"info": info.as_dict(), "stats": stats.as_dict() if stats else None}
            for info, stats in pairs
        ]
        inv.print(render.dumps(documents))
    else:
        inv.print(render.render_info_and_stats(pairs))
    return 0


async def run_ping(
    client: Client, inv: Invocation, name: str | None, instance_id: str | None
) -> int:
    """``ping [NAME [ID]]``: PING replies in arrival order with their round-trip times."""
    replies: list[tuple[PingInfo, float]] = []
    async with _scoped(client, "ping", name, instance_id, inv.timeout) as gathering:
        async for ping in gathering:
            replies.append((ping, time.monotonic() - gathering.published_at))
    if not replies:
        return _nothing_found(inv, name, instance_id)
    if inv.json:
        documents = [{**ping.as_dict(), "rtt_ms": round(rtt * 1000, 3)} for ping, rtt in replies]
        inv.print(render.dumps(documents))
    else:
        inv.print(render.render_ping(replies))
    return 0


def parse_headers(pairs: Sequence[str]) -> dict[str, str] | None:
    """``["K:V", ...]`` -> ``{"K": "V"}`` (value stripped); a pair without ``:`` -> CommandError."""
    headers: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition(":")
        if not sep or not key.strip():
            raise CommandError(f"invalid header {pair!r}: expected KEY:VALUE", code=2)
        headers[key.strip()] = value.strip()
    return headers or None


async def run_request(
    client: Client,
    inv: Invocation,
    subject: str,
    data: bytes,
    headers: Mapping[str, str] | None,
) -> int:
    """``request SUBJECT [DATA]``: write the reply payload, byte for byte (see
    :meth:`Invocation.write_bytes`), or with ``--json`` a document whose ``data`` is the
    payload as text (``null`` when it is not UTF-8) and ``data_base64`` always the exact
    bytes.  An error reply: its payload (or document) on stdout, one line on stderr,
    exit 1."""
    try:
        reply = await client.request(subject, data, headers, timeout=inv.timeout)
    except ServiceError as error:
        if inv.json:
            inv.print(render.dumps(render.error_document(subject, error)))
        elif error.data:
            inv.write_bytes(error.data)
        raise CommandError(render.render_service_error(error)) from None
    except NoRespondersError:
        raise CommandError(f"no responders on subject {subject!r}") from None
    except RequestTimeoutError:
        raise CommandError(f"no reply on subject {subject!r} within {inv.timeout:g} s") from None
    if inv.json:
        inv.print(render.dumps(render.msg_document(reply)))
    else:
        inv.write_bytes(reply.data)
    return 0
