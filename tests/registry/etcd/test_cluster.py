"""A 3-member etcd cluster: with one member down, services still register, resolve and watch."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from micro.registry import Node, Result, Service
from micro.registry.etcd import EtcdRegistry
from micro.testing.etcd import EtcdCluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def cluster() -> Iterator[EtcdCluster]:
    with EtcdCluster(3) as running:
        yield running


@pytest.mark.parametrize("victim", [0, 1], ids=["connected-member", "other-member"])
async def test_one_member_down(cluster: EtcdCluster, victim: int) -> None:
    results: asyncio.Queue[Result] = asyncio.Queue()
    async with EtcdRegistry(address=cluster.address) as registry:

        async def pump() -> None:
            async for result in registry.watch("svc"):
                await results.put(result)

        task = asyncio.create_task(pump())
        try:
            await asyncio.sleep(0.2)
            await registry.register(Service("svc", nodes=[Node("n0", "127.0.0.1:1")]), ttl=10)
            assert (await asyncio.wait_for(results.get(), 5)).action == "create"
            # pick_first connects to the first endpoint: member 0 carries our streams
            await asyncio.to_thread(cluster.members[victim].kill)
            for i in range(1, 6):
                node = Node(f"n{i}", f"127.0.0.1:{i + 1}")
                await registry.register(Service("svc", nodes=[node]), ttl=10)
                (found,) = await registry.get_service("svc")
                assert {n.id for n in found.nodes} == {f"n{j}" for j in range(i + 1)}
            # the watch resumed from its last revision: nothing lost, nothing repeated
            seen = [
                (await asyncio.wait_for(results.get(), 10)).service.nodes[0].id for _ in range(5)
            ]
            assert seen == [f"n{i}" for i in range(1, 6)]
            await registry.register(Service("svc", nodes=[Node("n1", "127.0.0.1:2")]), ttl=10)
            await registry.deregister(Service("svc", nodes=[Node("n0", "127.0.0.1:1")]))
            last = await asyncio.wait_for(results.get(), 10)
            assert (last.action, last.service.nodes[0].id) == ("delete", "n0")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
