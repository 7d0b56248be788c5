"""Run a cluster of real ``nats-server`` processes (routes on loopback) for tests.

    with NatsCluster(size=3) as cluster:        # every node on 127.0.0.1, free ports
        transport = await NatsTransport.connect(cluster.urls)   # all nodes, for failover
        cluster.kill(1)                          # a crash: SIGKILL, clients get no goodbye
        cluster.restart(1)                       # back on the same ports, routes re-formed

Each node is a :class:`testing.nats_server.NatsServer` with a client port, a route (cluster)
port and an HTTP monitoring port, all chosen by the server itself on first start (read back
from its log, so parallel runs never race for a port) and kept for restarts.  Node 0 starts
first; every later node names the route ports known so far, and gossip completes the mesh.
``start()`` and ``restart()`` return only once the routes are up, checked on each node's
``/routez`` monitoring endpoint (polled on 127.0.0.1 with a short pause, bounded by
``route_timeout``: route formation has no event a client could wait on).

:meth:`NatsCluster.wait_for_interest` waits, the same way, until a node has learnt over its
routes that other nodes have subscribers on a subject: interest propagates between servers
asynchronously, so a request sent through another node right after ``subscribe()`` returned
may still find no responders.

This module does not import nats-py; its methods block (call them through
``anyio.to_thread.run_sync`` from async code, or use ``async with``).
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .nats_server import Launcher, NatsServer, NatsServerError, poll_until

__all__ = ["NatsCluster", "NatsClusterError"]

_LOGGED_PORTS = {
    "route": re.compile(r"Listening for route connections on \S+:(\d+)"),
    "monitoring": re.compile(r"Starting http monitor on \S+:(\d+)"),
}
"""How a node logs the port of each listener this class opens besides the client one."""
_POLL_PAUSE = 0.01
"""Seconds between two looks at a monitoring endpoint (the only thing that is polled)."""


class NatsClusterError(NatsServerError):
    """The cluster did not form (routes or interest) in time; carries what was seen."""


class NatsCluster(Launcher):
    """``size`` nats-server processes on ``host`` (loopback only), joined by routes.

    ``name`` is the cluster name (the same on every node); ``args`` are extra command-line
    options for every node (not ``-a``/``-p``, nor the cluster and monitoring options this
    class sets); ``config_file`` is passed to every node as ``-c`` (e.g. authorization).
    Raises ``ValueError`` for a ``size`` below 2 and what :class:`NatsServer` raises for a
    bad host, args, config file or a missing binary.
    """

    def __init__(
        self,
        size: int = 3,
        *,
        name: str = "micro-test",
        host: str = "127.0.0.1",
        args: Sequence[str] = (),
        config_file: str | Path | None = None,
        binary: str | Path | None = None,
        start_timeout: float = 10.0,
        route_timeout: float = 10.0,
    ) -> None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 2:
            raise ValueError(
                f"size must be an int >= 2 (a cluster has several nodes), got {size!r}"
            )
        if not isinstance(name, str) or not name or any(c.isspace() for c in name):
            raise ValueError(f"name must be a non-empty str without whitespace, got {name!r}")
        self.name = name
        self.host = host
        self.route_timeout = route_timeout
        self._extra = list(args)
        self.nodes: list[NatsServer] = [
            NatsServer(
                host=host,
                args=args,
                config_file=config_file,
                binary=binary,
                start_timeout=start_timeout,
            )
            for _ in range(size)
        ]
        self._ports: list[dict[str, int]] = [{} for _ in range(size)]  # kept for restarts

    def __repr__(self) -> str:
        states = "".join("U" if node.is_running else "-" for node in self.nodes)
        return f"<NatsCluster {self.name!r} nodes={states}>"

    # ------------------------------------------------------------------ addresses

    @property
    def size(self) -> int:
        return len(self.nodes)

    @property
    def urls(self) -> list[str]:
        """The client URLs of every node, in node order (give them all to a client that
        should fail over)."""
        return [node.url for node in self.nodes]

    def url(self, index: int) -> str:
        """The client URL of node ``index``."""
        return self.nodes[index].url

    def route_url(self, index: int) -> str:
        """``nats://host:port`` of node ``index``'s route listener (after its first start)."""
        return f"nats://{self.host}:{self._port(index, 'route')}"

    def monitor_url(self, index: int) -> str:
        """``http://host:port`` of node ``index``'s monitoring endpoint."""
        return f"http://{self.host}:{self._port(index, 'monitoring')}"

    def is_running(self, index: int) -> bool:
        return self.nodes[index].is_running

    def _port(self, index: int, listener: str) -> int:
        port = self._ports[index].get(listener)
        if port is None:
            raise RuntimeError(
                f"node {index} has not been started yet: its {listener} port is unknown"
            )
        return port

    # ------------------------------------------------------------------ life cycle

    def start(self) -> NatsCluster:
        """Start every node (in order) and return once all routes are up.

        Raises :class:`NatsServerError` if a node does not start and
        :class:`NatsClusterError` if the routes do not form within ``route_timeout``; the
        nodes already started are stopped first.
        """
        try:
            for index in range(self.size):
                if not self.nodes[index].is_running:
                    self._start_node(index)
            self.wait_for_routes()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_node(self, index: int) -> None:
        node = self.nodes[index]
        ports = self._ports[index]
        routes = [
            self.route_url(other)
            for other in range(self.size)
            if other != index and self._ports[other]
        ]
        node.args = [
            *self._extra,
            "--cluster_name",
            self.name,
            "--cluster",
            f"nats://{self.host}:{ports.get('route', -1)}",
            "-m",
            str(ports.get("monitoring", -1)),
        ]
        if routes:
            node.args += ["--routes", ",".join(routes)]
        node.start()
        self._ports[index] = self._logged_ports(index)

    def _logged_ports(self, index: int) -> dict[str, int]:
        """The ports node ``index`` logs for its route and monitoring listeners (the route
        listener is logged a moment after the server reports ready: wait for the lines,
        bounded)."""
        node = self.nodes[index]

        def expired() -> NatsClusterError:
            return NatsClusterError(
                f"node {index} did not report its {' and '.join(_LOGGED_PORTS)} ports:\n"
                f"{node.output()}"
            )

        def logged_ports() -> dict[str, int] | None:
            output = node.output()
            found = {name: pattern.search(output) for name, pattern in _LOGGED_PORTS.items()}
            ports = {name: int(match.group(1)) for name, match in found.items() if match}
            if len(ports) == len(_LOGGED_PORTS):
                return ports
            if not node.is_running:
                raise expired()
            return None

        return poll_until(
            logged_ports, timeout=node.start_timeout, pause=_POLL_PAUSE, expired=expired
        )

    def kill(self, index: int) -> None:
        """Crash node ``index`` (SIGKILL) and reap it; its clients see the connection drop."""
        self.nodes[index].kill()

    def stop_node(self, index: int) -> None:
        """Stop node ``index`` gracefully (SIGTERM) and reap it."""
        self.nodes[index].stop()

    def restart(self, index: int) -> None:
        """(Re)start node ``index`` on its former ports, routed to every other node, and
        return once all routes of the running nodes are up.  A running node is stopped
        first.  Raises like :meth:`start`."""
        self.nodes[index].stop()
        self._start_node(index)
        self.wait_for_routes()

    def stop(self) -> None:
        """Stop every node (idempotent)."""
        for node in self.nodes:
            node.stop()

    def _start_unless_running(self) -> NatsCluster:
        return self.start()  # starts only the nodes that are not running

    # ------------------------------------------------------------------ monitoring

    def monitor(self, index: int, endpoint: str, **query: str) -> dict[str, Any]:
        """GET ``/<endpoint>?<query>`` from node ``index``'s monitoring port, decoded.

        Raises ``OSError`` (``urllib.error.URLError``) when the node does not answer.
        """
        url = f"{self.monitor_url(index)}/{endpoint}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        with urllib.request.urlopen(url, timeout=2) as response:
            document: dict[str, Any] = json.load(response)
        return document

    def server_id(self, index: int) -> str:
        """The server id of node ``index`` (a new one after every restart)."""
        return str(self.monitor(index, "routez")["server_id"])

    def routed_servers(self, index: int) -> set[str]:
        """Server ids node ``index`` has a route to."""
        return {route["remote_id"] for route in self.monitor(index, "routez")["routes"]}

    def remote_interest(self, index: int) -> dict[str, set[tuple[str, str | None]]]:
        """What node ``index`` knows of other nodes' subscribers: server id -> the
        ``(subject, queue group or None)`` pairs learnt over its routes."""
        routes = self.monitor(index, "routez", subs="detail")["routes"]
        known: dict[str, set[tuple[str, str | None]]] = {}
        for route in routes:
            pairs = known.setdefault(route["remote_id"], set())
            for sub in route.get("subscriptions_list_detail") or ():
                pairs.add((sub["subject"], sub.get("qgroup") or None))
        return known

    def wait_for_routes(self, timeout: float | None = None) -> None:
        """Return once every running node has a route to every other running node.

        Raises :class:`NatsClusterError` naming what is missing after ``timeout`` seconds
        (default ``route_timeout``).
        """
        running = [index for index in range(self.size) if self.nodes[index].is_running]

        def missing() -> list[str]:
            ids = {index: self.server_id(index) for index in running}
            gaps = []
            for index in running:
                expected = set(ids.values()) - {ids[index]}
                absent = expected - self.routed_servers(index)
                if absent:
                    gaps.append(f"node {index} has no route to {sorted(absent)}")
            return gaps

        self._poll(missing, timeout, "the routes did not form")

    def wait_for_interest(
        self,
        subject: str,
        *,
        node: int,
        servers: int,
        queue: str | None = None,
        timeout: float | None = None,
    ) -> None:
        """Return once node ``node`` knows that at least ``servers`` other *running* nodes
        have a subscriber on exactly ``subject`` (with queue group ``queue``, ``None``:
        plain).  Interest from a node that was killed does not count, even while ``node``
        has not noticed yet.

        Raises :class:`NatsClusterError` after ``timeout`` seconds (default
        ``route_timeout``).
        """

        def missing() -> list[str]:
            running = {
                self.server_id(other)
                for other in range(self.size)
                if other != node and self.nodes[other].is_running
            }
            known = self.remote_interest(node)
            have = sum(
                (subject, queue) in pairs for server, pairs in known.items() if server in running
            )
            if have >= servers:
                return []
            return [f"node {node} knows {have} of {servers} servers with {subject!r} q={queue!r}"]

        self._poll(missing, timeout, "interest did not propagate")

    def _poll(self, missing: Callable[[], list[str]], timeout: float | None, what: str) -> None:
        """Poll the monitoring endpoints until ``missing()`` names no gap."""
        limit = self.route_timeout if timeout is None else timeout
        gaps: list[str] = []

        def closed() -> bool | None:
            nonlocal gaps
            try:
                gaps = missing()
            except OSError as exc:  # a node not answering (yet) is a gap too
                gaps = [f"monitoring endpoint unreachable: {exc}"]
            return True if not gaps else None

        def expired() -> NatsClusterError:
            return NatsClusterError(f"{what} within {limit:g} s: {'; '.join(gaps)}")

        poll_until(closed, timeout=limit, pause=_POLL_PAUSE, expired=expired)
