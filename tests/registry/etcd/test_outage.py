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


def _service(name: str, address: str, *, ttl: float = 2, interval: float = 0.5) -> micro.Service:
    service = micro.Service(
        name,
        address="127.0.0.1:0",
        registry=EtcdRegistry(address=address, timeout=1.0),
        register_ttl=ttl,
        register_interval=interval,
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


# -- etcd wiped under load ----------------------------------------------------------------------


class _Load:
    """``width`` calls in flight at all times until stopped; counts calls and failures."""

    def __init__(self, client: micro.Client, name: str, width: int) -> None:
        self.client, self.name, self.width = client, name, width
        self.calls = 0
        self.failures: dict[str, int] = {}
        self._stop = asyncio.Event()
        self._progress = asyncio.Event()

    async def run(self, limit: float) -> None:
        """Call until :meth:`stop` or ``limit`` seconds (the bound of the run)."""
        async with asyncio.timeout(limit):
            await asyncio.gather(*(self._worker() for _ in range(self.width)))

    def stop(self) -> None:
        self._stop.set()

    async def more(self, calls: int) -> None:
        """Wait until ``calls`` more calls have finished (the load is really running)."""
        target = self.calls + calls
        while self.calls < target:
            self._progress.clear()
            await self._progress.wait()

    async def _worker(self) -> None:
        while not self._stop.is_set():
            try:
                await self.client.call(self.name, "Greeter.SayHello", {"name": "x"}, timeout=2.0)
            except micro.errors.MicroError as exc:
                kind = type(exc).__name__
                self.failures[kind] = self.failures.get(kind, 0) + 1
            self.calls += 1
            self._progress.set()


async def _registered(address: str, name: str, ids: set[str], limit: float) -> float | None:
    """Seconds until every node in ``ids`` is in etcd again (None: not within ``limit``)."""
    started = time.monotonic()
    async with EtcdRegistry(address=address, timeout=1.0) as registry:
        while True:
            try:
                found = {n.id for s in await registry.get_service(name) for n in s.nodes}
            except (ServiceNotFound, micro.errors.RegistryError):
                found = set()
            took = time.monotonic() - started
            if found >= ids:
                return took
            if took > limit:
                return None
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("away", [0.0, 5.0], ids=["restart", "away-5s"])
async def test_an_etcd_wiped_under_load_costs_no_call_and_servers_register_again(
    private_etcd: EtcdServer, away: float
) -> None:
    # go-micro's default TTL and interval: the 30 s tick must not be what brings them back
    name = f"wiped-{uuid.uuid4().hex[:8]}"
    services = [_service(name, private_etcd.address, ttl=60, interval=30) for _ in range(3)]
    client = micro.Client(registry=EtcdRegistry(address=private_etcd.address, timeout=1.0))
    load = _Load(client, name, width=64)
    running: asyncio.Task[None] | None = None
    try:
        for service in services:
            await service.start()
        ids = {service.server.id for service in services}
        running = asyncio.create_task(load.run(limit=30.0))
        await load.more(5000)
        await asyncio.to_thread(private_etcd.stop)
        await asyncio.sleep(away)  # the scenario, not a wait: etcd stays down this long
        private_etcd.spawn(wipe=True)  # empty, on the same port
        spawned = time.monotonic()
        await asyncio.to_thread(private_etcd.wait_healthy)
        healthy = time.monotonic()
        back = await _registered(private_etcd.address, name, ids, limit=10.0)
        await asyncio.sleep(3.0)  # the load goes on while the client meets the new etcd
        load.stop()
        await running
        took = "not within 10 s" if back is None else f"{back:.2f} s later"
        print(
            f"\n{load.calls} calls, failed: {load.failures}; etcd healthy "
            f"{healthy - spawned:.2f} s after its start, the nodes back in it {took}"
        )
        assert load.failures == {}
        assert back is not None, "the nodes were not registered again"
        assert back < 2.0
    finally:
        load.stop()
        if running is not None:
            await asyncio.gather(running, return_exceptions=True)
        await client.close()
        for service in services:
            await service.stop()
