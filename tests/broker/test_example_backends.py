"""examples/pubsub on every broker: the same two services in two processes, only MICRO_BROKER
changes (and MICRO_BROKER_ADDRESS, the server from tests/servers.py); the mailer's
@service.subscribe gets typed events from the users service's client.publish and answers with
its own publish."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests import servers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ["http", "nats", "redis", "rabbitmq", "mqtt"]


async def _cleanup(backend: str, prefix: str) -> None:
    """Remove what the run left on the shared servers (streams, durable queues)."""
    if backend == "redis":
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(servers.redis_url())
        try:
            keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()
    elif backend == "rabbitmq":
        import aio_pika

        connection = await aio_pika.connect(servers.amqp_url())
        async with connection:
            for suffix in ("", ".dlq"):
                channel = await connection.channel()
                try:
                    await channel.queue_delete(f"micro.{prefix}.user.created.mailer{suffix}")
                except aio_pika.exceptions.ChannelClosed:
                    pass  # not there: nothing to clean


@pytest.fixture
async def prefix(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    name = f"ex{uuid.uuid4().hex[:8]}"
    yield name
    await _cleanup(request.node.callspec.params["backend"], name)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_pubsub_example_on_backend(backend: str, prefix: str) -> None:
    env = {**os.environ, "MICRO_BROKER": backend, "EXAMPLE_TOPIC_PREFIX": prefix}
    if backend != "http":  # http listens on MICRO_BROKER_ADDRESS: leave it to pick a port
        env["MICRO_BROKER_ADDRESS"] = servers.address(backend)
    mailer = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "examples/pubsub/subscriber.py"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert mailer.stderr is not None
        async with asyncio.timeout(20):
            async for line in mailer.stderr:
                if b"serving on" in line:
                    break
        users = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "examples/pubsub/publisher.py"), "3",
            stdout=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(users.communicate(), 40)
        assert users.returncode == 0, out
        lines = sorted(out.decode().split("\n")[:3])
        assert lines == [f"welcomed {n} by mailer" for n in (1, 2, 3)]
        mailer.send_signal(signal.SIGTERM)  # the mailer drains and exits on SIGTERM
        assert await asyncio.wait_for(mailer.wait(), 20) == 0
    finally:
        if mailer.returncode is None:
            mailer.kill()
            await mailer.wait()
