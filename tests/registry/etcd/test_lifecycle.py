"""Leases and heartbeats, watch order, versions: EtcdRegistry against a private etcd."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from micro.errors import ServiceNotFound
from micro.registry import Node, Result, Service
from micro.registry._etcd_client import Batch, EtcdError
from micro.registry.etcd import EtcdRegistry
from micro.testing.etcd import EtcdServer
from tests.registry.etcd.conftest import etcdctl, raw_kvs

pytestmark = pytest.mark.integration


def _svc(name: str, node: Node, version: str = "1") -> Service:
    return Service(name, version, nodes=[node])


async def _gone_after(registry: EtcdRegistry, name: str, limit: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        try:
            await registry.get_service(name)
        except ServiceNotFound:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} still registered after {limit} s")


async def test_heartbeats_keep_a_node_past_its_ttl_and_it_expires_when_they_stop(
    etcd: EtcdServer, registry: EtcdRegistry, prefix: str
) -> None:
    node = Node("hb-1", "127.0.0.1:1")
    await registry.register(_svc("hb", node), ttl=1)
    (first,) = await raw_kvs(etcd.address, prefix)
    for _ in range(8):  # 2.4 s: more than twice the TTL
        await asyncio.sleep(0.3)
        await registry.register(_svc("hb", node), ttl=1)
    (kv,) = await raw_kvs(etcd.address, prefix)
    assert kv["lease"] == first["lease"]  # the same lease, renewed
    assert kv["version"] == 1  # and the value never re-written
    took = await _gone_after(registry, "hb", 5.0)
    assert took < 3.0


async def test_a_lost_lease_is_recreated_on_the_next_register(
    etcd: EtcdServer, registry: EtcdRegistry, prefix: str
) -> None:
    node = Node("lost-1", "127.0.0.1:1")
    await registry.register(_svc("lost", node), ttl=30)
    (kv,) = await raw_kvs(etcd.address, prefix)
    await etcdctl(etcd.address, "lease", "revoke", f"{kv['lease']:x}")
    assert await raw_kvs(etcd.address, prefix) == []
    await registry.register(_svc("lost", node), ttl=30)
    (again,) = await raw_kvs(etcd.address, prefix)
    assert again["lease"] not in (0, kv["lease"])
    assert (await registry.get_service("lost"))[0].nodes == [node]


async def test_a_new_ttl_gets_a_new_lease_and_a_new_process_adopts_the_old_one(
    etcd: EtcdServer, registry: EtcdRegistry, prefix: str
) -> None:
    node = Node("ttl-1", "127.0.0.1:1")
    await registry.register(_svc("ttl", node), ttl=30)
    (a,) = await raw_kvs(etcd.address, prefix)
    await registry.register(_svc("ttl", node), ttl=20)
    (b,) = await raw_kvs(etcd.address, prefix)
    assert b["lease"] != a["lease"]
    leases = await etcdctl(etcd.address, "lease", "list")
    assert f"{a['lease']:x}" not in leases  # the old lease was revoked, not left to expire
    async with EtcdRegistry(address=etcd.address, prefix=prefix) as restarted:
        await restarted.register(_svc("ttl", node), ttl=20)
    (c,) = await raw_kvs(etcd.address, prefix)
    assert (c["lease"], c["version"]) == (b["lease"], b["version"])


async def test_watch_reports_every_change_in_order(registry: EtcdRegistry) -> None:
    results: asyncio.Queue[Result] = asyncio.Queue()

    async def pump() -> None:
        async for result in registry.watch("order"):
            await results.put(result)

    task = asyncio.create_task(pump())
    await asyncio.sleep(0.2)
    want = []
    try:
        for i in range(10):
            node = Node(f"n{i}", f"127.0.0.1:{1000 + i}")
            await registry.register(_svc("order", node), ttl=30)
            want.append(("create", f"n{i}", ""))
            changed = Node(node.id, node.address, {"round": str(i)})
            await registry.register(_svc("order", changed), ttl=30)
            want.append(("update", f"n{i}", str(i)))
            if i % 2:
                await registry.deregister(_svc("order", changed))
                want.append(("delete", f"n{i}", str(i)))
        await registry.register(_svc("other", Node("x", "127.0.0.1:1")), ttl=30)  # filtered out
        got = []
        for _ in want:
            r = await asyncio.wait_for(results.get(), 5)
            got.append(
                (r.action, r.service.nodes[0].id, r.service.nodes[0].metadata.get("round", ""))
            )
        assert got == want
        assert results.empty()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_first_watch_stream_that_breaks_loses_no_change(
    etcd: EtcdServer, registry: EtcdRegistry, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change made while the first stream fails before etcd confirmed it is still seen."""
    client = registry._etcd()
    real_watch = client.watch
    calls = 0

    async def first_breaks(key: bytes, start: int) -> AsyncIterator[Batch]:
        nonlocal calls
        calls += 1
        if calls == 1:  # a change lands, then the stream dies before it is in place
            async with EtcdRegistry(address=etcd.address, prefix=prefix) as other:
                await other.register(_svc("gap", Node("g1", "127.0.0.1:1")), ttl=30)
            raise EtcdError("stream reset before created", "UNAVAILABLE")
        async for batch in real_watch(key, start):
            yield batch

    monkeypatch.setattr(client, "watch", first_breaks)
    watch = registry.watch("gap")
    try:
        result = await asyncio.wait_for(anext(watch), 10)
        assert (result.action, result.service.nodes[0].id) == ("create", "g1")
        assert calls == 2
    finally:
        await watch.aclose()


async def test_a_node_moving_to_another_version_is_an_update(registry: EtcdRegistry) -> None:
    results: list[Result] = []

    async def pump() -> None:
        async for result in registry.watch("move"):
            results.append(result)

    task = asyncio.create_task(pump())
    await asyncio.sleep(0.2)
    node = Node("m1", "127.0.0.1:1")
    await registry.register(_svc("move", node, "1"), ttl=30)
    await registry.register(_svc("move", node, "2"), ttl=30)
    for _ in range(50):
        if len(results) == 2:
            break
        await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert [(r.action, r.service.version) for r in results] == [("create", "1"), ("update", "2")]
    assert [s.version for s in await registry.get_service("move")] == ["2"]


async def test_many_versions_of_one_service(registry: EtcdRegistry) -> None:
    for v in range(12):
        for n in range(3):
            await registry.register(
                _svc("multi", Node(f"v{v}-n{n}", f"127.0.0.1:{v * 10 + n + 1}"), f"{v}.0"), ttl=30
            )
    found = await registry.get_service("multi")
    assert sorted(s.version for s in found) == sorted(f"{v}.0" for v in range(12))
    for service in found:
        major = service.version.split(".")[0]
        assert sorted(n.id for n in service.nodes) == [f"v{major}-n{n}" for n in range(3)]
    listed = await registry.list_services()
    assert [(s.name, len(s.nodes)) for s in listed] == [("multi", 3)] * 12
