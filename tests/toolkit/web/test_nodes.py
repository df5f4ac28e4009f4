"""/_/nodes: Debug.Health and Debug.Stats polled per node of real service processes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from micro.registry import Node, Service
from micro.registry.memory import MemoryRegistry
from tests.toolkit.web.harness import (
    DATA_SERVICE,
    GREETER,
    Spawn,
    free_port,
    serve,
    spawn,
    unique,
    wait_for,
)

__all__ = ["spawn"]  # the fixture

pytestmark = pytest.mark.integration

INTERVAL = 0.2
WINDOW = 1.0


async def test_nodes_are_polled_with_history_then_left_alone(spawn: Spawn, tmp_path: Path) -> None:
    name = unique("web-nodes")
    spawn(DATA_SERVICE, name, "--record", str(tmp_path / "rec"))
    second = spawn(GREETER, name)
    async with (
        serve(stats_interval=INTERVAL, stats_window=WINDOW) as (dash, url),
        httpx.AsyncClient(base_url=url) as http,
    ):
        await wait_for(lambda: len(dash.live.nodes_of(name)) == 2, what="two nodes")
        rsp = await http.get("/_/nodes", params={"service": name})
        assert rsp.status_code == 200
        body = rsp.json()
        assert body["interval"] == INTERVAL
        assert len(body["nodes"]) == 2
        for node in body["nodes"]:
            assert node["health"] == "ok"
            assert node["error"] is None
            assert node["version"] == "latest"
            [sample] = node["samples"]  # the first request shows the first round
            assert sample["memory"] > 0
            assert sample["threads"] >= 1
            assert sample["uptime"] >= 0
            assert sample["t"] > 0
            assert "requests" in sample
            assert "errors" in sample
        assert dash.live.nodes.polling == [name]

        for _ in range(12):  # the window keeps WINDOW / INTERVAL samples per node
            await asyncio.sleep(INTERVAL)
            body = (await http.get("/_/nodes", params={"service": name})).json()
        assert all(len(n["samples"]) == 5 for n in body["nodes"])

        second.terminate()  # a node that leaves is dropped with its history
        await wait_for(lambda: len(dash.live.nodes_of(name)) == 1, what="one node left")
        await asyncio.sleep(INTERVAL * 2)
        body = (await http.get("/_/nodes", params={"service": name})).json()
        assert len(body["nodes"]) == 1

        # nobody asks: polling stops after three intervals
        await wait_for(lambda: not dash.live.nodes.polling, INTERVAL * 10, "polling to stop")


async def test_a_dead_node_shows_its_error() -> None:
    registry = MemoryRegistry()
    dead = Node(id="dead-1", address=f"127.0.0.1:{free_port()}")
    await registry.register(Service(name="web-dead", nodes=[dead]))
    async with (
        serve(registry=registry, stats_interval=INTERVAL, stats_window=WINDOW) as (_, url),
        httpx.AsyncClient(base_url=url) as http,
    ):
        body = (await http.get("/_/nodes", params={"service": "web-dead"})).json()
    [node] = body["nodes"]
    assert node["id"] == "dead-1"
    assert node["health"] != "ok"
    assert node["error"]
    assert node["samples"] == []


async def test_nodes_bad_input() -> None:
    async with (
        serve(registry=MemoryRegistry()) as (_, url),
        httpx.AsyncClient(base_url=url) as http,
    ):
        rsp = await http.get("/_/nodes")
        assert rsp.status_code == 400
        assert rsp.json()["error"]["detail"] == "missing query parameter: service"
        rsp = await http.get("/_/nodes", params={"service": "nobody"})
        assert rsp.status_code == 404
        assert rsp.json()["error"]["detail"] == "service not found: nobody"
