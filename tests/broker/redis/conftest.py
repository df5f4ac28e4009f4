"""Fixtures for the Redis broker tests: unique topics on the shared server (tests/servers.py),
keys deleted after, and a private persistent redis-server (own port and directory) to kill and
restart."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.broker.helpers import PrivateRedis
from tests.servers import redis_url

__all__ = ["PrivateRedis"]


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    async with PrivateRedis(tmp_path) as server:
        yield server


@pytest.fixture
async def topic() -> AsyncIterator[str]:
    """A unique topic; every key containing it is deleted after the test."""
    token = f"microtest:{uuid.uuid4().hex[:10]}"
    yield token
    client = aioredis.Redis.from_url(redis_url())
    try:
        keys = [key async for key in client.scan_iter(match=f"*{token}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
