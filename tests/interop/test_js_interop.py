"""Wire compatibility with the JavaScript reference implementation (nats.js, ADR-32).

On one real nats-server (this directory's own, see ``conftest.py``):

1. our :class:`~micro.Client` discovers a service written with ``@nats-io/services``
   (``js/service.mjs``) and calls its endpoints, error replies included; it also reads the
   STATS of a nats.js iterator-style endpoint (unrounded average processing times);
2. the nats.js client (``js/client.mjs``) discovers a service written with ``micro`` and calls
   its endpoints, reading our error headers;
3. ``python -m micro ls --json`` lists both.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from micro import Client, Request, Service, ServiceError, add_service
from micro.models import PingInfo, ServiceInfo, ServiceStats
from testing.nats_server import NatsServer
from transports import connect
from transports.base import Transport

if TYPE_CHECKING:  # conftest is not importable at run time (tests/ is not a package)
    from conftest import JsClient, JsService

pytestmark = pytest.mark.anyio

CLI_TIMEOUT = 20.0
SLACK = timedelta(seconds=1)  # clock granularity when comparing ``started`` with our clocks

JS_METADATA = {"lang": "javascript", "library": "@nats-io/services"}
PY_METADATA = {"lang": "python", "library": "nats-service-kit"}


# --------------------------------------------------------------------------- helpers


def only(documents: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [document for document in documents if document.get("name") == name]
    assert len(found) == 1, f"expected one {name!r} document, got {documents}"
    return found[0]


def by_name(endpoints: list[Any]) -> dict[str, Any]:
    return {endpoint.name: endpoint for endpoint in endpoints}


# --------------------------------------------------------------------------- our service


async def echo(request: Request) -> None:
    await request.respond(request.data())


async def reject(request: Request) -> None:
    raise ServiceError(409, "py says no")


async def crash(request: Request) -> None:
    raise RuntimeError("secret detail")


@pytest.fixture
async def transport(interop_server: NatsServer) -> AsyncIterator[Transport]:
    async with await connect(interop_server.url) as connection:
        yield connection


@pytest.fixture
async def py_service(transport: Transport) -> AsyncIterator[Service]:
    """``py-echo``: group ``py`` (queue group ``pyq``) with ``echo``, ``reject`` (a
    ServiceError 409) and ``crash`` (a plain exception: 500 Internal Server Error)."""
    service = add_service(
        transport,
        "py-echo",
        "0.4.2",
        description="echo service written with nats-service-kit",
        metadata=PY_METADATA,
        stats_handler=lambda endpoint: {"endpoint": endpoint.name, "lang": "python"},
    )
    async with service:
        group = service.add_group("py", queue_group="pyq")
        await group.add_endpoint("echo", echo, metadata={"kind": "echo"})
        await group.add_endpoint("reject", reject)
        await group.add_endpoint("crash", crash)
        yield service


# --------------------------------------------------------------------------- 1. we discover JS


async def test_our_client_discovers_and_calls_the_js_service(
    transport: Transport, js_service: JsService
) -> None:
    client = Client(transport)

    [ping] = await client.ping("js-echo", max_count=1)
    assert isinstance(ping, PingInfo)
    assert (ping.type, ping.name, ping.id, ping.version, ping.metadata) == (
        "io.nats.micro.v1.ping_response",
        "js-echo",
        js_service.id,
        "1.2.3",
        JS_METADATA,
    )
    assert await client.instance("js-echo", js_service.id).ping() == ping

    [info] = await client.info("js-echo", max_count=1)
    assert isinstance(info, ServiceInfo)
    assert (info.type, info.name, info.id, info.version) == (
        "io.nats.micro.v1.info_response",
        "js-echo",
        js_service.id,
        "1.2.3",
    )
    assert info.description == "echo service written with nats.js"
    assert info.metadata == JS_METADATA
    assert [
        (endpoint.name, endpoint.subject, endpoint.queue_group, endpoint.metadata)
        for endpoint in info.endpoints
    ] == [
        ("echo", "js.echo", "jsq", {"kind": "echo"}),
        ("fail", "js.fail", "q", None),  # nats.js leaves unset endpoint metadata out
    ]

    [before] = await client.stats("js-echo", max_count=1)

    assert (await client.request("js.echo", b"one")).data == b"one"
    assert (await client.request_endpoint("js-echo", "echo", b"two")).data == b"two"
    with pytest.raises(ServiceError) as raised:
        await client.request("js.fail", b"three")
    assert (raised.value.code, raised.value.description) == (422, "js says no")
    assert raised.value.subject == "js.fail"
    assert raised.value.headers["Nats-Service-Error-Code"] == "422"

    [after] = await client.stats("js-echo", max_count=1)
    assert isinstance(after, ServiceStats)
    assert (after.type, after.name, after.id, after.version, after.metadata) == (
        "io.nats.micro.v1.stats_response",
        "js-echo",
        js_service.id,
        "1.2.3",
        JS_METADATA,
    )
    assert after.started.tzinfo is not None
    assert after.started.utcoffset() == timedelta(0)
    assert js_service.spawned_at - SLACK <= after.started <= js_service.ready_at + SLACK
    assert after.started == before.started

    old, new = by_name(before.endpoints), by_name(after.endpoints)
    assert [endpoint.name for endpoint in after.endpoints] == ["echo", "fail"]
    echo_stats, fail_stats = new["echo"], new["fail"]
    assert (echo_stats.subject, echo_stats.queue_group) == ("js.echo", "jsq")
    assert (fail_stats.subject, fail_stats.queue_group) == ("js.fail", "q")
    assert echo_stats.num_requests - old["echo"].num_requests == 2
    assert echo_stats.num_errors == old["echo"].num_errors == 0
    assert echo_stats.last_error == ""  # nats.js leaves it out until an error happens
    assert fail_stats.num_requests - old["fail"].num_requests == 1
    assert fail_stats.num_errors - old["fail"].num_errors == 1
    assert fail_stats.last_error == "js says no"
    for endpoint in after.endpoints:
        assert isinstance(endpoint.processing_time, int)
        assert isinstance(endpoint.average_processing_time, int)
        assert 0 <= endpoint.average_processing_time <= endpoint.processing_time
        assert endpoint.data == {"endpoint": endpoint.name, "lang": "javascript"}


async def test_our_client_reads_stats_of_a_js_iterator_endpoint(
    transport: Transport, js_iterator_service: JsService
) -> None:
    client = Client(transport)
    for _ in range(7):  # 7 divides no 1..6 ms total: nats.js' average has a fraction
        assert (await client.request("js.spin", b"x")).data == b"x"
    raw = await transport.request("$SRV.STATS.js-iter", b"", timeout=2)
    [sent] = json.loads(raw.data)["endpoints"]
    assert sent["num_requests"] == 7
    assert not float(sent["average_processing_time"]).is_integer(), sent  # the precondition

    [stats] = await client.stats("js-iter", max_wait=1.0, max_count=1)

    [endpoint] = stats.endpoints
    assert (endpoint.name, endpoint.num_requests) == ("spin", 7)
    assert isinstance(endpoint.average_processing_time, int)
    assert abs(endpoint.average_processing_time - sent["average_processing_time"]) <= 1


# --------------------------------------------------------------------------- 2. JS discovers us


async def test_the_js_client_discovers_and_calls_our_service(
    transport: Transport,
    py_service: Service,
    js_service: JsService,
    run_js_client: JsClient,
) -> None:
    client = Client(transport)
    for data in (b"a", b"b"):
        assert (await client.request("py.echo", data)).data == data
    for subject, code in (("py.reject", 409), ("py.crash", 500)):
        with pytest.raises(ServiceError) as raised:
            await client.request(subject)
        assert raised.value.code == code

    output = await run_js_client(
        "--expect",
        "2",  # js-echo and py-echo
        "--data",
        "hi",
        *("--request", "py.echo", "--request", "py.reject", "--request", "py.crash"),
    )

    # requests, as nats.js reads the replies
    assert output["requests"] == [
        {"subject": "py.echo", "data": "hi", "headers": {}, "service_error": None},
        {
            "subject": "py.reject",
            "data": "",
            "headers": {"Nats-Service-Error-Code": ["409"], "Nats-Service-Error": ["py says no"]},
            "service_error": {"code": 409, "message": "py says no"},
        },
        {
            "subject": "py.crash",
            "data": "",
            "headers": {
                "Nats-Service-Error-Code": ["500"],
                "Nats-Service-Error": ["Internal Server Error"],
            },
            "service_error": {"code": 500, "message": "Internal Server Error"},
        },
    ]

    # PING / INFO: exactly what we configured, in the types nats.js expects
    assert {document["name"] for document in output["ping"]} == {"js-echo", "py-echo"}
    assert only(output["ping"], "py-echo") == {
        "type": "io.nats.micro.v1.ping_response",
        "name": "py-echo",
        "id": py_service.id,
        "version": "0.4.2",
        "metadata": PY_METADATA,
    }
    endpoint_info = {"queue_group": "pyq", "metadata": None}
    assert only(output["info"], "py-echo") == {
        "type": "io.nats.micro.v1.info_response",
        "name": "py-echo",
        "id": py_service.id,
        "version": "0.4.2",
        "description": "echo service written with nats-service-kit",
        "metadata": PY_METADATA,
        "endpoints": [
            {**endpoint_info, "name": "echo", "subject": "py.echo", "metadata": {"kind": "echo"}},
            {**endpoint_info, "name": "reject", "subject": "py.reject"},
            {**endpoint_info, "name": "crash", "subject": "py.crash"},
        ],
    }

    # STATS: counters include the Python and the JS requests; started parsed by JS
    stats = only(output["stats"], "py-echo")
    assert {key: stats[key] for key in ("type", "name", "id", "version", "metadata")} == {
        "type": "io.nats.micro.v1.stats_response",
        "name": "py-echo",
        "id": py_service.id,
        "version": "0.4.2",
        "metadata": PY_METADATA,
    }
    assert isinstance(stats["started"], str)
    started_ms = output["started_ms"][py_service.id]
    assert started_ms is not None, f"nats.js cannot parse started={stats['started']!r}"
    started = datetime.fromtimestamp(started_ms / 1000, timezone.utc)
    assert abs(started - py_service.started) < timedelta(milliseconds=1)  # JS keeps milliseconds
    assert started <= datetime.now(timezone.utc)
    counters = {
        endpoint["name"]: (endpoint["num_requests"], endpoint["num_errors"], endpoint["last_error"])
        for endpoint in stats["endpoints"]
    }
    assert counters == {
        "echo": (3, 0, ""),
        "reject": (2, 2, "409:py says no"),
        "crash": (2, 2, "500:RuntimeError: secret detail"),
    }
    for endpoint in stats["endpoints"]:
        assert endpoint["subject"] == f"py.{endpoint['name']}"
        assert endpoint["queue_group"] == "pyq"
        assert endpoint["data"] == {"endpoint": endpoint["name"], "lang": "python"}
        for key in ("num_requests", "num_errors", "processing_time", "average_processing_time"):
            assert isinstance(endpoint[key], int), (key, endpoint[key])
        assert 0 <= endpoint["average_processing_time"] <= endpoint["processing_time"]

    # every key nats.js itself writes (seen on its own js-echo documents), we write too
    for verb in ("ping", "info", "stats"):
        theirs, ours = only(output[verb], "js-echo"), only(output[verb], "py-echo")
        assert set(theirs) <= set(ours), verb
        for their_endpoint in theirs.get("endpoints", []):
            for our_endpoint in ours["endpoints"]:
                assert set(their_endpoint) <= set(our_endpoint), (verb, their_endpoint)


# --------------------------------------------------------------------------- 3. the CLI


async def test_cli_ls_lists_the_js_service_and_ours(
    py_service: Service, js_service: JsService, interop_server: NatsServer
) -> None:
    command = [sys.executable, "-m", "micro", "ls", "--server", interop_server.url, "--json"]
    with anyio.fail_after(CLI_TIMEOUT):
        done = await anyio.run_process(
            command, cwd=Path(__file__).parents[2], stdin=subprocess.DEVNULL, check=False
        )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    listed = json.loads(done.stdout)
    assert sorted((info["name"], info["id"], info["version"]) for info in listed) == [
        ("js-echo", js_service.id, "1.2.3"),
        ("py-echo", py_service.id, "0.4.2"),
    ]
    js_info = only(listed, "js-echo")
    assert [endpoint["subject"] for endpoint in js_info["endpoints"]] == ["js.echo", "js.fail"]
    assert js_info["metadata"] == JS_METADATA
