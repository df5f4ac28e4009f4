"""Fixtures for the NATS broker tests: unique topics on the shared server (tests/servers.py),
cleaned up after, and a private JetStream server (own port and store) for tests that kill or
restart it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

from tests.broker.helpers import PrivateNats
from tests.servers import nats_url

__all__ = ["PrivateNats"]


@pytest.fixture
async def private_nats(tmp_path: Path) -> AsyncIterator[PrivateNats]:
    async with PrivateNats(tmp_path) as server:
        yield server


@pytest.fixture
async def topic() -> AsyncIterator[str]:
    """A unique subject; every stream storing it is deleted after the test."""
    token = f"t{uuid.uuid4().hex[:10]}"
    yield f"microtest.{token}"
    nc = await nats.connect(nats_url())
    try:
        js = nc.jetstream()
        for info in await js.streams_info():
            if any(token in subject for subject in info.config.subjects or ()):
                await js.delete_stream(info.config.name or "")
    finally:
        await nc.close()
