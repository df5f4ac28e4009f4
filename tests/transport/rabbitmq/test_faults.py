"""Nodes that die: a call to a dead node fails at once (its queue is gone), a node killed
with SIGKILL mid-call fails the call with a clear error (and a retry goes to the next node)."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from msgspec import Struct

from micro.client.rpc import RpcClient
from micro.errors import ConnectError, ConnectionClosed
from micro.registry.memory import MemoryRegistry
from tests.servers import amqp_url
from tests.transport.rabbitmq.conftest import MakeServer, MakeTransport

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


class Empty(Struct):
    pass


class Node:
    """The live node: answers ``Node.Hold`` at once."""

    async def hold(self, req: Empty) -> dict[str, str]:
        return {"from": "live"}


async def test_a_call_to_a_dead_node_fails_at_once_not_at_the_timeout(
    make_server: MakeServer, make_transport: MakeTransport, registry: MemoryRegistry
) -> None:
    server = await make_server(Node(), name="rmq.dead")
    transport = server.transport
    assert hasattr(transport, "_connection")
    connection = transport._connection
    assert connection is not None
    await connection.close()  # the node's link dies; its node stays in the registry
    rpc = RpcClient(registry=registry, transport=make_transport(), retries=0)
    try:
        async with asyncio.timeout(10):  # the call's own timeout is 60 s
            with pytest.raises(ConnectError, match=server.address.removeprefix("rabbitmq://")):
                await rpc.call("rmq.dead", "Node.Hold", {}, timeout=60.0)
    finally:
        await rpc.close()


class Spawned:
    def __init__(self, proc: asyncio.subprocess.Process, address: str) -> None:
        self.proc = proc
        self.address = address

    async def line(self) -> str:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), 20)
        return raw.decode().strip()


@pytest.fixture
async def spawned(exchange: str) -> AsyncIterator[Spawned]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.transport.rabbitmq.node",
        amqp_url(),
        exchange,
        cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().split()
        assert first[:1] == ["address"], first
        yield Spawned(proc, first[1])
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def _killed_mid_call(spawned: Spawned, call: asyncio.Task[object]) -> None:
    assert await spawned.line() == "holding"  # the node has the request
    spawned.proc.send_signal(signal.SIGKILL)
    await spawned.proc.wait()


async def test_a_node_killed_mid_call_fails_the_call_not_at_the_timeout(
    spawned: Spawned, make_transport: MakeTransport
) -> None:
    rpc = RpcClient(transport=make_transport(), retries=0, registry=MemoryRegistry())
    try:
        call = asyncio.create_task(
            rpc.call("rmq.node", "Node.Hold", {}, address=spawned.address, timeout=60.0)
        )
        await _killed_mid_call(spawned, call)
        async with asyncio.timeout(10):  # the call's own timeout is 60 s
            with pytest.raises(ConnectionClosed, match="stopped or died"):
                await call
    finally:
        await rpc.close()


async def test_a_node_killed_mid_call_is_retried_on_the_next_node(
    spawned: Spawned, make_server: MakeServer, make_transport: MakeTransport
) -> None:
    live = await make_server(Node(), name="rmq.node")
    rpc = RpcClient(transport=make_transport(), retries=1, registry=MemoryRegistry())
    try:
        call = asyncio.create_task(
            rpc.call(
                "rmq.node", "Node.Hold", {}, address=[spawned.address, live.address], timeout=60.0
            )
        )
        await _killed_mid_call(spawned, call)
        async with asyncio.timeout(10):
            assert await call == {"from": "live"}
    finally:
        await rpc.close()
