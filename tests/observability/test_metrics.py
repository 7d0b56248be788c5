"""Prometheus metrics (``micro.metrics``): the in-process collector and the STATS exporter.

Scrapes go over real HTTP and are read with prometheus-client's own parser; the exporter
runs on both transports, and on a real nats-server it reports a nats-py ``nats.micro``
service next to ours.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from itertools import count
from typing import Any

import anyio
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from micro import Request, ServiceError, add_service
from micro.metrics import ServiceCollector, StatsExporter, parse_listen, serve_exporter
from transports.base import Transport

Connect = Callable[..., Awaitable[Transport]]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
WAIT = 10.0


def _samples(text: str) -> Samples:
    """Every sample of an exposition, keyed by (name, labels)."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def _labels(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


def _ticking_clock(step_ns: int) -> Callable[[], int]:
    """A monotonic clock that advances ``step_ns`` per reading: each request takes one step."""
    ticks = count()
    return lambda: next(ticks) * step_ns


async def _ok(request: Request) -> None:
    await request.respond(b"ok")


async def _refuse(request: Request) -> None:
    raise ServiceError(409, "conflict")


async def _scrape(url: str) -> str:
    def get() -> str:
        with urllib.request.urlopen(url, timeout=WAIT) as response:
            assert response.status == 200
            return str(response.read().decode())

    return await anyio.to_thread.run_sync(get)


# --------------------------------------------------------------------------- in-process


@pytest.mark.micro_both_transports
@pytest.mark.micro_broker(strict=False)
async def test_the_collector_reports_this_process_services(micro_connect: Connect) -> None:
    transport = await micro_connect()
    service = add_service(
        transport, "orders", "1.2.0", id_generator=lambda: "I1", clock=_ticking_clock(2_000_000)
    )
    registry = CollectorRegistry()
    collector = ServiceCollector([service], now=lambda: 1_700_000_000.0)
    registry.register(collector)
    async with service:
        await service.add_endpoint("place", _ok, subject="orders.place")
        await service.add_endpoint("cancel", _refuse, subject="orders.cancel")
        for subject in ("orders.place", "orders.place", "orders.cancel"):
            await transport.request(subject, b"", timeout=WAIT)
        found = _samples(generate_latest(registry).decode())
    instance = {"api_prefix": "$SRV", "service": "orders", "version": "1.2.0", "id": "I1"}
    place = _labels(**instance, endpoint="place", subject="orders.place")
    cancel = _labels(**instance, endpoint="cancel", subject="orders.cancel")
    assert found[("nats_service_requests_total", place)] == 2
    assert found[("nats_service_errors_total", place)] == 0
    assert found[("nats_service_requests_total", cancel)] == 1
    assert found[("nats_service_errors_total", cancel)] == 1
    assert found[("nats_service_processing_time_seconds_total", place)] == pytest.approx(0.004)
    assert found[("nats_service_average_processing_time_seconds", place)] == pytest.approx(0.002)
    assert found[("nats_service_up", _labels(**instance))] == 1
    assert found[("nats_service_last_seen_timestamp_seconds", _labels(**instance))] == 1.7e9
    assert found[("nats_service_started_timestamp_seconds", _labels(**instance))] == (
        service.started.timestamp()
    )
    # a stopped service reports nothing; remove() forgets it
    assert not [key for key in _samples(generate_latest(registry).decode()) if key[1]]
    collector.remove(service)
    collector.remove(service)


def test_the_collector_rejects_what_is_not_a_service() -> None:
    with pytest.raises(TypeError, match=r"micro\.Service objects, got 'orders'"):
        ServiceCollector(["orders"])  # type: ignore[list-item]


# --------------------------------------------------------------------------- exporter


@pytest.mark.micro_both_transports
async def test_the_exporter_serves_every_instance_and_prefix_over_http(
    micro_connect: Connect,
) -> None:
    instances = []
    for index, prefix in enumerate(("$SRV", "$SRV", "$ALT")):
        service = add_service(
            await micro_connect(),
            "stock",
            "3.0.0",
            id_generator=lambda index=index: f"S{index}",
            api_prefix=prefix,
            clock=_ticking_clock(1_000),
        )
        await service.start()
        await service.add_endpoint("count", _ok, subject=f"stock.count.{index}")
        instances.append(service)
    transport = await micro_connect()
    await transport.request("stock.count.1", b"", timeout=WAIT)
    clock = iter([100.0, 200.0, 300.0])
    exporter = StatsExporter(transport, ["$SRV", "$ALT"], forget_after=150, now=lambda: next(clock))
    async with serve_exporter(exporter, "127.0.0.1:0") as server:
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"
        first = _samples(await _scrape(server.url))
        await instances[0].stop()
        second = _samples(await _scrape(server.url))
        third = _samples(await _scrape(server.url))
    for service in instances[1:]:
        await service.stop()

    def instance(index: int) -> dict[str, str]:
        prefix = "$ALT" if index == 2 else "$SRV"
        return {"api_prefix": prefix, "service": "stock", "version": "3.0.0", "id": f"S{index}"}

    def endpoint(index: int) -> frozenset[tuple[str, str]]:
        return _labels(**instance(index), endpoint="count", subject=f"stock.count.{index}")

    assert {first[("nats_service_up", _labels(**instance(i)))] for i in range(3)} == {1}
    assert [first[("nats_service_requests_total", endpoint(i))] for i in range(3)] == [0, 1, 0]
    assert first[("nats_service_processing_time_seconds_total", endpoint(1))] == 1e-6
    assert first[("nats_service_scrape_duration_seconds", frozenset())] > 0
    # S0 stopped: up 0 with its last sighting, no endpoint series; then forgotten
    assert second[("nats_service_up", _labels(**instance(0)))] == 0
    assert second[("nats_service_last_seen_timestamp_seconds", _labels(**instance(0)))] == 100
    assert ("nats_service_requests_total", endpoint(0)) not in second
    assert second[("nats_service_up", _labels(**instance(2)))] == 1
    assert ("nats_service_up", _labels(**instance(0))) not in third
    assert third[("nats_service_last_seen_timestamp_seconds", _labels(**instance(1)))] == 300


@pytest.mark.anyio
class TestForeignServices:
    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"  # nats-py runs on asyncio only

    async def test_a_nats_py_micro_service_is_exported_with_ours(
        self, micro_nats_server: Any
    ) -> None:
        import nats
        import nats.micro

        from transports.nats import NatsTransport

        async def work(request: Any) -> None:
            await request.respond(b"done")

        nc = await nats.connect(micro_nats_server.url)
        transport = await NatsTransport.connect(micro_nats_server.url)
        foreign = await nats.micro.add_service(nc, name="pysvc", version="1.2.3")
        ours = add_service(transport, "ours", "1.0.0", id_generator=lambda: "O1")
        try:
            await foreign.add_endpoint(name="work", handler=work, subject="py.work")
            await nc.flush()
            await nc.flush()  # nats.micro's subscriptions live at the server (two round trips)
            async with ours:
                await ours.add_endpoint("mine", _ok)
                for subject in ("py.work", "py.work", "mine"):
                    await transport.request(subject, b"", timeout=WAIT)
                async with serve_exporter(StatsExporter(transport), "127.0.0.1:0") as server:
                    found = _samples(await _scrape(server.url))
        finally:
            await foreign.stop()
            await nc.close()
            await transport.close()
        py = {"api_prefix": "$SRV", "service": "pysvc", "version": "1.2.3", "id": foreign.id}
        mine = {"api_prefix": "$SRV", "service": "ours", "version": "1.0.0", "id": "O1"}
        assert found[("nats_service_up", _labels(**py))] == 1
        assert found[("nats_service_up", _labels(**mine))] == 1
        work_labels = _labels(**py, endpoint="work", subject="py.work")
        assert found[("nats_service_requests_total", work_labels)] == 2
        assert found[("nats_service_processing_time_seconds_total", work_labels)] > 0
        assert (
            found[("nats_service_requests_total", _labels(**mine, endpoint="mine", subject="mine"))]
            == 1
        )


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("127.0.0.1:9464", ("127.0.0.1", 9464)), ("[::1]:0", ("::1", 0)), ("host:1", ("host", 1))],
)
def test_listen_addresses_parse(text: str, parsed: tuple[str, int]) -> None:
    assert parse_listen(text) == parsed


@pytest.mark.parametrize("text", ["9464", ":9464", "host:", "host:http", "host:70000"])
def test_bad_listen_addresses_name_the_value_and_the_rule(text: str) -> None:
    with pytest.raises(ValueError, match=rf"invalid listen address '{text}': must be HOST:PORT"):
        parse_listen(text)


@pytest.mark.anyio
async def test_bad_exporter_options_are_refused(micro_transport: Transport) -> None:
    with pytest.raises(TypeError, match="got the str '\\$SRV'"):
        StatsExporter(micro_transport, "$SRV")
    with pytest.raises(ValueError, match="at least one api prefix"):
        StatsExporter(micro_transport, [])
    with pytest.raises(ValueError, match="invalid forget_after -1"):
        StatsExporter(micro_transport, forget_after=-1)
    with pytest.raises(RuntimeError, match="needs a portal"):
        StatsExporter(micro_transport).collect()


# --------------------------------------------------------------------------- the command


@pytest.fixture
def exporter_process(micro_nats_server: Any) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "micro", "exporter", "--server", micro_nats_server.url),
            *("--listen", "127.0.0.1:0", "--timeout", "1"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=WAIT)


@pytest.mark.anyio
class TestTheCommand:
    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    async def test_micro_exporter_serves_until_interrupted(
        self, exporter_process: subprocess.Popen[str], micro_nats_transport: Transport
    ) -> None:
        service = add_service(micro_nats_transport, "cli_seen", "0.1.0", id_generator=lambda: "C1")
        async with service:
            assert exporter_process.stdout is not None
            with anyio.fail_after(WAIT):
                line = await anyio.to_thread.run_sync(exporter_process.stdout.readline)
            assert line.startswith("serving http://127.0.0.1:"), line
            url = line.split()[1]
            found = _samples(await _scrape(url))
        labels = {"api_prefix": "$SRV", "service": "cli_seen", "version": "0.1.0", "id": "C1"}
        assert found[("nats_service_up", _labels(**labels))] == 1
        exporter_process.send_signal(signal.SIGINT)
        with anyio.fail_after(WAIT):
            code = await anyio.to_thread.run_sync(exporter_process.wait)
        assert code == 130


def test_micro_exporter_stops_when_its_server_goes_away() -> None:
    from testing.nats_server import NatsServer

    with NatsServer() as server:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "micro",
                "exporter",
                "--server",
                server.url,
                "--listen",
                "127.0.0.1:0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            assert process.stdout is not None
            assert process.stdout.readline().startswith("serving http://")
        except BaseException:
            process.kill()
            process.communicate(timeout=WAIT)
            raise
    try:
        _, err = process.communicate(timeout=WAIT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=WAIT)
    assert process.returncode == 1
    assert "micro: error: the connection to the server closed: the exporter stops" in err


def test_micro_exporter_refuses_a_bad_listen_address() -> None:
    from micro.cli import execute

    class Out:
        text = ""

        def write(self, text: str) -> None:
            self.text += text

        def flush(self) -> None: ...

    out, err = Out(), Out()
    code = execute(
        ["exporter", "--server", "memory://", "--listen", "nowhere"],
        stdout=out,  # type: ignore[arg-type]
        stderr=err,  # type: ignore[arg-type]
    )
    assert code == 2
    assert "invalid listen address 'nowhere'" in err.text
