"""Fixtures for the NATS broker tests: unique topics on the shared server, cleaned up after,
and a private JetStream server (own port and store) for tests that kill or restart it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

from tests.broker.helpers import PrivateServer

SHARED = "nats://127.0.0.1:4222"

__all__ = ["SHARED", "PrivateNats"]


class PrivateNats(PrivateServer):
    """``nats-server -js`` on a free loopback port with its store in ``directory``."""

    scheme = "nats"

    def command(self) -> list[str]:
        cmd = ["nats-server", "-a", "127.0.0.1", "-p", str(self.port), "-js"]
        cmd += ["-sd", str(self.directory / "store"), "-l", str(self.directory / "nats.log")]
        return cmd


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
