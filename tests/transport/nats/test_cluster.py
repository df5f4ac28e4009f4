"""Three private NATS servers in a cluster (routes on loopback); the one the serving node is
connected to is SIGKILLed under load: both sides reconnect to the others and the calls go on.
Every call is counted: each either succeeds or fails with a ConnectError while the
connections move, and none hangs."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from micro.client.rpc import RpcClient
from micro.errors import ConnectError
from micro.registry.memory import MemoryRegistry
from micro.server.rpc import RpcServer
from micro.transport.nats import NatsTransport
from tests.broker.helpers import PrivateServer, free_port
from tests.client.handlers import Greeter

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class ClusterNats(PrivateServer):
    """``nats-server`` on a free loopback port, routed to the others of its cluster."""

    scheme = "nats"

    def __init__(self, directory: Path, cluster_port: int, routes: list[int]) -> None:
        super().__init__(directory)
        self.cluster_port = cluster_port
        self.routes = routes

    def command(self) -> list[str]:
        routes = ",".join(f"nats://127.0.0.1:{p}" for p in self.routes)
        return [
            "nats-server", "-a", "127.0.0.1", "-p", str(self.port),
            "--cluster_name", "microtest", "--cluster", f"nats://127.0.0.1:{self.cluster_port}",
            "--routes", routes, "-l", str(self.directory / "nats.log"),
        ]  # fmt: skip


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[list[ClusterNats]]:
    ports = [free_port() for _ in range(3)]
    servers = []
    for i, port in enumerate(ports):
        directory = tmp_path / f"n{i}"
        directory.mkdir()
        servers.append(ClusterNats(directory, port, [p for p in ports if p != port]))
    try:
        for server in servers:
            await server.start()
        yield servers
    finally:
        for server in servers:
            server.kill()


async def test_calls_go_on_when_a_cluster_member_is_killed(cluster: list[ClusterNats]) -> None:
    urls = ",".join(server.url for server in cluster)
    server_transport = NatsTransport(address=urls)
    client_transport = NatsTransport(address=urls)
    server = RpcServer(
        name="greeter", address=":0", transport=server_transport, registry=MemoryRegistry()
    )
    server.handle(Greeter())
    await server.start()
    address = server.address
    client = RpcClient(registry=MemoryRegistry(), transport=client_transport, retries=2)
    counts: Counter[str] = Counter()
    killed = asyncio.Event()

    async def worker(n: int) -> None:
        for i in range(300):
            name = f"{n}-{i}"
            try:
                rsp = await client.call("greeter", "Greeter.SayHello", {"name": name},
                                        address=address, timeout=5)  # fmt: skip
            except ConnectError:
                counts["failed"] += 1
                await asyncio.sleep(0.05)
                continue
            assert rsp == {"msg": f"Hello {name}"}
            counts["after" if killed.is_set() else "before"] += 1
            if n == 0 and i == 50:
                # kill the server the serving node is connected to: both sides must move
                url = server_transport._inboxes.nc.connected_url  # type: ignore[union-attr]
                victim = next(s for s in cluster if s.port == url.port)  # type: ignore[union-attr]
                victim.kill()
                killed.set()

    try:
        async with client:
            async with asyncio.timeout(10):  # the routes form: interest reaches every member
                while True:
                    try:
                        await client.call("greeter", "Greeter.SayHello", {"name": "x"},
                                          address=address)  # fmt: skip
                        break
                    except ConnectError:
                        await asyncio.sleep(0.1)
            async with asyncio.timeout(60):
                await asyncio.gather(*(worker(n) for n in range(4)))
    finally:
        await server.stop(grace=1)
        await server_transport.close()
        await client_transport.close()
    assert counts["before"] + counts["after"] + counts["failed"] == 1200, counts
    assert counts["after"] >= 900, counts  # the calls went on through the other two
