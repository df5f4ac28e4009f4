"""etcd goes away and comes back; the greeter runs on etcd by env vars alone."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

import micro
from examples.greeter.server import Greeter
from micro.errors import ServiceNotFound
from micro.registry import Node, Result, Service
from micro.registry.etcd import EtcdRegistry
from micro.selector.cache import RegistrySelector
from micro.testing.etcd import EtcdServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


@pytest.fixture
def private_etcd() -> Iterator[EtcdServer]:
    with EtcdServer() as server:
        yield server


async def _resolve(address: str, name: str, limit: float) -> Service:
    deadline = time.monotonic() + limit
    async with EtcdRegistry(address=address, timeout=1.0) as registry:
        while True:
            try:
                return (await registry.get_service(name))[0]
            except (ServiceNotFound, micro.errors.RegistryError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)


def _service(name: str, address: str) -> micro.Service:
    service = micro.Service(
        name,
        address="127.0.0.1:0",
        registry=EtcdRegistry(address=address, timeout=1.0),
        register_ttl=2,
        register_interval=0.5,
        handle_signals=False,
    )
    service.handle(Greeter())
    return service


async def _node_ids(selector: RegistrySelector, name: str, picks: int = 6) -> set[str]:
    """The nodes round robin hands out over ``picks`` selections (from the cache only)."""
    return {(await selector.select(name))().id for _ in range(picks)}


async def test_clients_call_from_cache_while_etcd_is_down_and_servers_reregister(
    private_etcd: EtcdServer,
) -> None:
    name = f"outage-{uuid.uuid4().hex[:8]}"
    first = _service(name, private_etcd.address)
    await first.start()
    second: micro.Service | None = None
    client = micro.Client(registry=EtcdRegistry(address=private_etcd.address, timeout=1.0))
    try:
        assert await client.call(name, "Greeter.SayHello", {"name": "a"}) == {"msg": "Hello a"}
        await asyncio.sleep(0.5)  # the client's watch is in place, as in any running client
        await asyncio.to_thread(private_etcd.kill)
        calls, started = 0, time.monotonic()
        while time.monotonic() - started < 3.0:  # longer than the 2 s register TTL
            rsp = await client.call(name, "Greeter.SayHello", {"name": "b"}, timeout=1.0)
            assert rsp == {"msg": "Hello b"}
            calls += 1
            await asyncio.sleep(0.05)
        assert calls > 20
        # etcd comes back empty (its data lost): the server's re-register loop writes again
        await asyncio.to_thread(private_etcd.start, wipe=True)
        back = time.monotonic()
        found = await _resolve(private_etcd.address, name, 10.0)
        assert found.nodes[0].id == first.server.id
        assert time.monotonic() - back < 5.0
        # and the client's watch is live again: a new node shows up in its cache
        second = _service(name, private_etcd.address)
        await second.start()
        selector = client.selector
        assert isinstance(selector, RegistrySelector)
        want = {first.server.id, second.server.id}
        deadline = time.monotonic() + 10
        while await _node_ids(selector, name) != want:
            assert time.monotonic() < deadline, "the client never learned of the new node"
            await asyncio.sleep(0.1)
        assert await client.call(name, "Greeter.SayHello", {"name": "c"}) == {"msg": "Hello c"}
    finally:
        await client.close()
        if second is not None:
            await second.stop()
        await first.stop()


async def test_greeter_runs_on_etcd_by_env_vars_only(
    private_etcd: EtcdServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"greeter-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "MICRO_REGISTRY": "etcd", "MICRO_REGISTRY_ADDRESS": private_etcd.address}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, os.path.join(ROOT, "tests/integration/greeter_service.py"),
        "--server_name", name, env=env,
    )  # fmt: skip
    try:
        node = (await _resolve(private_etcd.address, name, 15.0)).nodes[0]
        assert node.metadata["registry"] == "etcd"
        monkeypatch.setenv("MICRO_REGISTRY", "etcd")
        monkeypatch.setenv("MICRO_REGISTRY_ADDRESS", private_etcd.address)
        async with micro.Client() as client:
            assert isinstance(client.registry, EtcdRegistry)
            rsp = await client.call(name, "Greeter.SayHello", {"name": "John"}, timeout=3)
        assert rsp == {"msg": "Hello John"}
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 15) == 0
        with pytest.raises(ServiceNotFound):  # deregistered on SIGTERM
            await _resolve(private_etcd.address, name, 0.0)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_watch_ends_with_an_error_when_etcd_lost_its_history(
    private_etcd: EtcdServer,
) -> None:
    results: asyncio.Queue[Result | BaseException] = asyncio.Queue()

    async def pump(registry: EtcdRegistry) -> None:
        try:
            async for result in registry.watch():
                await results.put(result)
        except Exception as exc:
            await results.put(exc)

    async with EtcdRegistry(address=private_etcd.address, timeout=1.0) as registry:
        task = asyncio.create_task(pump(registry))
        await asyncio.sleep(0.2)
        for i in range(5):
            await registry.register(Service(f"gap{i}", nodes=[Node("n", "127.0.0.1:1")]))
        got = [await asyncio.wait_for(results.get(), 5) for _ in range(5)]
        assert [r.service.name for r in got if isinstance(r, Result)] == [
            f"gap{i}" for i in range(5)
        ]
        await asyncio.to_thread(private_etcd.kill)
        await asyncio.to_thread(private_etcd.start, wipe=True)
        error = await asyncio.wait_for(results.get(), 10)
        assert isinstance(error, micro.errors.RegistryError), error
        assert "reset" in str(error)
        await task
