"""Fixtures for the NATS broker tests: unique topics on the shared server, cleaned up after,
and a private JetStream server (own port and store) for tests that kill or restart it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest

from .helpers import Inbox, free_port, wait_port

SHARED = "nats://127.0.0.1:4222"
CHILD = Path(__file__).with_name("subscriber_child.py")

__all__ = ["SHARED", "Inbox", "PrivateNats", "child_subscriber", "free_port", "wait_port"]


class PrivateNats:
    """``nats-server -js`` on a free loopback port with its store in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> None:
        cmd = ["nats-server", "-a", "127.0.0.1", "-p", str(self.port), "-js"]
        cmd += ["-sd", str(self.directory / "store"), "-l", str(self.directory / "nats.log")]
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
async def private_nats(tmp_path: Path) -> AsyncIterator[PrivateNats]:
    server = PrivateNats(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
async def topic() -> AsyncIterator[str]:
    """A unique subject; every stream storing it is deleted after the test."""
    token = f"t{uuid.uuid4().hex[:10]}"
    yield f"microtest.{token}"
    nc = await nats.connect(SHARED)
    try:
        js = nc.jetstream()
        for info in await js.streams_info():
            if any(token in subject for subject in info.config.subjects or ()):
                await js.delete_stream(info.config.name or "")
    finally:
        await nc.close()


@contextlib.contextmanager
def child_subscriber(
    url: str, topic: str, queue: str, options: str = "{}"
) -> Iterator[subprocess.Popen[str]]:
    """A subscriber process that reports ``GOT <body>`` and then hangs in its handler."""
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), url, topic, queue, options],
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
