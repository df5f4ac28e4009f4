"""EtcdRegistry.lost: what tells a server that its registration is gone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from micro.registry import Node, Service
from micro.registry.etcd import EtcdRegistry
from micro.testing.etcd import EtcdServer
from tests.registry.etcd.conftest import etcdctl, raw_kvs

pytestmark = pytest.mark.integration

NODE = Node("lost-1", "127.0.0.1:1")
SERVICE = Service("lost", nodes=[NODE])


async def _next(signals: AsyncIterator[None]) -> None:
    await asyncio.wait_for(anext(signals), 5)


async def test_a_deleted_key_is_signalled_and_written_again(
    etcd: EtcdServer, registry: EtcdRegistry, prefix: str
) -> None:
    await registry.register(SERVICE, ttl=30)
    signals = registry.lost(SERVICE)
    try:
        await _next(signals)  # the watch is in place
        (kv,) = await raw_kvs(etcd.address, prefix)
        await etcdctl(etcd.address, "del", kv["key"])  # its lease lives on
        await _next(signals)
        await registry.register(SERVICE, ttl=30)
        (again,) = await raw_kvs(etcd.address, prefix)
        assert (again["key"], again["lease"]) == (kv["key"], kv["lease"])
    finally:
        await signals.aclose()


async def test_a_revoked_lease_is_signalled_and_granted_again(
    etcd: EtcdServer, registry: EtcdRegistry, prefix: str
) -> None:
    await registry.register(SERVICE, ttl=30)
    signals = registry.lost(SERVICE)
    try:
        await _next(signals)
        (kv,) = await raw_kvs(etcd.address, prefix)
        await etcdctl(etcd.address, "lease", "revoke", f"{kv['lease']:x}")
        await _next(signals)
        await registry.register(SERVICE, ttl=30)
        (again,) = await raw_kvs(etcd.address, prefix)
        assert again["lease"] not in (0, kv["lease"])
    finally:
        await signals.aclose()


async def test_a_deregister_of_our_own_is_not_a_loss(registry: EtcdRegistry) -> None:
    await registry.register(SERVICE, ttl=30)
    signals = registry.lost(SERVICE)
    try:
        await _next(signals)
        await registry.deregister(SERVICE)
        with pytest.raises(TimeoutError):  # an absence: nothing to await but a bound
            await asyncio.wait_for(anext(signals), 0.5)
    finally:
        await signals.aclose()


async def test_an_etcd_back_after_a_break_is_signalled(prefix: str) -> None:
    with EtcdServer() as etcd:
        async with EtcdRegistry(address=etcd.address, prefix=prefix, timeout=1.0) as registry:
            await registry.register(SERVICE, ttl=30)
            signals = registry.lost(SERVICE)
            try:
                await _next(signals)
                await asyncio.to_thread(etcd.stop)
                await asyncio.to_thread(etcd.start, wipe=True)
                await _next(signals)
                await registry.register(SERVICE, ttl=30)
                assert (await registry.get_service("lost"))[0].nodes == [NODE]
            finally:
                await signals.aclose()


async def test_lost_ends_when_the_registry_closes(etcd: EtcdServer, prefix: str) -> None:
    registry = EtcdRegistry(address=etcd.address, prefix=prefix, timeout=1.0)
    await registry.register(SERVICE, ttl=30)
    signals = registry.lost(SERVICE)
    await _next(signals)
    waiting = asyncio.create_task(_next(signals))
    await registry.close()
    with pytest.raises(StopAsyncIteration):
        await waiting
