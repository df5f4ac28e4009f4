"""Fixtures for the Redis broker tests: unique topics on the shared server, keys deleted
after, and a private persistent redis-server (own port and directory) to kill and restart."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from ..nats.helpers import Inbox, free_port, wait_port

__all__ = ["SHARED", "Inbox", "PrivateRedis", "child_subscriber", "free_port"]

SHARED = "redis://127.0.0.1:6379"
CHILD = Path(__file__).with_name("subscriber_child.py")


class PrivateRedis:
    """redis-server on a free loopback port, AOF fsynced on every write, in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    async def start(self) -> None:
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        cmd += ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.directory)]
        cmd += ["--logfile", str(self.directory / "redis.log")]
        self.proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once, the server runs on
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        await wait_port(self.port)

    def kill(self) -> None:
        """SIGKILL: the crash case, no clean shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
async def topic() -> AsyncIterator[str]:
    """A unique topic; every key containing it is deleted after the test."""
    token = f"microtest:{uuid.uuid4().hex[:10]}"
    yield token
    client = aioredis.Redis.from_url(SHARED)
    try:
        keys = [key async for key in client.scan_iter(match=f"*{token}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@contextlib.contextmanager
def child_subscriber(url: str, topic: str, queue: str) -> Iterator[subprocess.Popen[str]]:
    """A subscriber process that reports ``GOT <body>`` and then hangs in its handler."""
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), url, topic, queue],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": "src"},
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


async def readline(proc: subprocess.Popen[str], timeout: float = 15.0) -> str:
    assert proc.stdout is not None
    return (await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout)).strip()
