"""Start/stop: graceful drain, refusing new work, cancelling after grace, Debug endpoints."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from micro.errors import ConnectError, ConnectionClosed, RegistryError, ServiceNotFound
from micro.registry import Service
from micro.registry.memory import MemoryRegistry
from micro.server.debug import RESILIENCE_FIELDS
from micro.server.rpc import RpcServer
from micro.testing import eventually
from micro.transport import Transport
from tests.server.conftest import SERVICE, MakeServer, Peer, body_of, error_of, request
from tests.server.handlers import Say


async def dial(transport: Transport, server: RpcServer) -> Peer:
    return Peer(await transport.dial(server.address))


async def test_graceful_stop_finishes_in_flight_and_refuses_new_work(
    make_server: MakeServer, say: Say, transport: Transport, registry: MemoryRegistry
) -> None:
    server = await make_server(say)
    address = server.address
    busy, idle = await dial(transport, server), await dial(transport, server)
    try:
        assert body_of(await idle.call(request("Say.Hello", {"name": "warm"})))
        slow = asyncio.create_task(busy.call(request("Say.Slow", {"name": "0.3"})))
        await asyncio.wait_for(say.started.wait(), 5)
        stopping = asyncio.create_task(server.stop(grace=5))
        await eventually(lambda: server._router.draining)
        with pytest.raises(ServiceNotFound):  # deregistered first
            await registry.get_service(SERVICE)
        refused = error_of(await idle.call(request("Say.Hello", {"name": "late"})))
        assert refused == {
            "id": "go.micro.server",
            "code": 503,
            "detail": "server is shutting down",
            "status": "Service Unavailable",
        }
        assert body_of(await slow) == {"msg": "slow done"}
        await asyncio.wait_for(stopping, 5)
        with pytest.raises(ConnectError):
            await transport.dial(address)
        with pytest.raises(ConnectionClosed):
            await busy.sock.recv()
    finally:
        await busy.close()
        await idle.close()


async def test_stop_cancels_what_outlives_the_grace(
    make_server: MakeServer, say: Say, transport: Transport
) -> None:
    server = await make_server(say)
    busy = await dial(transport, server)
    try:
        slow = asyncio.create_task(busy.call(request("Say.Slow", {"name": "30"})))
        await asyncio.wait_for(say.started.wait(), 5)
        began = time.monotonic()
        await server.stop(grace=0.2)
        assert time.monotonic() - began < 3
        assert say.cancelled.is_set()
        error = error_of(await asyncio.wait_for(slow, 5))
        assert error["code"] == 503
    finally:
        await busy.close()


async def test_stop_cancels_a_stream_after_the_grace(
    make_server: MakeServer, say: Say, transport: Transport
) -> None:
    server = await make_server(say)
    peer = await dial(transport, server)
    try:
        await peer.open_stream("Say.Watch", {"name": "w"})
        assert body_of(await peer.sock.recv()) == {"msg": "watching"}
        await asyncio.wait_for(say.started.wait(), 5)
        await server.stop(grace=0.1)
        assert say.cancelled.is_set()
        assert error_of(await peer.sock.recv())["code"] == 503
    finally:
        await peer.close()


async def test_stop_with_nothing_in_flight_is_quick_and_closes_idle_connections(
    make_server: MakeServer, transport: Transport
) -> None:
    server = await make_server(Say())
    idle = await dial(transport, server)
    began = time.monotonic()
    await server.stop(grace=10)
    assert time.monotonic() - began < 2
    with pytest.raises(ConnectionClosed):
        await idle.sock.recv()
    await idle.close()
    assert not server._router.conns


async def test_stop_is_idempotent_and_never_raises(transport: Transport) -> None:
    class Broken(MemoryRegistry):
        async def deregister(self, service: Service) -> None:
            raise RegistryError("gone")

    never_started = RpcServer(name=SERVICE, transport=transport, registry=MemoryRegistry())
    await never_started.stop()
    server = RpcServer(name=SERVICE, address="127.0.0.1:0", transport=transport, registry=Broken())
    server.handle(Say())
    await server.start()
    await asyncio.gather(server.stop(), server.stop())
    await server.stop()
    with pytest.raises(RuntimeError):
        await server.start()


async def test_context_manager(transport: Transport) -> None:
    registry = MemoryRegistry()
    async with RpcServer(
        name=SERVICE, address="127.0.0.1:0", transport=transport, registry=registry
    ) as server:
        assert (await registry.get_service(SERVICE))[0].nodes[0].address == server.advertised
    with pytest.raises(ServiceNotFound):
        await registry.get_service(SERVICE)


async def test_debug_health_and_stats(peer: Peer, server: RpcServer) -> None:
    assert body_of(await peer.call(request("Debug.Health"))) == {"status": "ok"}
    stats = body_of(await peer.call(request("Debug.Stats")))
    assert set(stats) >= {  # fields are added at the end as counters arrive
        "started",
        "uptime",
        "memory",
        "threads",
        "gc",
        "requests",
        "errors",
        "in_flight",
        *RESILIENCE_FIELDS,
    }
    assert stats["latency_p50_us"] == stats["latency_p99_us"] == 0  # metrics are off
    assert abs(stats["started"] - time.time()) < 60
    assert 0 <= stats["uptime"] < 60
    assert stats["memory"] > 1_000_000
    assert stats["threads"] >= 1
    assert stats["gc"] >= 0
    assert all(isinstance(v, int) for v in stats.values())
    assert not [e for e in server.endpoints() if e.name.startswith("Debug.")]


def test_rss_is_the_current_resident_size() -> None:
    from micro.server.debug import rss_bytes

    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    assert abs(rss_bytes() - pages * os.sysconf("SC_PAGE_SIZE")) < 50_000_000
