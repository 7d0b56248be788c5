"""Services on a 3-node nats-server cluster (routes on loopback).

* services spread over the nodes are all found by one discovery call made through any node;
* a queue group whose members sit on different nodes delivers each request to exactly one
  member;
* killing the node a service is connected to makes it fail over (it was given every URL) and
  serve again, with its statistics intact.

Interest crosses routes asynchronously, so before a call through another node the test waits
until that node has learnt of the subscribers (``NatsCluster.wait_for_interest`` reads the
node's ``/routez``; no event exists for it).
"""

from __future__ import annotations

import collections
import contextlib
import time
from typing import Any

import anyio
import anyio.to_thread
import pytest
from reliability_support import CLEAN_FAILURES, EventLog, note

from micro import Client, Request, add_service
from testing.nats_cluster import NatsCluster
from transports.base import TransportEventKind
from transports.nats import NatsTransport

pytestmark = pytest.mark.anyio


async def _connect(servers: str | list[str], name: str) -> NatsTransport:
    return await NatsTransport.connect(
        servers,
        name=name,
        dont_randomize=True,
        reconnect_time_wait=0.05,
        max_reconnect_attempts=-1,
        connect_timeout=1,
    )


async def _wait_for_interest(cluster: NatsCluster, subject: str, **where: Any) -> None:
    await anyio.to_thread.run_sync(lambda: cluster.wait_for_interest(subject, **where))


def _node_of(cluster: NatsCluster, transport: NatsTransport) -> int:
    connected = transport.nc.connected_url
    assert connected is not None
    assert connected.port is not None
    return [node.port for node in cluster.nodes].index(connected.port)


async def test_discovery_from_any_node_finds_services_on_every_node(
    micro_nats_cluster: NatsCluster,
) -> None:
    cluster = micro_nats_cluster
    connections = [await _connect(cluster.url(i), f"spread-{i}") for i in range(3)]
    services = [
        add_service(connections[i], "spread", "1.0.0", metadata={"node": str(i)}) for i in range(3)
    ]
    try:
        for service in services:
            await service.start()
        for node in range(3):
            await _wait_for_interest(cluster, "$SRV.PING", node=node, servers=2)
        expected = {service.id for service in services}
        timings = []
        for node in range(3):
            client = Client(connections[node])
            started = time.monotonic()
            with anyio.fail_after(5):
                pings = await client.ping(max_count=3)
            timings.append(time.monotonic() - started)
            assert {ping.id for ping in pings} == expected, f"via node {node}"
            with anyio.fail_after(5):
                infos = await client.info("spread", max_count=3)
            assert sorted(info.metadata["node"] for info in infos) == ["0", "1", "2"]
        note("cluster-discovery", f"PING of 3 services on 3 nodes: {max(timings) * 1e3:.1f} ms")
    finally:
        for service in services:
            await service.stop()
        for connection in connections:
            await connection.close()


async def test_queue_group_across_nodes_delivers_each_request_once(
    micro_nats_cluster: NatsCluster,
) -> None:
    cluster = micro_nats_cluster
    seen: list[tuple[int, bytes]] = []
    members = {}
    connections = []
    for node in (1, 2):  # no member on node 0: every request crosses a route
        connection = await _connect(cluster.url(node), f"member-{node}")
        connections.append(connection)

        async def work(request: Request, node: int = node) -> None:
            seen.append((node, request.data()))
            await request.respond(request.data())

        service = add_service(connection, "worker", "1.0.0")
        await service.add_endpoint("work", work)
        await service.start()
        members[node] = service
    client_conn = await _connect(cluster.url(0), "queue-client")
    connections.append(client_conn)
    try:
        await _wait_for_interest(cluster, "work", node=0, servers=2, queue="q")
        total = 200
        replies: list[bytes] = []

        async def send(batch: range) -> None:
            for index in batch:
                reply = await client_conn.request("work", f"job-{index}".encode(), timeout=5)
                replies.append(reply.data)

        with anyio.fail_after(20):
            async with anyio.create_task_group() as group:
                for start in range(0, total, 20):
                    group.start_soon(send, range(start, start + 20))
        sent = {f"job-{index}".encode() for index in range(total)}
        assert sorted(replies) == sorted(sent)
        handled = collections.Counter(data for _, data in seen)
        assert set(handled) == sent
        assert set(handled.values()) == {1}, "a request reached more than one member"
        per_member = collections.Counter(node for node, _ in seen)
        assert set(per_member) == {1, 2}, f"one member got nothing: {per_member}"
        counted = sum(service.stats().endpoints[0].num_requests for service in members.values())
        assert counted == total
        note(
            "cluster-queue-group",
            f"{total} requests via node 0 to members on nodes 1 and 2: "
            f"{per_member[1]} + {per_member[2]}, each handled once",
        )
    finally:
        for service in members.values():
            await service.stop()
        for connection in connections:
            await connection.close()


async def test_service_fails_over_when_its_node_dies(micro_nats_cluster: NatsCluster) -> None:
    cluster = micro_nats_cluster
    urls = cluster.urls
    service_conn = await _connect([urls[1], urls[2], urls[0]], "failover-service")
    client_conn = await _connect(urls[0], "failover-client")
    events = EventLog(service_conn)
    reported: list[BaseException] = []

    async def echo(request: Request) -> None:
        await request.respond(request.data())

    service = add_service(
        service_conn, "failover", "1.0.0", error_handler=lambda _s, e: reported.append(e)
    )
    await service.add_endpoint("echo", echo, subject="failover.echo")
    try:
        await service.start()
        assert _node_of(cluster, service_conn) == 1
        await _wait_for_interest(cluster, "failover.echo", node=0, servers=1, queue="q")
        assert (await client_conn.request("failover.echo", b"before", timeout=2)).data == b"before"

        killed_at = time.monotonic()
        await anyio.to_thread.run_sync(cluster.kill, 1)
        # a request while the service is away ends promptly and cleanly (or is served, if
        # the failover already completed)
        started = time.monotonic()
        with contextlib.suppress(*CLEAN_FAILURES):
            await client_conn.request("failover.echo", b"during", timeout=0.5)
        assert time.monotonic() - started <= 1.0

        reconnected_at = await events.wait_for(TransportEventKind.RECONNECTED, within=10)
        await service_conn.flush()  # the new server has our re-sent subscriptions
        new_node = _node_of(cluster, service_conn)
        assert new_node in (0, 2)
        if new_node != 0:
            await _wait_for_interest(cluster, "failover.echo", node=0, servers=1, queue="q")
        reply = await client_conn.request("failover.echo", b"after", timeout=2)
        served_at = time.monotonic()
        assert reply.data == b"after"
        assert not service.stopped()
        assert reported == []
        [endpoint] = service.stats().endpoints
        assert endpoint.num_requests in (2, 3)  # "during" may or may not have reached it
        assert endpoint.num_errors == 0
        note(
            "cluster-failover",
            f"node 1 killed -> service reconnected to node {new_node} in "
            f"{(reconnected_at - killed_at) * 1e3:.0f} ms, serving again through node 0 after "
            f"{(served_at - killed_at) * 1e3:.0f} ms",
        )
    finally:
        events.close()
        await service.stop()
        await service_conn.close()
        await client_conn.close()
