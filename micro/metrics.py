"""Prometheus metrics of NATS services: an in-process collector and a ``$SRV.STATS`` exporter.

Needs the ``prometheus`` extra (``pip install 'nats-service-kit[prometheus]'``:
``prometheus-client``).  ``import micro`` never imports this module nor prometheus-client.

* :class:`ServiceCollector` reports the services of this process (``service.stats()``, no
  network): ``REGISTRY.register(ServiceCollector([service]))``.
* :class:`StatsExporter` gathers ``$SRV.STATS`` from every service on the server -- every
  name and instance, ours or foreign (Go, JavaScript, nats.py), under each configured api
  prefix -- on each scrape, and :func:`serve_exporter` serves it over HTTP (the command
  ``micro exporter --listen 127.0.0.1:9464``).

Metrics (the ``_total`` suffix is added by the exposition format for counters):

=====================================================  =======  ==============================
name                                                   type     labels
=====================================================  =======  ==============================
``nats_service_requests_total``                        counter  endpoint labels
``nats_service_errors_total``                          counter  endpoint labels
``nats_service_processing_time_seconds_total``         counter  endpoint labels
``nats_service_average_processing_time_seconds``       gauge    endpoint labels
``nats_service_up``                                    gauge    instance labels
``nats_service_last_seen_timestamp_seconds``           gauge    instance labels
``nats_service_started_timestamp_seconds``             gauge    instance labels
``nats_service_scrape_duration_seconds``               gauge    (exporter only)
=====================================================  =======  ==============================

Instance labels: ``api_prefix``, ``service``, ``version``, ``id``; endpoint labels add
``endpoint`` and ``subject``.  Durations are seconds (the STATS documents carry
nanoseconds).  ``up`` is 1 for an instance that answered this scrape; an instance that
answered an earlier scrape of the same exporter but not this one is kept with ``up`` 0 and
its ``last_seen`` for ``forget_after`` seconds (its endpoint series are dropped), so an
alert can tell "gone" from "never existed".
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.from_thread import BlockingPortal

try:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector, CollectorRegistry
except ImportError as _missing:  # pragma: no cover - exercised in a venv without the extra
    raise ImportError(
        "micro.metrics needs prometheus-client, which is not installed: "
        "pip install 'nats-service-kit[prometheus]'"
    ) from _missing

from micro.client import Client
from micro.control import DEFAULT_API_PREFIX, validate_api_prefix
from micro.models import ServiceStats
from micro.service import Service

__all__ = [
    "DEFAULT_FORGET_AFTER",
    "ExporterServer",
    "ServiceCollector",
    "StatsExporter",
    "build_families",
    "parse_listen",
    "serve_exporter",
]

PREFIX = "nats_service"
INSTANCE_LABELS = ("api_prefix", "service", "version", "id")
ENDPOINT_LABELS = (*INSTANCE_LABELS, "endpoint", "subject")
DEFAULT_FORGET_AFTER = 600.0
"""Seconds an instance that stopped answering keeps its ``up 0`` / ``last_seen`` series."""
_NANOS = 1e9


@dataclass(frozen=True, slots=True)
class _Seen:
    api_prefix: str
    service: str
    version: str
    id: str
    last_seen: float


def build_families(
    answered: Iterable[tuple[str, ServiceStats]],
    now: float,
    gone: Iterable[_Seen] = (),
) -> list[Metric]:
    """The metric families of the STATS documents ``answered`` (``(api_prefix, stats)``
    pairs) seen at ``now`` (Unix seconds), plus ``up 0`` series for instances ``gone``."""
    requests = CounterMetricFamily(
        f"{PREFIX}_requests",
        "Requests received by the endpoint (STATS num_requests)",
        labels=ENDPOINT_LABELS,
    )
    errors = CounterMetricFamily(
        f"{PREFIX}_errors",
        "Requests that ended in an error (STATS num_errors)",
        labels=ENDPOINT_LABELS,
    )
    processing = CounterMetricFamily(
        f"{PREFIX}_processing_time_seconds",
        "Total time spent handling requests (STATS processing_time)",
        labels=ENDPOINT_LABELS,
    )
    average = GaugeMetricFamily(
        f"{PREFIX}_average_processing_time_seconds",
        "Average time spent handling one request (STATS average_processing_time)",
        labels=ENDPOINT_LABELS,
    )
    up = GaugeMetricFamily(
        f"{PREFIX}_up",
        "1 if the instance answered this scrape, 0 if it answered an earlier one",
        labels=INSTANCE_LABELS,
    )
    last_seen = GaugeMetricFamily(
        f"{PREFIX}_last_seen_timestamp_seconds",
        "When the instance last answered a STATS request (Unix time)",
        labels=INSTANCE_LABELS,
    )
    started = GaugeMetricFamily(
        f"{PREFIX}_started_timestamp_seconds",
        "When the instance started or was last reset (STATS started, Unix time)",
        labels=INSTANCE_LABELS,
    )
    for api_prefix, stats in answered:
        instance = [api_prefix, stats.name, stats.version, stats.id]
        up.add_metric(instance, 1)
        last_seen.add_metric(instance, now)
        started.add_metric(instance, stats.started.timestamp())
        for endpoint in stats.endpoints:
            labels = [*instance, endpoint.name, endpoint.subject]
            requests.add_metric(labels, endpoint.num_requests)
            errors.add_metric(labels, endpoint.num_errors)
            processing.add_metric(labels, endpoint.processing_time / _NANOS)
            average.add_metric(labels, endpoint.average_processing_time / _NANOS)
    for seen in gone:
        instance = [seen.api_prefix, seen.service, seen.version, seen.id]
        up.add_metric(instance, 0)
        last_seen.add_metric(instance, seen.last_seen)
    return [requests, errors, processing, average, up, last_seen, started]


class ServiceCollector(Collector):
    """A Prometheus collector of the services of this process (no network).

    ``services`` is the initial set; :meth:`add` and :meth:`remove` change it.  Each
    collection reads ``service.stats()`` of every service that is not stopped (a stopped
    service has no endpoints), with the metrics of the module docstring (``api_prefix`` is
    the service's own).  Register it with ``prometheus_client.REGISTRY.register(...)`` or
    any ``CollectorRegistry``; collection is thread-safe (the exposition server of
    prometheus-client collects in its own thread).
    """

    def __init__(
        self, services: Iterable[Service] = (), *, now: Callable[[], float] = time.time
    ) -> None:
        self._services: list[Service] = []
        self._lock = threading.Lock()
        self._now = now
        for service in services:
            self.add(service)

    def add(self, service: Service) -> None:
        """Report ``service`` too (``TypeError`` for something else; adding twice is a no-op)."""
        if not isinstance(service, Service):
            raise TypeError(f"ServiceCollector reports micro.Service objects, got {service!r}")
        with self._lock:
            if service not in self._services:
                self._services.append(service)

    def remove(self, service: Service) -> None:
        """Stop reporting ``service`` (no-op when it is not reported)."""
        with self._lock:
            if service in self._services:
                self._services.remove(service)

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            services = [s for s in self._services if not s.stopped()]
        answered = [(service.api_prefix, service.stats()) for service in services]
        return build_families(answered, self._now())


class StatsExporter(Collector):
    """Gathers ``$SRV.STATS`` from every service instance on each scrape.

    ``client`` is a :class:`~micro.client.Client` (or anything it accepts: a transport, a
    nats-py client); ``api_prefixes`` the control prefixes to ask (default ``("$SRV",)``;
    each is validated).  ``max_wait`` bounds one gathering (default 2.0 s: the scrape
    takes at most that, all prefixes gathered concurrently), and a gathering also ends
    after ``max_interval`` seconds without a new reply (default 0.3 s, as
    :meth:`Client.stats <micro.client.Client.stats>`).  ``forget_after``: see the module
    docstring.  ``now`` gives Unix seconds (for ``last_seen``).

    :meth:`scrape` is the async gathering; :meth:`collect` (the prometheus-client collector
    protocol) calls it through the portal given to :meth:`bind_portal`, so a registry's
    HTTP thread can scrape while the event loop serves the connection.
    """

    def __init__(
        self,
        client: Client | Any,
        api_prefixes: Sequence[str] = (DEFAULT_API_PREFIX,),
        *,
        max_wait: float = 2.0,
        max_interval: float = 0.3,
        forget_after: float = DEFAULT_FORGET_AFTER,
        now: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(api_prefixes, str):
            raise TypeError(
                f"api_prefixes must be a sequence of prefixes, got the str {api_prefixes!r}"
            )
        prefixes = tuple(dict.fromkeys(api_prefixes))
        if not prefixes:
            raise ValueError("api_prefixes must name at least one api prefix, got none")
        base = client if isinstance(client, Client) else Client(client)
        self._clients = [
            Client(base.transport, max_wait, validate_api_prefix(prefix)) for prefix in prefixes
        ]
        if not (isinstance(max_interval, (int, float)) and max_interval > 0):
            raise ValueError(f"invalid max_interval {max_interval!r}: must be a number > 0")
        if not (isinstance(forget_after, (int, float)) and forget_after >= 0):
            raise ValueError(f"invalid forget_after {forget_after!r}: must be a number >= 0")
        self._max_interval = float(max_interval)
        self._forget_after = float(forget_after)
        self._now = now
        self._seen: dict[tuple[str, str, str, str], _Seen] = {}
        self._portal: BlockingPortal | None = None
        self._scrape_timeout = max_wait + 5.0

    @property
    def api_prefixes(self) -> tuple[str, ...]:
        return tuple(client.api_prefix for client in self._clients)

    def bind_portal(self, portal: BlockingPortal | None) -> None:
        """The portal :meth:`collect` runs :meth:`scrape` through (``None`` unbinds)."""
        self._portal = portal

    async def gather(self) -> list[tuple[str, ServiceStats]]:
        """``(api_prefix, stats)`` of every instance that answered, all prefixes at once."""
        results: list[list[ServiceStats]] = [[] for _ in self._clients]

        async def one(index: int, client: Client) -> None:
            results[index] = await client.stats(max_interval=self._max_interval)

        async with anyio.create_task_group() as group:
            for index, client in enumerate(self._clients):
                group.start_soon(one, index, client)
        return [
            (client.api_prefix, stats)
            for client, found in zip(self._clients, results, strict=True)
            for stats in found
        ]

    async def scrape(self) -> list[Metric]:
        """Gather, update what was seen, and build the metric families of one scrape."""
        started = time.perf_counter()
        answered = await self.gather()
        now = self._now()
        present = set()
        for api_prefix, stats in answered:
            key = (api_prefix, stats.name, stats.version, stats.id)
            present.add(key)
            self._seen[key] = _Seen(*key, last_seen=now)
        gone = []
        for key, seen in list(self._seen.items()):
            if key in present:
                continue
            if now - seen.last_seen > self._forget_after:
                del self._seen[key]
            else:
                gone.append(seen)
        families = build_families(answered, now, gone)
        duration = GaugeMetricFamily(
            f"{PREFIX}_scrape_duration_seconds", "How long gathering $SRV.STATS took"
        )
        duration.add_metric([], time.perf_counter() - started)
        families.append(duration)
        return families

    def collect(self) -> Iterable[Metric]:
        portal = self._portal
        if portal is None:
            raise RuntimeError(
                "StatsExporter.collect() needs a portal to its event loop: call "
                "bind_portal() (serve_exporter does) or await scrape() instead"
            )
        return portal.call(self._scrape_bounded)

    async def _scrape_bounded(self) -> list[Metric]:
        with anyio.fail_after(self._scrape_timeout):
            return await self.scrape()


@dataclass(frozen=True, slots=True)
class ExporterServer:
    """A running exporter: the address it listens on and its registry."""

    host: str
    port: int
    registry: CollectorRegistry

    @property
    def url(self) -> str:
        """The scrape URL, ``http://host:port/metrics``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"


def parse_listen(text: str) -> tuple[str, int]:
    """``"HOST:PORT"`` (``[v6]:PORT`` too) -> ``(host, port)``; ``ValueError`` naming the
    text and the rule otherwise.  Port 0 picks a free port."""
    host, sep, port_text = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(
            f"invalid listen address {text!r}: must be HOST:PORT with a port 0-65535 "
            "(e.g. 127.0.0.1:9464)"
        )
    return host, int(port_text)


@asynccontextmanager
async def serve_exporter(
    exporter: StatsExporter, listen: str = "127.0.0.1:9464"
) -> AsyncIterator[ExporterServer]:
    """Serve ``exporter`` on ``http://<listen>/metrics`` while the block runs.

    The HTTP server is prometheus-client's (its own thread); each scrape runs
    :meth:`StatsExporter.scrape` in this event loop through a portal.  ``listen`` is
    ``HOST:PORT`` (port 0: a free one; see the yielded :class:`ExporterServer`).
    Raises ``ValueError`` for a bad address and ``OSError`` when it cannot bind.
    """
    from prometheus_client.exposition import start_http_server

    host, port = parse_listen(listen)
    registry = CollectorRegistry(auto_describe=False)
    async with BlockingPortal() as portal:
        exporter.bind_portal(portal)
        registry.register(exporter)
        server, thread = start_http_server(port, host, registry)
        try:
            yield ExporterServer(host, int(server.server_address[1]), registry)
        finally:
            exporter.bind_portal(None)
            # shutdown() waits for the serving thread: run it off the loop, which a
            # scrape in flight may be waiting on
            await anyio.to_thread.run_sync(_stop_server, server, thread)


def _stop_server(server: Any, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(timeout=5.0)
