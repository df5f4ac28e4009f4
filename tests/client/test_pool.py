"""The connection pool: reuse, bounds, TTL, and never reusing a connection mid-exchange."""

from __future__ import annotations

import asyncio

import pytest

from micro.client.pool import Pool
from micro.client.rpc import RpcClient
from micro.errors import ConnectError, InternalServerError, NotFound, Timeout
from micro.registry.memory import MemoryRegistry
from micro.testing import eventually
from tests.client.fakes import (
    FakeServer,
    RecordingTransport,
    fail,
    gated,
    hang_up,
    sequence,
    slow,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_sequential_calls_share_one_connection(
    client: RpcClient, server: FakeServer, transport: RecordingTransport
) -> None:
    for n in range(5):
        assert await client.call("greeter", "Greeter.SayHello", {"n": n}) == {"n": n}
    assert server.connections == 1
    assert len(transport.dialed) == 1


async def test_error_answers_keep_the_connection(
    client: RpcClient, server: FakeServer, transport: RecordingTransport
) -> None:
    server.handlers["Greeter.Missing"] = fail(NotFound("no", id="greeter"))
    for _ in range(3):
        with pytest.raises(NotFound):
            await client.call("greeter", "Greeter.Missing", {})
    assert len(transport.dialed) == 1


async def test_concurrent_calls_use_separate_connections_and_idle_ones_are_bounded(
    transport: RecordingTransport, registry: MemoryRegistry, server: FakeServer
) -> None:
    gate = asyncio.Event()
    server.handlers["Greeter.Wait"] = gated(gate)
    async with RpcClient(transport=transport, registry=registry, pool_size=2) as client:
        calls = [
            asyncio.create_task(client.call("greeter", "Greeter.Wait", {"n": n})) for n in range(5)
        ]
        await eventually(lambda: len(server.requests) == 5)
        gate.set()
        assert await asyncio.gather(*calls) == [{"n": n} for n in range(5)]
        assert server.connections == 5
        assert client._pool.idle(server.address) == 2
        assert sum(sock.closed for sock in transport.dialed) == 3
    assert all(sock.closed for sock in transport.dialed)  # close() closed the idle ones


async def test_pool_checkout_is_lifo_and_expires_old_connections(
    transport: RecordingTransport, server: FakeServer
) -> None:
    clock = Clock()
    pool = Pool(transport, size=10, ttl=60.0, clock=clock)
    first = await pool.get(server.address, timeout=1)
    clock.now += 30
    second = await pool.get(server.address, timeout=1)
    assert pool.put(first)
    assert pool.put(second)
    assert (await pool.get(server.address, timeout=1)) is second  # most recent first
    assert second.reused
    assert pool.put(second)
    clock.now += 45  # first is 75 s old, second 45 s
    assert pool.take(server.address) is second
    assert pool.take(server.address) is None  # first is too old: left for get() to close
    third = await pool.get(server.address, timeout=1)
    assert third is not first
    assert not third.reused
    assert first.socket.closed
    await pool.close()


async def test_pool_refuses_expired_broken_and_surplus_connections(
    transport: RecordingTransport, server: FakeServer
) -> None:
    clock = Clock()
    pool = Pool(transport, size=1, ttl=10.0, clock=clock)
    a = await pool.connect(server.address, timeout=1)
    b = await pool.connect(server.address, timeout=1)
    assert pool.put(a)
    assert not pool.put(b)  # full
    await pool.discard(b)
    assert b.socket.closed
    old = await pool.connect(server.address, timeout=1)
    clock.now += 11
    assert not pool.put(old)  # expired
    broken = await pool.connect(server.address, timeout=1)
    await broken.socket.close()
    assert not pool.put(broken)
    await pool.close()
    assert a.socket.closed
    late = await pool.connect(server.address, timeout=1)
    assert not pool.put(late)  # a closed pool keeps nothing


async def test_pool_dial_failure_is_a_connect_error(transport: RecordingTransport) -> None:
    pool = Pool(transport)
    with pytest.raises(ConnectError):
        await pool.get("127.0.0.1:1", timeout=1)


async def test_pool_ttl_through_the_client(
    transport: RecordingTransport, registry: MemoryRegistry, server: FakeServer
) -> None:
    async with RpcClient(transport=transport, registry=registry, pool_ttl="500ms") as client:
        await client.call("greeter", "Greeter.SayHello", {})
        await client.call("greeter", "Greeter.SayHello", {})
        assert len(transport.dialed) == 1  # kept: well within the TTL, even on a loaded machine
        await asyncio.sleep(0.55)
        await client.call("greeter", "Greeter.SayHello", {})
    assert len(transport.dialed) == 2
    assert transport.dialed[0].closed


async def test_a_connection_that_failed_is_not_returned(
    client: RpcClient, server: FakeServer, transport: RecordingTransport
) -> None:
    server.handlers["Greeter.Drop"] = hang_up
    with pytest.raises(ConnectError):
        await client.call("greeter", "Greeter.Drop", {}, retries=0)
    assert client._pool.idle(server.address) == 0
    assert transport.dialed[0].closed
    assert await client.call("greeter", "Greeter.SayHello", {"x": 1}) == {"x": 1}
    assert len(transport.dialed) == 2


async def test_a_connection_the_server_closed_while_idle_is_replaced(
    client: RpcClient, server: FakeServer, transport: RecordingTransport
) -> None:
    await client.call("greeter", "Greeter.SayHello", {})
    await transport.dialed[0].peer.close()  # type: ignore[attr-defined]  # the server side
    # retries=0: the stale pooled connection must not cost the call its only attempt
    assert await client.call("greeter", "Greeter.SayHello", {"y": 2}, retries=0) == {"y": 2}
    assert len(transport.dialed) == 2


async def test_cancelled_call_closes_its_connection_and_does_not_poison_the_pool(
    client: RpcClient, server: FakeServer, transport: RecordingTransport
) -> None:
    gate = asyncio.Event()
    server.handlers["Greeter.Wait"] = gated(gate)
    task = asyncio.create_task(client.call("greeter", "Greeter.Wait", {"call": "first"}))
    await eventually(lambda: len(server.requests) == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert transport.dialed[0].closed
    assert client._pool.idle(server.address) == 0
    gate.set()  # the server answers the cancelled call now; nobody may read that answer
    rsp = await client.call("greeter", "Greeter.Wait", {"call": "second"})
    assert rsp == {"call": "second"}
    assert len(transport.dialed) == 2


async def test_timed_out_call_closes_its_connection(
    client: RpcClient, server: FakeServer, transport: RecordingTransport
) -> None:
    server.handlers["Greeter.Slow"] = sequence(slow(0.2), fail(InternalServerError("x")))
    with pytest.raises(Timeout):
        await client.call("greeter", "Greeter.Slow", {"n": 1}, timeout=0.05)
    assert transport.dialed[0].closed
    assert client._pool.idle(server.address) == 0
    await asyncio.sleep(0.2)
    with pytest.raises(InternalServerError):
        await client.call("greeter", "Greeter.Slow", {"n": 2}, retries=0)
