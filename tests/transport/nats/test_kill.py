"""A node SIGKILLed mid-call: the caller gets a clear error at once and a retry goes to the
other node (the NATS server drops the dead node's subscription, a ping finds it gone)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from micro.client.rpc import RpcClient
from micro.errors import ConnectError, ConnectionClosed
from micro.registry.memory import MemoryRegistry
from micro.transport.nats import NatsTransport
from tests.servers import nats_url

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]


def spawn(name: str, url: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.transport.nats.node", url, name],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    address = proc.stdout.readline().strip()
    assert address.startswith("nats://"), f"node {name} did not start: {address!r}"
    return proc, address


@pytest.fixture
def nodes() -> Iterator[list[tuple[subprocess.Popen[str], str]]]:
    started = [spawn("a", nats_url()), spawn("b", nats_url())]
    try:
        yield started
    finally:
        for proc, _ in started:
            proc.kill()
            proc.wait(10)
            assert proc.stdout is not None
            proc.stdout.close()


async def test_a_node_killed_mid_call_fails_fast_and_the_retry_takes_the_other(
    nodes: list[tuple[subprocess.Popen[str], str]],
) -> None:
    (victim, a), (_, b) = nodes
    transport = NatsTransport(address=nats_url(), ping_interval=0.5)
    client = RpcClient(registry=MemoryRegistry(), transport=transport)
    try:
        async with client:
            # no retry: the error itself, well before the 30 s call timeout
            call = asyncio.create_task(
                client.call("nodes", "Node.Hang", {}, address=a, timeout=30, retries=0)
            )
            assert victim.stdout is not None
            line = await asyncio.to_thread(victim.stdout.readline)
            assert line.strip() == "hanging"
            victim.send_signal(signal.SIGKILL)
            with pytest.raises(ConnectionClosed, match="went away"):
                async with asyncio.timeout(10):
                    await call
            # the dead node's subject: dial fails at once ("no responders"), the retry goes on
            with pytest.raises(ConnectError, match="no listener"):
                await client.call("nodes", "Node.Who", {}, address=a, retries=0)
            rsp = await client.call("nodes", "Node.Who", {}, address=[a, b], retries=1)
            assert rsp == {"node": "b"}
    finally:
        await transport.close()


async def test_a_pooled_connection_to_a_killed_node_moves_to_the_other(
    nodes: list[tuple[subprocess.Popen[str], str]],
) -> None:
    (victim, a), (_, b) = nodes
    transport = NatsTransport(address=nats_url())
    client = RpcClient(registry=MemoryRegistry(), transport=transport)
    try:
        async with client:
            assert await client.call("nodes", "Node.Who", {}, address=a) == {"node": "a"}
            victim.send_signal(signal.SIGKILL)
            await asyncio.to_thread(victim.wait, 10)
            # the idle pooled connection's request meets "no responders": dialled again, that
            # fails at once too, and the one retry goes to b (no wait for the 30 s timeout)
            async with asyncio.timeout(10):
                rsp = await client.call(
                    "nodes", "Node.Who", {}, address=[a, b], timeout=30, retries=1
                )
            assert rsp == {"node": "b"}
    finally:
        await transport.close()
