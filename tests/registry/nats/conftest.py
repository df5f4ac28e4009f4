"""NATS registry fixtures: unique subject prefixes on the shared server (tests/servers.py),
private servers."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from micro.registry import Registry
from micro.registry.nats import NatsRegistry
from tests.servers import address


@pytest.fixture
def prefix() -> str:
    return f"test.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make(prefix: str) -> Callable[[], NatsRegistry]:
    return lambda: NatsRegistry(address=address("nats"), prefix=prefix)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateNats:
    """A nats-server of our own on a free loopback port, that a test may stop and restart."""

    def __init__(self, workdir: Path, *args: str) -> None:
        self.args = list(args)
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        log = self.workdir / "nats.log"
        self.proc = subprocess.Popen(
            [binary, "-a", "127.0.0.1", "-p", str(self.port), "-l", str(log), *self.args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"nats-server did not start on {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[PrivateNats]:
    server = PrivateNats(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@asynccontextmanager
async def opened(registry: Registry) -> AsyncIterator[Registry]:
    async with registry:
        yield registry
