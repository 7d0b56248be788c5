"""The suite's own tools can fail: the cluster launcher, the task-leak check, the stray check."""

from __future__ import annotations

import socket

import pytest
from conftest import _stray_servers
from reliability_support import assert_no_leftover_tasks, live_tasks

from micro import Request, add_service
from testing.nats_cluster import NatsCluster
from testing.nats_server import NatsServer
from transports.memory import MemoryBroker


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_cluster_rejects_a_single_node() -> None:
    with pytest.raises(ValueError, match="size must be an int >= 2"):
        NatsCluster(size=1)


def test_cluster_kill_and_restart_keep_the_ports(micro_nats_cluster: NatsCluster) -> None:
    cluster = micro_nats_cluster
    urls, routes = cluster.urls, [cluster.route_url(i) for i in range(3)]
    assert len(set(urls)) == 3
    assert all(url.startswith("nats://127.0.0.1:") for url in urls)
    old_id = cluster.server_id(1)
    cluster.kill(1)
    assert not cluster.is_running(1)
    assert not _accepts(cluster.nodes[1].port)
    cluster.wait_for_routes()  # the two survivors still form a cluster
    assert cluster.routed_servers(0) == {cluster.server_id(2)}
    cluster.restart(1)
    assert (cluster.urls, [cluster.route_url(i) for i in range(3)]) == (urls, routes)
    assert cluster.server_id(1) != old_id
    assert cluster.routed_servers(1) == {cluster.server_id(0), cluster.server_id(2)}


@pytest.mark.nats
def test_stray_check_sees_a_running_server() -> None:
    with NatsServer() as server:
        pid = str(server.pid)
        assert any(line.split()[0] == pid for line in _stray_servers())
    assert not any(line.split()[0] == pid for line in _stray_servers())


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_leak_check_sees_a_running_service(anyio_backend: str) -> None:
    broker = MemoryBroker()
    transport = await broker.connect()
    baseline = live_tasks()

    async def echo(request: Request) -> None:
        await request.respond(request.data())

    service = add_service(transport, "leaky", "1.0.0")
    await service.add_endpoint("echo", echo)
    await service.start()
    with pytest.raises(AssertionError, match="micro service leaky"):
        await assert_no_leftover_tasks(baseline, only_ours=True, within=0.05)
    await service.stop()
    await assert_no_leftover_tasks(baseline, only_ours=True)
    await transport.close()
