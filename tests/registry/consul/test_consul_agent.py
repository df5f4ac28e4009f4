"""The stand-in agent behaves as Consul's HTTP API documents (what ConsulRegistry relies on)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.registry.consul.agent import ConsulAgent, parse_duration

pytestmark = pytest.mark.integration


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with ConsulAgent() as agent, httpx.AsyncClient(base_url=f"http://{agent.address}") as c:
        yield c


@pytest.mark.parametrize(
    ("text", "seconds"), [("10s", 10), ("1m30s", 90), ("500ms", 0.5), ("1.5h", 5400), ("0", 0)]
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["10", "s", "1x", "1s2", "-1s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


async def test_register_validates_and_keys_are_case_insensitive(http: httpx.AsyncClient) -> None:
    assert (await http.put("/v1/agent/service/register", content=b"{nope")).status_code == 400
    assert (await http.put("/v1/agent/service/register", json={"ID": "x"})).status_code == 400
    rsp = await http.put("/v1/agent/service/register", json={"name": "web", "port": 80})
    assert rsp.status_code == 200
    services = (await http.get("/v1/agent/services")).json()
    assert services["web"]["Service"] == "web"  # ID defaults to the name
    assert services["web"]["Port"] == 80


async def test_ttl_check_starts_critical_then_passes_then_expires(http: httpx.AsyncClient) -> None:
    body = {"Name": "api", "ID": "api-1", "Check": {"TTL": "300ms"}}
    assert (await http.put("/v1/agent/service/register", json=body)).status_code == 200
    assert (await http.get("/v1/health/service/api?passing")).json() == []
    entries = (await http.get("/v1/health/service/api")).json()
    checks = {c["CheckID"]: c["Status"] for c in entries[0]["Checks"]}
    assert checks == {"serfHealth": "passing", "service:api-1": "critical"}
    assert (await http.put("/v1/agent/check/pass/service:api-1")).status_code == 200
    assert len((await http.get("/v1/health/service/api?passing")).json()) == 1
    await asyncio.sleep(0.45)
    entries = (await http.get("/v1/health/service/api")).json()
    check = entries[0]["Checks"][1]
    assert (check["Status"], check["Output"]) == ("critical", "TTL expired")
    assert (await http.put("/v1/agent/check/pass/nope")).status_code == 404
    assert (await http.put("/v1/agent/service/deregister/nope")).status_code == 404
    assert (await http.put("/v1/agent/service/deregister/api-1")).status_code == 200
    assert (await http.get("/v1/health/service/api")).json() == []


async def test_blocking_query_returns_on_change_or_after_wait(http: httpx.AsyncClient) -> None:
    first = await http.get("/v1/health/service/db")
    index = int(first.headers["X-Consul-Index"])
    assert index >= 1  # never 0
    started = time.monotonic()
    rsp = await http.get(f"/v1/health/service/db?index={index}&wait=300ms")
    assert 0.3 <= time.monotonic() - started < 1.0  # wait plus at most wait/16 of jitter
    assert rsp.headers["X-Consul-Index"] == str(index)

    async def register_soon() -> None:
        await asyncio.sleep(0.2)
        await http.put("/v1/agent/service/register", json={"Name": "db", "ID": "db-1"})

    task = asyncio.create_task(register_soon())
    started = time.monotonic()
    rsp = await http.get(f"/v1/health/service/db?index={index}&wait=10s")
    await task
    assert 0.15 < time.monotonic() - started < 2
    assert int(rsp.headers["X-Consul-Index"]) > index
    assert [e["Service"]["ID"] for e in rsp.json()] == ["db-1"]
    rsp = await http.get("/v1/health/service/db?index=1&wait=nonsense")
    assert rsp.status_code == 400


async def test_catalog_lists_names_with_their_tags(http: httpx.AsyncClient) -> None:
    before = await http.get("/v1/catalog/services")
    assert before.json() == {"consul": []}
    for sid, tags in (("a-1", ["x"]), ("a-2", ["y", "x"])):
        body = {"Name": "a", "ID": sid, "Tags": tags}
        await http.put("/v1/agent/service/register", json=body)
    after = await http.get("/v1/catalog/services")
    assert after.json() == {"consul": [], "a": ["x", "y"]}
    assert int(after.headers["X-Consul-Index"]) > int(before.headers["X-Consul-Index"])
