"""NatsRegistry against real NATS servers: the shared one (unique prefixes), private ones."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from micro import plugins
from micro.errors import RegistryError, ServiceNotFound
from micro.registry import Node, Result, Service
from micro.registry.nats import NatsRegistry
from micro.selector.cache import RegistrySelector
from micro.settings import load
from micro.testing import eventually
from tests.registry.nats.conftest import PrivateNats
from tests.servers import nats_url

pytestmark = pytest.mark.integration

Make = Callable[[], NatsRegistry]


def _svc(name: str, version: str = "1.0.0", node: str = "n1", port: int = 1) -> Service:
    return Service(name, version, {}, [], [Node(node, f"127.0.0.1:{port}", {"v": version})])


async def _collect(watch: object, into: list[Result]) -> None:
    async for result in watch:  # type: ignore[attr-defined]
        into.append(result)


async def test_unknown_name_is_answered_at_once(make: Make) -> None:
    async with make() as registry:
        started = time.monotonic()
        with pytest.raises(ServiceNotFound):
            await registry.get_service("nobody-holds-this")
        assert await registry.list_services() == []
        assert time.monotonic() - started < 1.0  # NATS "no responders", not the 2 s timeout


async def test_watch_events_arrive_in_order(make: Make) -> None:
    name, count = "ordered", 30
    async with make() as a, make() as b:
        seen: list[Result] = []
        watcher = asyncio.create_task(_collect(b.watch(name), seen))
        await asyncio.sleep(0.1)
        for i in range(count):
            await a.register(_svc(name, node=f"n{i:02}"), ttl=30)
        for i in range(count):
            await a.deregister(_svc(name, node=f"n{i:02}"))
        await eventually(lambda: len(seen) == 2 * count)
        watcher.cancel()
        got = [(r.action, r.service.nodes[0].id) for r in seen]
        want = [("create", f"n{i:02}") for i in range(count)]
        assert got == want + [("delete", f"n{i:02}") for i in range(count)]


async def test_many_versions_of_one_service(make: Make) -> None:
    name = "versions"
    async with make() as a, make() as b:
        for v in range(40):
            await a.register(_svc(name, f"{v}.0.0", node=f"n{v}", port=1000 + v), ttl=30)
        found = await b.get_service(name)
        assert sorted(s.version for s in found) == sorted(f"{v}.0.0" for v in range(40))
        assert all(len(s.nodes) == 1 and s.nodes[0].metadata["v"] == s.version for s in found)
        listed = await b.list_services()
        assert {s.name for s in listed} == {name}
        assert len(listed) == 40


ODD = ["go.micro.srv.greeter", "a b", "wild*card>", "a..b", ".lead", "ünï/cødé", "100%", "x" * 200]


async def test_odd_names_are_kept_apart(make: Make) -> None:
    async with make() as a, make() as b:
        for i, name in enumerate(ODD):
            await a.register(_svc(name, node=f"n{i}", port=2000 + i), ttl=30)
        for i, name in enumerate(ODD):
            found = await b.get_service(name)
            assert [(s.name, s.nodes[0].id) for s in found] == [(name, f"n{i}")]
        assert {s.name for s in await b.list_services()} == set(ODD)
        with pytest.raises(ServiceNotFound):
            await b.get_service("a")  # a prefix of "a..b" and "a b" is its own name


async def test_foreign_and_corrupt_messages_are_skipped(
    make: Make, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    import nats

    name = "victim"
    async with make() as a, make() as b:
        nc = await nats.connect(nats_url())
        try:

            async def liar(msg: object) -> None:
                await nc.publish(msg.reply, b'[{"nonsense":1}, "x"]')  # type: ignore[attr-defined]

            await nc.subscribe(f"{prefix}.query.{name}", cb=liar)
            await nc.subscribe(f"{prefix}.list", cb=liar)
            seen: list[Result] = []
            watcher = asyncio.create_task(_collect(b.watch(), seen))
            await asyncio.sleep(0.1)
            with caplog.at_level(logging.WARNING, logger="micro.registry.nats"):
                await nc.publish(f"{prefix}.events.{name}", b"\x00garbage")
                await nc.publish(f"{prefix}.events.{name}", b'{"action":"create","service":{}}')
                await nc.flush()
                await a.register(_svc(name), ttl=30)
                found = await b.get_service(name)
                assert [n.id for s in found for n in s.nodes] == ["n1"]
                assert [s.name for s in await b.list_services()] == [name]
                await eventually(lambda: len(seen) == 1)
            assert seen[0].action == "create"
            assert not watcher.done()
            assert "skipped a malformed" in caplog.text
            watcher.cancel()
        finally:
            await nc.close()


async def test_a_lookup_right_after_register_finds_it(make: Make) -> None:
    """register returns once NATS has the node's subscription: no "no responders" race.

    nats-py's flush() alone pings ahead of commands its flusher has not written yet, so
    this failed about one time in ten per fresh pair of connections before settle().
    """
    for i in range(50):
        async with make() as a, make() as b:
            await a.register(_svc(f"eager{i}"), ttl=30)
            found = await b.get_service(f"eager{i}")
            assert [n.id for s in found for n in s.nodes] == ["n1"]


async def test_a_busy_instance_is_still_found(make: Make) -> None:
    """An instance whose loop is busy answers late; a lookup waits for it (not 0.5 s)."""
    async with make() as a, make() as b:
        await a.register(_svc("busy"), ttl=30)
        answer = a._answer

        async def slow(msg: object, names: list[str]) -> None:
            await asyncio.sleep(1.0)
            await answer(msg, names)  # type: ignore[arg-type]

        a._answer = slow  # type: ignore[method-assign]
        started = time.monotonic()
        found = await b.get_service("busy")
        assert [n.id for s in found for n in s.nodes] == ["n1"]
        assert time.monotonic() - started >= 1.0


async def test_a_lapsed_registration_stops_answering(make: Make) -> None:
    async with make() as a, make() as b:
        await a.register(_svc("lapse"), ttl=0.5)
        assert await b.get_service("lapse")
        await asyncio.sleep(0.7)
        with pytest.raises(ServiceNotFound):
            await b.get_service("lapse")


async def test_unreachable_server_is_a_registry_error() -> None:
    from tests.registry.nats.conftest import free_port

    registry = NatsRegistry(address=f"127.0.0.1:{free_port()}")
    with pytest.raises(RegistryError, match="cannot connect"):
        await registry.start()
    with pytest.raises(RegistryError):
        await registry.get_service("x")
    await registry.close()


def test_options_from_arguments_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICRO_REGISTRY_ADDRESS", "10.0.0.1:4222,nats://u:p@h:1")
    monkeypatch.setenv("MICRO_NATS_REGISTRY_PREFIX", "team.a")
    monkeypatch.setenv("MICRO_REGISTRY_USERNAME", "alice")
    monkeypatch.setenv("MICRO_REGISTRY_PASSWORD", "s3cret")
    assert NatsRegistry().servers == ["nats://127.0.0.1:4222"]  # a backend never reads env
    registry = plugins.create("registry", "nats", settings=load())
    assert isinstance(registry, NatsRegistry)
    assert registry.servers == ["nats://10.0.0.1:4222", "nats://u:p@h:1"]
    assert (registry._options.user, registry._options.password) == ("alice", "s3cret")
    assert registry.prefix == "team.a"
    assert NatsRegistry(address=["127.0.0.1:1"], prefix="x").servers == ["nats://127.0.0.1:1"]
    with pytest.raises(ValueError, match="prefix"):
        NatsRegistry(prefix="bad prefix")


async def test_registry_goes_away_and_comes_back(private_nats: PrivateNats, prefix: str) -> None:
    """Lookups fail loudly while NATS is down, the cache keeps serving, all recovers after."""

    def make() -> NatsRegistry:
        return NatsRegistry(address=private_nats.address, prefix=prefix, reconnect_wait=0.2)

    async with make() as a, make() as b:
        selector = RegistrySelector(b)
        seen: list[Result] = []
        watcher = asyncio.create_task(_collect(b.watch("flaky"), seen))
        await asyncio.sleep(0.1)
        await a.register(_svc("flaky"), ttl=30)
        await selector.start()
        assert (await selector.select("flaky"))().id == "n1"

        private_nats.stop()
        await eventually(lambda: _raises(b.get_service("flaky")))
        with pytest.raises(RegistryError):
            await a.register(_svc("flaky", node="n2"), ttl=30)
        assert (await selector.select("flaky"))().id == "n1"  # from the cache

        private_nats.start()
        await eventually(lambda: _finds(b, "flaky"), timeout=10)  # a re-subscribed by itself
        await a.register(_svc("flaky", node="n2"), ttl=30)
        await eventually(lambda: [r.service.nodes[0].id for r in seen] == ["n1", "n2"])
        assert {n.id for s in await b.get_service("flaky") for n in s.nodes} == {"n1", "n2"}
        watcher.cancel()
        await selector.close()


async def _raises(coro: object) -> bool:
    try:
        await coro  # type: ignore[misc]
    except RegistryError:
        return True
    except ServiceNotFound:
        return False  # the client has not noticed the outage yet
    return False


async def _finds(registry: NatsRegistry, name: str) -> bool:
    try:
        return bool(await registry.get_service(name))
    except (RegistryError, ServiceNotFound):
        return False


async def test_user_and_password(tmp_path: Path) -> None:
    server = PrivateNats(tmp_path, "--user", "alice", "--pass", "s3cret")
    server.start()
    try:
        wrong = NatsRegistry(address=server.address, user="alice", password="nope")
        with pytest.raises(RegistryError, match="cannot connect"):
            await wrong.start()
        await wrong.close()
        async with NatsRegistry(address=server.address, user="alice", password="s3cret") as ok:
            await ok.register(_svc("authed"), ttl=5)
            assert (await ok.get_service("authed"))[0].nodes[0].id == "n1"
    finally:
        server.stop()
