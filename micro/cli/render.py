"""Text and JSON rendering of discovery results for ``python -m micro``.

Pure functions from models to strings: tables with aligned columns, durations in human
units, and JSON documents (the wire form of each model, so ``--json`` output can be fed to
any tool that reads ``nats micro`` documents).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from micro.errors import ServiceError
from micro.models import PingInfo, ServiceInfo, ServiceStats
from transports.base import Msg

__all__ = [
    "by_name_and_id",
    "dumps",
    "error_document",
    "format_duration",
    "format_metadata",
    "msg_document",
    "render_info",
    "render_info_and_stats",
    "render_ls",
    "render_ping",
    "render_reply",
    "render_reply_data",
    "render_service_error",
    "render_stats",
    "table",
]


def table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], right: Iterable[int] = ()
) -> str:
    """Rows under headers, columns padded to their widest cell (two spaces between).

    Columns whose index is in ``right`` are right-aligned (numbers).  Cells are ``str()``ed;
    newlines inside a cell are shown as spaces.  No trailing spaces.
    """
    text_rows = [[str(cell).replace("\n", " ") for cell in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in text_rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))
    right_set = set(right)

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(widths[i]) if i in right_set else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(padded).rstrip()

    return "\n".join([line(list(headers)), *(line(row) for row in text_rows)])


def format_duration(nanoseconds: int | float) -> str:
    """``0``, ``850ns``, ``52.0µs``, ``1.50ms``, ``2.25s`` (three significant-ish digits)."""
    ns = float(nanoseconds)
    if ns == 0:
        return "0"
    for unit, size in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if abs(ns) >= size:
            value = ns / size
            return f"{value:.2f}{unit}" if value < 10 else f"{value:.1f}{unit}"
    return f"{ns:.0f}ns"


def format_metadata(metadata: Mapping[str, str] | None) -> str:
    """``k=v, k2=v2`` in key order, ``-`` when empty."""
    if not metadata:
        return "-"
    return ", ".join(f"{key}={metadata[key]}" for key in sorted(metadata))


def by_name_and_id(items: Iterable[Any]) -> list[Any]:
    """Sorted by service name, then instance id (as ``nats micro`` lists them)."""
    return sorted(items, key=lambda item: (item.name, item.id))


def render_ls(infos: Sequence[ServiceInfo]) -> str:
    """One row per instance: name, id, version, number of endpoints, description."""
    rows = [
        (info.name, info.id, info.version, len(info.endpoints), info.description or "-")
        for info in by_name_and_id(infos)
    ]
    header = ("NAME", "ID", "VERSION", "ENDPOINTS", "DESCRIPTION")
    total = len(rows)
    names = len({row[0] for row in rows})
    summary = f"{total} instance{'s' * (total != 1)} of {names} service{'s' * (names != 1)}"
    return table(header, rows, right=(3,)) + "\n\n" + summary


def render_info(infos: Sequence[ServiceInfo]) -> str:
    """A block per instance: identity, description, metadata, then its endpoints table."""
    blocks = []
    for info in by_name_and_id(infos):
        lines = [
            f"Service: {info.name} {info.version} (id {info.id})",
            f"  Description: {info.description or '-'}",
            f"  Metadata:    {format_metadata(info.metadata)}",
        ]
        if info.endpoints:
            rows = [
                (e.name, e.subject, e.queue_group or "-", format_metadata(e.metadata))
                for e in info.endpoints
            ]
            endpoints = table(("ENDPOINT", "SUBJECT", "QUEUE GROUP", "METADATA"), rows)
            lines.append("")
            lines.extend("  " + row for row in endpoints.splitlines())
        else:
            lines.append("  Endpoints:   none")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def render_stats(all_stats: Sequence[ServiceStats]) -> str:
    """A block per instance: identity and start time, then per-endpoint counters; after
    several instances, their totals (as the footer of ``nats micro stats``)."""
    blocks = []
    for stats in by_name_and_id(all_stats):
        started = stats.started.isoformat().replace("+00:00", "Z")
        requests = sum(e.num_requests for e in stats.endpoints)
        errors = sum(e.num_errors for e in stats.endpoints)
        lines = [
            f"Service: {stats.name} {stats.version} (id {stats.id})",
            f"  Started: {started}   Requests: {requests}   Errors: {errors}",
        ]
        if stats.endpoints:
            rows = [
                (
                    e.name,
                    e.subject,
                    e.num_requests,
                    e.num_errors,
                    format_duration(e.average_processing_time),
                    format_duration(e.processing_time),
                    e.last_error or "-",
                )
                for e in stats.endpoints
            ]
            header = ("ENDPOINT", "SUBJECT", "REQUESTS", "ERRORS", "AVERAGE", "TOTAL", "LAST ERROR")
            lines.append("")
            lines.extend("  " + row for row in table(header, rows, right=(2, 3, 4, 5)).splitlines())
        blocks.append("\n".join(lines))
    if len(all_stats) > 1:
        endpoints = [e for stats in all_stats for e in stats.endpoints]
        requests = sum(e.num_requests for e in endpoints)
        total = sum(e.processing_time for e in endpoints)
        average = total / requests if requests else 0
        blocks.append(
            f"Total of {len(all_stats)} instances: {requests} requests, "
            f"{sum(e.num_errors for e in endpoints)} errors, processing {format_duration(total)}"
            f" (average {format_duration(average)})"
        )
    return "\n\n".join(blocks)


def render_info_and_stats(pairs: Sequence[tuple[ServiceInfo, ServiceStats | None]]) -> str:
    """Per instance, its INFO block then the counters of its STATS block (``Statistics:
    no reply`` when its STATS did not come in time)."""
    blocks = []
    for info, stats in pairs:
        lines = render_info([info]).splitlines()
        if stats is None:
            lines += ["", "  Statistics: no reply"]
        else:
            lines += ["", *render_stats([stats]).splitlines()[1:]]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def render_ping(replies: Sequence[tuple[PingInfo, float]]) -> str:
    """One row per reply in arrival order: name, id, version and round-trip time."""
    rows = [(p.name, p.id, p.version, f"{rtt * 1000:.2f}ms") for p, rtt in replies]
    return table(("NAME", "ID", "VERSION", "RTT"), rows, right=(3,))


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="backslashreplace")


def render_reply_data(data: bytes) -> str:
    """A payload as text (undecodable bytes shown as ``\\xNN``)."""
    return _text(data)


def render_reply(msg: Msg) -> str:
    """The reply payload as text (undecodable bytes shown as ``\\xNN``)."""
    return _text(msg.data)


def render_service_error(error: ServiceError) -> str:
    """``service error <code>: <description>`` (one line)."""
    where = f" from {error.subject}" if error.subject else ""
    return f"service error {error.code}{where}: {error.description}"


def payload_fields(data: bytes) -> dict[str, Any]:
    """``{"data": text or None, "data_base64": ...}``: the payload as UTF-8 text when it is
    valid UTF-8 (else ``None``), and always its exact bytes in base64 -- never ambiguous."""
    try:
        text: str | None = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return {"data": text, "data_base64": base64.b64encode(data).decode("ascii")}


def msg_document(msg: Msg) -> dict[str, Any]:
    """A JSON-ready view of a reply: subject, headers, payload (:func:`payload_fields`)."""
    return {
        "subject": msg.subject,
        "headers": dict(msg.headers) if msg.headers else {},
        **payload_fields(msg.data),
    }


def error_document(subject: str, error: ServiceError) -> dict[str, Any]:
    """A JSON-ready view of an error reply: as :func:`msg_document`, plus ``error``."""
    return {
        "subject": subject,
        "headers": dict(error.headers),
        **payload_fields(error.data),
        "error": {"code": error.code, "description": error.description},
    }


def dumps(document: Any) -> str:
    """Indented JSON text (non-ASCII kept)."""
    return json.dumps(document, indent=2, ensure_ascii=False)
