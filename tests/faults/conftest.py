"""Fault-test fixtures: real node processes on loopback, and a client that finds them.

The nodes are separate processes (``tests/faults/node.py``) so that a SIGKILL is a real
crash; the client learns their addresses from a memory registry the test fills, so the
real selector (round robin, blacklist) runs without mDNS timing in the way.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from micro.registry import Node, Service
from micro.registry.memory import MemoryRegistry

ROOT = Path(__file__).resolve().parents[2]
NAME = "faults"


class Nodes:
    """The running node processes."""

    def __init__(self) -> None:
        self.procs: list[asyncio.subprocess.Process] = []
        self.addresses: list[str] = []

    async def start(self, count: int, **env: str) -> list[str]:
        environ = {**os.environ, "MICRO_MDNS_INTERFACES": "127.0.0.1", **env}
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                str(ROOT / "tests" / "faults" / "node.py"),
                stdout=asyncio.subprocess.PIPE,
                env=environ,
                cwd=ROOT,
            )
            for _ in range(count)
        ]
        self.procs.extend(procs)
        started = []
        for proc in procs:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 20)
            started.append(line.decode().strip())
        self.addresses.extend(started)
        return started

    async def kill(self, index: int) -> None:
        proc = self.procs[index]
        proc.send_signal(signal.SIGKILL)
        await proc.wait()

    async def stop(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGKILL)
                await proc.wait()


@pytest.fixture
async def nodes() -> AsyncIterator[Nodes]:
    running = Nodes()
    try:
        yield running
    finally:
        await running.stop()


async def registry_of(addresses: list[str]) -> MemoryRegistry:
    registry = MemoryRegistry()
    found = [Node(id=f"node-{i}", address=a) for i, a in enumerate(addresses)]
    await registry.register(Service(NAME, nodes=found))
    return registry


Worker = Callable[[], Awaitable[None]]


async def run_load(concurrency: int, seconds: float, worker: Worker) -> None:
    """``concurrency`` tasks calling ``worker`` in a loop for ``seconds``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds

    async def loop_until_end() -> None:
        while loop.time() < end:
            await worker()

    await asyncio.gather(*(loop_until_end() for _ in range(concurrency)))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
