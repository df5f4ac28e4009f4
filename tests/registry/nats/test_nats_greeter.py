"""The greeter example on NATS, changing only env vars; and a crashed node ageing out."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator

import pytest

import micro
from micro.errors import ServiceNotFound
from micro.registry import Result
from micro.registry.nats import NatsRegistry
from micro.testing import eventually
from tests.servers import address

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
GREETER = os.path.join(ROOT, "tests", "integration", "greeter_service.py")


@pytest.fixture
def nats_env(prefix: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "MICRO_REGISTRY": "nats",
        "MICRO_REGISTRY_ADDRESS": address("nats"),
        "MICRO_NATS_REGISTRY_PREFIX": prefix,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
async def greeter(
    nats_env: dict[str, str],
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    name = f"greeter-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, **nats_env, "MICRO_REGISTER_TTL": "2", "MICRO_REGISTER_INTERVAL": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, GREETER, "--server_name", name, env=env
    )
    try:
        yield name, proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_greeter_runs_on_nats_by_env_alone(
    greeter: tuple[str, asyncio.subprocess.Process], prefix: str
) -> None:
    name, _ = greeter
    async with NatsRegistry(address=address("nats"), prefix=prefix) as registry:
        found = await eventually(
            lambda: registry.get_service(name), retry_on=ServiceNotFound, timeout=15
        )
        assert [ep.name for ep in found[0].endpoints] == ["Greeter.SayHello"]
    async with micro.Client() as client:  # MICRO_REGISTRY=nats etc. from the environment
        assert client.registry is None or client.registry.name == "nats"
        rsp = await client.call(name, "Greeter.SayHello", {"name": "John"}, timeout=5)
        assert rsp == {"msg": "Hello John"}
        assert client.registry is not None
        assert client.registry.name == "nats"


async def test_a_killed_node_vanishes_from_lookups_at_once_and_from_watches_in_its_ttl(
    greeter: tuple[str, asyncio.subprocess.Process], prefix: str
) -> None:
    name, proc = greeter
    async with NatsRegistry(address=address("nats"), prefix=prefix) as registry:
        await eventually(lambda: registry.get_service(name), retry_on=ServiceNotFound, timeout=15)
        seen: list[Result] = []

        async def collect() -> None:
            async for result in registry.watch(name):
                seen.append(result)

        watcher = asyncio.create_task(collect())
        await asyncio.sleep(1.5)  # heartbeats come and go: no event for a live node
        assert seen == []
        proc.kill()
        await proc.wait()
        killed = time.monotonic()
        with pytest.raises(ServiceNotFound):
            await registry.get_service(name)  # its subscription died with its connection
        while not seen and time.monotonic() - killed < 5:
            await asyncio.sleep(0.05)
        took = time.monotonic() - killed
        watcher.cancel()
        assert [r.action for r in seen] == ["delete"]
        assert took < 2.5, f"deleted after {took:.2f} s, TTL 2 s"
