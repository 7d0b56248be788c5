"""The commands of ``python -m micro``: each an async function of a connected Client.

A command writes its result to ``out`` and returns the exit code (0 ok, 1 nothing found or
a service error).  Expected failures are raised as :class:`CommandError` (one line, an exit
code); :func:`connection` opens the transport the ``--server`` URL names.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import urlsplit

from micro.cli import render
from micro.client import Client
from micro.discovery import Gathering
from micro.errors import ServiceError
from micro.models import PingInfo
from transports.base import NoRespondersError, RequestTimeoutError, Transport

__all__ = [
    "CommandError",
    "Invocation",
    "connection",
    "run_info",
    "run_ls",
    "run_ping",
    "run_request",
    "run_stats",
]

_NATS_SCHEMES = {"nats", "tls", "ws", "wss"}


class CommandError(Exception):
    """An expected failure: shown as one line on stderr, the process exits with ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Invocation:
    """What every command needs: where to write, how to format, how long to wait."""

    out: TextIO
    json: bool = False
    timeout: float = 2.0

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")


def connect_options(url: str, timeout: float) -> dict[str, Any]:
    """Transport options for a one-shot command: fail fast instead of retrying."""
    scheme = urlsplit(url.split(",")[0].strip()).scheme.lower()
    if scheme in _NATS_SCHEMES:
        return {
            "connect_timeout": timeout,
            "allow_reconnect": False,
            "max_reconnect_attempts": 0,
            "name": "python -m micro",
        }
    return {}


@asynccontextmanager
async def connection(url: str, timeout: float) -> AsyncIterator[Transport]:
    """A connection to ``url``, closed on exit; any failure to connect -> CommandError."""
    from transports import connect

    try:
        transport = await connect(url, **connect_options(url, timeout))
    except ValueError as exc:
        raise CommandError(str(exc), code=2) from None
    except Exception as exc:
        text = str(exc)
        if not text.startswith("cannot connect"):
            text = f"cannot connect to {url}: {_reason(exc)}"
        raise CommandError(text) from None
    try:
        yield transport
    finally:
        await transport.close()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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


async def run_ls(client: Client, inv: Invocation) -> int:
    """``ls``: every instance (INFO), sorted by name then id; ``[]``/a note when none."""
    infos = await _collect(client.info_iter(max_wait=inv.timeout))
    if inv.json:
        inv.print(render.dumps([info.as_dict() for info in render.by_name_and_id(infos)]))
    elif infos:
        inv.print(render.render_ls(infos))
    else:
        inv.print("no services found")
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
    """``request SUBJECT [DATA]``: print the reply; an error reply -> stderr line, exit 1."""
    try:
        reply = await client.request(subject, data, headers, timeout=inv.timeout)
    except ServiceError as error:
        if inv.json:
            inv.print(render.dumps(_error_document(subject, error)))
        elif error.data:
            inv.print(render.render_reply_data(error.data))
        raise CommandError(render.render_service_error(error)) from None
    except NoRespondersError:
        raise CommandError(f"no responders on subject {subject!r}") from None
    except RequestTimeoutError:
        raise CommandError(f"no reply on subject {subject!r} within {inv.timeout:g} s") from None
    if inv.json:
        inv.print(render.dumps(render.msg_document(reply)))
    else:
        inv.print(render.render_reply(reply))
    return 0


def _error_document(subject: str, error: ServiceError) -> dict[str, Any]:
    return {
        "subject": subject,
        "headers": dict(error.headers),
        "data": render.render_reply_data(error.data),
        "error": {"code": error.code, "description": error.description},
    }
