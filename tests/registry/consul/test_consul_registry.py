"""ConsulRegistry against the stand-in agent over real HTTP."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from micro.errors import RegistryError, ServiceNotFound
from micro.registry import Node, Result, Service
from micro.registry.consul import ConsulRegistry
from micro.testing import eventually
from tests.registry.consul.agent import ConsulAgent

pytestmark = pytest.mark.integration

Make = Callable[[], ConsulRegistry]


@pytest.fixture
async def agent() -> AsyncIterator[ConsulAgent]:
    async with ConsulAgent() as agent:
        yield agent


@pytest.fixture
def make(agent: ConsulAgent) -> Make:
    return lambda: ConsulRegistry(address=agent.address, watch_wait=5)


def _svc(name: str, version: str = "1.0.0", node: str = "n1", port: int = 1) -> Service:
    return Service(name, version, {}, [], [Node(node, f"127.0.0.1:{port}", {"v": version})])


async def _collect(watch: AsyncIterator[Result], into: list[Result]) -> None:
    async for result in watch:
        into.append(result)


async def test_registration_has_go_micros_layout(make: Make, agent: ConsulAgent) -> None:
    async with make() as registry:
        await registry.register(_svc("greeter", node="greeter-1", port=8080), ttl=10)
    async with httpx.AsyncClient(base_url=f"http://{agent.address}") as http:
        svc = (await http.get("/v1/agent/services")).json()["greeter-1"]
        health = (await http.get("/v1/health/service/greeter")).json()[0]
    assert (svc["Service"], svc["Address"], svc["Port"]) == ("greeter", "127.0.0.1", 8080)
    assert sorted(t[:2] for t in svc["Tags"]) == ["t-", "v-"]
    check = health["Checks"][1]
    assert (check["CheckID"], check["Status"]) == ("service:greeter-1", "passing")
    assert agent._checks["service:greeter-1"].deregister_after == 65.0  # max(TTL, 1 min) + 5 s


async def test_heartbeat_only_passes_the_check(make: Make, agent: ConsulAgent) -> None:
    async with make() as registry:
        await registry.register(_svc("beat"), ttl=10)
        modified = agent._services["n1"].modify_index
        await registry.register(_svc("beat"), ttl=10)
        assert agent._services["n1"].modify_index == modified  # not registered again
        await registry.register(_svc("beat", version="2.0.0"), ttl=10)
        assert agent._services["n1"].modify_index > modified
        assert [s.version for s in await registry.get_service("beat")] == ["2.0.0"]


async def test_many_versions_and_odd_names(make: Make) -> None:
    async with make() as registry:
        for v in range(30):
            await registry.register(_svc("many", f"{v}.0", node=f"m{v}"), ttl=30)
        assert len(await registry.get_service("many")) == 30
        odd = ["go.micro.srv.greeter", "a b", "ünï/cødé", "100%", "q?x=1&y#z"]
        for i, name in enumerate(odd):
            await registry.register(_svc(name, node=f"o{i}"), ttl=30)
        for i, name in enumerate(odd):
            assert [s.nodes[0].id for s in await registry.get_service(name)] == [f"o{i}"]
        listed = {s.name for s in await registry.list_services()}
        assert listed == {"many", *odd}


async def test_watch_events_in_order(make: Make) -> None:
    async with make() as a, make() as b:
        seen: list[Result] = []
        task = asyncio.create_task(_collect(b.watch("ordered"), seen))
        await asyncio.sleep(0.1)
        for i in range(10):
            await a.register(_svc("ordered", node=f"n{i}"), ttl=30)
            await eventually(lambda: len(seen) == i + 1)  # noqa: B023 (awaited before i moves on)
        for i in range(10):
            await a.deregister(_svc("ordered", node=f"n{i}"))
        await eventually(lambda: len(seen) == 20)
        task.cancel()
        got = [(r.action, r.service.nodes[0].id) for r in seen]
        assert got == [("create", f"n{i}") for i in range(10)] + [
            ("delete", f"n{i}") for i in range(10)
        ]


async def test_foreign_and_corrupt_entries_are_skipped(
    make: Make, agent: ConsulAgent, caplog: pytest.LogCaptureFixture
) -> None:
    async with make() as registry, httpx.AsyncClient(base_url=f"http://{agent.address}") as http:
        await registry.register(_svc("mixed", node="good"), ttl=30)
        body = {"Name": "mixed", "ID": "bad", "Port": 9, "Tags": ["e-nothex", "t=notjson", "v-00"]}
        await http.put("/v1/agent/service/register", json=body)
        await http.put("/v1/agent/service/register", json={"Name": "postgres", "Port": 5432})
        with caplog.at_level(logging.WARNING, logger="micro.registry.consul"):
            found = await registry.get_service("mixed")
        ids = sorted(n.id for s in found for n in s.nodes)
        assert ids == ["bad", "good"]  # the node is kept; its unreadable tags are not
        assert caplog.text.count("skipped an unreadable tag") == 3
        plain = await registry.get_service("postgres")  # a non-micro service: address only
        assert plain[0].nodes[0].address == "127.0.0.1:5432"  # the Consul node address


async def test_agent_goes_away_and_comes_back(make: Make, agent: ConsulAgent) -> None:
    async with make() as a, make() as b:
        seen: list[Result] = []
        task = asyncio.create_task(_collect(b.watch("phoenix"), seen))
        await asyncio.sleep(0.1)
        await a.register(_svc("phoenix"), ttl=30)
        await eventually(lambda: len(seen) == 1)
        await agent.stop()
        with pytest.raises(RegistryError):
            await b.get_service("phoenix")
        with pytest.raises(RegistryError):
            await a.register(_svc("phoenix"), ttl=30)
        await agent.start()  # same port, empty state: a fresh agent
        await a.register(_svc("phoenix"), ttl=30)  # pass-TTL finds no check: full register
        assert [n.id for s in await b.get_service("phoenix") for n in s.nodes] == ["n1"]
        await a.register(_svc("phoenix", node="n2"), ttl=30)
        await eventually(lambda: any(r.service.nodes[0].id == "n2" for r in seen), timeout=10)
        assert not task.done()
        task.cancel()


async def test_bad_address_is_refused() -> None:
    with pytest.raises(ValueError, match="host:port"):
        ConsulRegistry(address="nowhere")
    registry = ConsulRegistry(address="https://10.1.2.3:8501,other:1")
    assert (registry.scheme, registry.host, registry.port) == ("https", "10.1.2.3", 8501)
    with pytest.raises(ServiceNotFound):
        async with ConsulAgent() as agent, ConsulRegistry(address=agent.address) as r:
            await r.get_service("none")
