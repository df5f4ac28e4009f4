"""Separate processes over mDNS on loopback: fresh-process lookup time, SIGKILL expiry."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from micro.errors import ServiceNotFound
from micro.registry.mdns import MdnsRegistry

pytestmark = pytest.mark.integration

PEER = str(Path(__file__).with_name("mdns_peer.py"))
Spawn = Callable[..., Coroutine[Any, Any, asyncio.subprocess.Process]]


@pytest.fixture
async def spawn() -> AsyncIterator[Spawn]:
    procs: list[asyncio.subprocess.Process] = []

    async def start(*args: str) -> asyncio.subprocess.Process:
        assert os.environ["MICRO_MDNS_INTERFACES"] == "127.0.0.1"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, PEER, *args, stdout=asyncio.subprocess.PIPE
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def _registered(spawn: Spawn, name: str, ttl: float, interval: float) -> Any:
    proc = await spawn("register", name, str(ttl), str(interval))
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    assert line.strip() == b"ready"
    return proc


async def test_a_fresh_process_finds_a_registered_node_fast(spawn: Spawn) -> None:
    name = f"proc-{uuid.uuid4().hex[:8]}"
    await _registered(spawn, name, 30, 10)
    started = time.monotonic()
    lookup = await spawn("lookup", name)
    out, _ = await asyncio.wait_for(lookup.communicate(), 20)
    wall = time.monotonic() - started
    report = json.loads(out)
    print(
        f"\nfresh-process lookup: {report['elapsed'] * 1000:.1f} ms in the registry, "
        f"{report['since_start'] * 1000:.0f} ms after imports began, {wall * 1000:.0f} ms wall"
    )
    assert report["nodes"] == ["127.0.0.1:50061"]
    assert report["elapsed"] < 0.5
    assert wall < 2.0


async def test_sigkilled_node_vanishes_within_its_ttl(spawn: Spawn) -> None:
    name, ttl = f"kill-{uuid.uuid4().hex[:8]}", 2.0
    async with MdnsRegistry() as registry:
        watch = registry.watch(name)
        proc = await _registered(spawn, name, ttl, 0.5)
        created = await asyncio.wait_for(anext(watch), 5)
        assert (created.action, created.service.nodes[0].id) == ("create", f"{name}-node")
        await asyncio.sleep(1.0)  # a few re-registrations: the TTL is refreshed, not expired
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        killed = time.monotonic()
        deleted = await asyncio.wait_for(anext(watch), ttl + 3)
        gone_after = time.monotonic() - killed
        print(
            f"\nSIGKILLed node gone from a watcher {gone_after:.2f} s after the kill (TTL {ttl} s)"
        )
        assert (deleted.action, deleted.service.nodes[0].id) == ("delete", f"{name}-node")
        assert gone_after <= ttl + 0.1
        with pytest.raises(ServiceNotFound):
            await registry.get_service(name)
