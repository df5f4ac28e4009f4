"""The HTTP broker between real processes over the mDNS registry (loopback only): queue
groups vs broadcast, a subscriber killed mid-stream, and the pubsub example end to end."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from micro.broker.http import HttpBroker
from micro.registry.mdns import MdnsRegistry
from micro.testing import eventually
from micro.transport import Message

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


class Sub:
    """One subscriber process and the sequence numbers it printed."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.got: list[int] = []
        self.odd: list[bytes] = []  # lines that are not READY or GOT <n> (shown on failure)
        self.ready = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            text = line.decode().split()
            if text == ["READY"]:
                self.ready.set()
            elif len(text) == 2 and text[0] == "GOT" and text[1].isdigit():
                self.got.append(int(text[1]))
            else:
                self.odd.append(line)

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)


Spawn = Callable[..., Awaitable[Sub]]


@pytest.fixture
async def spawn() -> AsyncIterator[Spawn]:
    subs: list[Sub] = []

    async def start(topic: str, queue: str = "-", delay: float = 0.0) -> Sub:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "tests/broker/sub_proc.py"), topic, queue, str(delay),
            stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )  # fmt: skip
        sub = Sub(proc)
        subs.append(sub)
        await asyncio.wait_for(sub.ready.wait(), 20)
        return sub

    yield start
    for sub in subs:  # every process first: one failing below must not orphan the rest
        sub.kill()
    for sub in subs:
        await sub.proc.wait()
        await sub.reader


@pytest.fixture
async def publisher() -> AsyncIterator[HttpBroker]:
    async with MdnsRegistry() as registry, HttpBroker(registry=registry) as broker:
        yield broker


def message(n: int) -> Message:
    return Message({"Micro-Id": str(uuid.uuid4()), "X-Seq": str(n)}, b"{}")


async def test_queue_group_vs_broadcast_across_three_processes(
    spawn: Spawn, publisher: HttpBroker
) -> None:
    topic = f"it.{uuid.uuid4().hex[:8]}"
    a, b = await spawn(topic, "workers"), await spawn(topic, "workers")
    everyone = await spawn(topic)
    total = 60
    for n in range(total):
        await publisher.publish(topic, message(n), wait=n == 0)
    await eventually(
        lambda: len(everyone.got) == total and len(a.got) + len(b.got) == total, timeout=15
    )
    await asyncio.sleep(0.3)
    assert sorted(everyone.got) == list(range(total))
    assert sorted(a.got + b.got) == list(range(total))  # each once, in the group
    assert a.got
    assert b.got
    assert publisher.stats["undelivered"] == 0


async def test_queue_member_killed_mid_stream_loses_nothing(
    spawn: Spawn, publisher: HttpBroker
) -> None:
    """Guarantee row "http": a delivery not acknowledged by the killed member is retried on
    the survivor, so every message is handled at least once (duplicates are allowed)."""
    topic = f"it.{uuid.uuid4().hex[:8]}"
    victim = await spawn(topic, "workers", 0.01)
    survivor = await spawn(topic, "workers", 0.01)
    total = 200
    for n in range(total):
        await publisher.publish(topic, message(n))
        if n == 60:
            await eventually(lambda: len(victim.got) > 5, timeout=15)
            victim.kill()
    await eventually(lambda: set(victim.got) | set(survivor.got) >= set(range(total)), timeout=30)
    assert set(victim.got) | set(survivor.got) == set(range(total)), (victim.odd, survivor.odd)
    assert publisher.stats["undelivered"] == 0
    assert publisher.stats["retried"] >= 1  # what the victim held was sent again
