"""The live registry view: /_/services, /_/events (SSE) and /_/service, over mDNS on
loopback with real service processes, and over a memory registry at 1,000 x 3 nodes."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from micro import plugins
from micro.registry import Endpoint, Node, Service, Value
from micro.registry.memory import MemoryRegistry
from micro.settings import BACKEND_GROUPS, load
from micro.toolkit.web import fields, live
from tests.toolkit.web.harness import (
    DATA_SERVICE,
    GREETER,
    Spawn,
    serve,
    spawn,
    sse_events,
    unique,
    wait_for,
)

__all__ = ["spawn"]  # the fixture

pytestmark = pytest.mark.integration


def _names(payload: str | bytes) -> set[str]:
    return {s["name"] for s in json.loads(payload)["services"]}


async def _next_services(events: Any, timeout: float = 5.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        async for event, data in events:
            if event == "services":
                return dict(json.loads(data))
    raise AssertionError("the event stream ended")


def _field(tree: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [f for f in tree["fields"] if f["name"] == name]
    return dict(found)


async def test_service_detail_from_a_real_process(spawn: Spawn, tmp_path: Path) -> None:
    name, topic = unique("web-data"), unique("topic")
    spawn(DATA_SERVICE, name, "--record", str(tmp_path / "rec"), "--topic", topic)
    async with serve() as (dash, url), httpx.AsyncClient(base_url=url) as http:
        await wait_for(lambda: name in dash.live.names(), what=name)
        summary = (await http.get("/_/services")).json()
        [row] = [s for s in summary["services"] if s["name"] == name]
        assert row["nodes"] == 1
        assert row["versions"] == ["latest"]
        assert row["endpoints"] == 4  # SayHello, Add, Ticks and the subscriber

        rsp = await http.get("/_/service", params={"name": name})
        assert rsp.status_code == 200
        detail = rsp.json()
        assert detail["name"] == name
        [version] = detail["versions"]
        [node] = version["nodes"]
        assert node["address"].startswith("127.0.0.1:")
        endpoints = {e["name"]: e for e in version["endpoints"]}

        hello = endpoints["Greeter.SayHello"]
        assert hello["stream"] is False
        assert hello["request"]["kind"] == "object"
        assert hello["request"]["type"] == "HelloRequest"
        assert _field(hello["request"], "name") == {
            "name": "name", "type": "string", "kind": "string", "required": True, "fields": [],
            "items": None, "enum": None, "description": None,
        }  # fmt: skip
        assert _field(hello["response"], "msg")["kind"] == "string"

        add = endpoints["Calc.Add"]["request"]
        assert _field(add, "a")["kind"] == "integer"
        assert _field(add, "a")["required"] is True
        assert _field(add, "b")["required"] is False
        assert _field(add, "scale")["kind"] == "number"
        assert _field(add, "negate")["kind"] == "boolean"

        assert endpoints["Ticker.Ticks"]["stream"] is True
        subscriber = [e for e in version["endpoints"] if e["subscriber"]]
        assert len(subscriber) == 1
        assert detail["subscribers"] == [
            {"topic": topic, "endpoint": subscriber[0]["name"], "queue": None, "version": "latest"}
        ]


async def test_events_follow_a_process_that_starts_and_stops(spawn: Spawn) -> None:
    name = unique("web-live")
    async with serve() as (_, url), httpx.AsyncClient(base_url=url, timeout=30) as http:
        async with http.stream("GET", "/_/events") as rsp:
            assert rsp.status_code == 200
            assert rsp.headers["content-type"].startswith("text/event-stream")
            events = sse_events(rsp)
            first = await _next_services(events)
            assert name not in {s["name"] for s in first["services"]}

            proc = spawn(GREETER, name)
            async with asyncio.timeout(20):
                while name not in {
                    s["name"] for s in (await _next_services(events, 20))["services"]
                }:
                    pass

            proc.terminate()  # a clean stop deregisters: the page hears it at once
            stopped = time.monotonic()
            async with asyncio.timeout(10):
                while name in {s["name"] for s in (await _next_services(events, 10))["services"]}:
                    pass
            assert time.monotonic() - stopped < 3.0  # the process's own shutdown included


async def test_a_registry_change_reaches_an_open_stream_within_a_second() -> None:
    name = unique("web-fast")
    other = plugins.create("registry", settings=load(groups=BACKEND_GROUPS))
    node = Node(id=f"{name}-1", address="127.0.0.1:9", metadata={"x": "<script>"})
    service = Service(name=name, nodes=[node])
    async with serve() as (_, url), httpx.AsyncClient(base_url=url, timeout=30) as http:
        await other.start()
        try:
            async with http.stream("GET", "/_/events") as rsp:
                events = sse_events(rsp)
                await _next_services(events)
                await other.register(service)
                started = time.monotonic()
                while name not in {
                    s["name"] for s in (await _next_services(events, 5))["services"]
                }:
                    pass
                appeared = time.monotonic() - started
                await other.deregister(service)
                started = time.monotonic()
                while name in {s["name"] for s in (await _next_services(events, 5))["services"]}:
                    pass
                gone = time.monotonic() - started
        finally:
            await other.close()
    assert appeared < 1.0, appeared
    assert gone < 1.0, gone


async def test_a_slow_client_skips_snapshots_and_holds_no_one_up() -> None:
    registry = MemoryRegistry()
    async with serve(registry=registry) as (dash, url):
        async with (
            httpx.AsyncClient(base_url=url, timeout=30) as slow_http,
            httpx.AsyncClient(base_url=url, timeout=30) as http,
            slow_http.stream("GET", "/_/events") as slow,
            http.stream("GET", "/_/events") as fast,
        ):
            fast_events = sse_events(fast)
            await _next_services(fast_events)
            big = {"pad": "x" * 200_000}  # fills the slow client's socket buffers quickly
            for i in range(30):
                node = Node(id=f"n{i}", address="127.0.0.1:9", metadata=big)
                await registry.register(Service(name=f"svc-{i:02d}", nodes=[node]))
                await asyncio.sleep(0.02)
            want = {f"svc-{i:02d}" for i in range(30)}
            async with asyncio.timeout(5):  # the reading client gets the last state
                while not want <= {
                    s["name"] for s in (await _next_services(fast_events))["services"]
                }:
                    pass
            slow_events = sse_events(slow)  # the slow one, read at last, ends on the newest too
            async with asyncio.timeout(10):
                while not want <= {
                    s["name"] for s in (await _next_services(slow_events))["services"]
                }:
                    pass
            assert len(dash.live._clients) == 2
        await wait_for(lambda: not dash.live._clients, 5, "event streams to be dropped")


async def test_ping_comments_keep_an_idle_stream_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "PING_EVERY", 0.1)
    async with serve(registry=MemoryRegistry()) as (_, url):
        async with httpx.AsyncClient(base_url=url) as http, http.stream("GET", "/_/events") as rsp:
            events = sse_events(rsp)
            seen = [await anext(events), await anext(events)]
            assert seen[0][0] == "services"
            assert seen[1] == ("", ": ping")


async def test_thousand_services_of_three_nodes() -> None:
    registry = MemoryRegistry()
    ep = Endpoint(
        name="Greeter.SayHello",
        request=Value("HelloRequest", "HelloRequest", [Value("name", "string")]),
        metadata={"stream": "false"},
    )
    for i in range(1000):
        nodes = [Node(id=f"s{i}-{n}", address=f"127.0.0.1:{10000 + n}") for n in range(3)]
        await registry.register(Service(name=f"svc-{i:04d}", nodes=nodes, endpoints=[ep]))
    async with serve(registry=registry) as (dash, url), httpx.AsyncClient(base_url=url) as http:
        started = time.perf_counter()
        rsp = await http.get("/_/services")
        took = time.perf_counter() - started
        body = rsp.json()
        assert len(body["services"]) == 1000
        assert body["services"][0] == {
            "name": "svc-0000", "versions": ["latest"], "nodes": 3, "endpoints": 1,
        }  # fmt: skip
        assert took < 0.3, took

        async with http.stream("GET", "/_/events") as events_rsp:
            events = sse_events(events_rsp)
            await _next_services(events)
            latencies = []
            for i in range(10):
                node = Node(id=f"new-{i}", address="127.0.0.1:9")
                started = time.perf_counter()
                await registry.register(Service(name=f"svc-{i:04d}", nodes=[node]))
                while True:
                    snapshot = await _next_services(events)
                    row = snapshot["services"][i]
                    if row["nodes"] == 4:
                        break
                latencies.append(time.perf_counter() - started)
            assert max(latencies) < 1.0, latencies
        assert dash.live.services("svc-0003")[0].endpoints == [ep]  # kept from the first record


async def test_bad_queries_get_clear_errors() -> None:
    async with (
        serve(registry=MemoryRegistry()) as (_, url),
        httpx.AsyncClient(base_url=url) as http,
    ):
        rsp = await http.get("/_/service")
        assert rsp.status_code == 400
        assert rsp.json()["error"]["detail"] == "missing query parameter: name"
        rsp = await http.get("/_/service", params={"name": "nobody-here"})
        assert rsp.status_code == 404
        assert rsp.json()["error"] == {
            "id": "go.micro.web", "code": 404, "detail": "service not found: nobody-here",
            "status": "Not Found",
        }  # fmt: skip
        rsp = await http.get("/_/service", params={"name": "x" * 5000})
        assert rsp.status_code == 400
        rsp = await http.post("/_/services", content=b"{}")
        assert rsp.status_code == 405
        assert "GET" in rsp.json()["error"]["detail"]


async def test_web_services_are_listed_apart() -> None:
    registry = MemoryRegistry()
    node = Node(id="n1", address="127.0.0.1:9")
    for name in ("go.micro.web.dash-board", "go.micro.web.bad_name", "go.micro.srv.x"):
        await registry.register(Service(name=name, nodes=[node]))
    async with serve(registry=registry) as (_, url), httpx.AsyncClient(base_url=url) as http:
        body = (await http.get("/_/services")).json()
    assert [s["name"] for s in body["services"]] == [
        "go.micro.srv.x", "go.micro.web.bad_name", "go.micro.web.dash-board",
    ]  # fmt: skip
    assert body["web"] == [
        {"name": "dash-board", "service": "go.micro.web.dash-board", "path": "/dash-board/"}
    ]


# -- field trees ----------------------------------------------------------------------------


class Address(msgspec.Struct):
    street: str
    tags: list[str] = []


class Person(msgspec.Struct):
    """A person."""

    name: str
    age: int | None = None
    home: Address | None = None
    friends: list[Person] = []
    kind: str = "a"


def test_schema_trees_resolve_refs_optionals_and_recursion() -> None:
    from micro.codec.schema import json_schema, value_tree

    tree = fields.from_schema(json_schema(Person), name="Person")
    assert tree["type"] == "Person"
    assert tree["kind"] == "object"
    assert tree["description"] == "A person."
    assert _field(tree, "name")["required"] is True
    assert _field(tree, "age")["kind"] == "integer"
    assert _field(tree, "age")["required"] is False
    home = _field(tree, "home")
    assert (home["kind"], home["type"]) == ("object", "Address")
    assert _field(home, "tags")["items"]["kind"] == "string"
    assert _field(home, "tags")["type"] == "[]string"
    friends = _field(tree, "friends")
    assert friends["kind"] == "array"
    assert friends["items"]["type"] == "Person"
    assert friends["items"]["fields"] == []  # a recursive type is cut off, not followed

    value = fields.build(None, value_tree(Person))
    assert value is not None
    assert value["kind"] == "object"
    assert _field(value, "age")["kind"] == "integer"
    assert _field(value, "friends")["kind"] == "array"


def test_value_trees_map_go_types() -> None:
    tree = fields.from_value(
        Value("Req", "Req", [
            Value("ids", "[]int64"), Value("blob", "[]uint8"), Value("m", "map[string]string"),
            Value("when", "Time"), Value("x", "interface{}"), Value("ok", "bool"),
            Value("p", "*Inner", [Value("f", "float32")]),
        ])
    )  # fmt: skip
    kinds = {f["name"]: (f["kind"], f["type"]) for f in tree["fields"]}
    assert kinds == {
        "ids": ("array", "[]int64"), "blob": ("string", "[]uint8"),
        "m": ("object", "map[string]string"), "when": ("string", "Time"),
        "x": ("any", "interface{}"), "ok": ("boolean", "bool"), "p": ("object", "*Inner"),
    }  # fmt: skip
    assert _field(tree, "ids")["items"]["kind"] == "integer"
    assert _field(_field(tree, "p"), "f")["kind"] == "number"
    assert fields.build("not json", None) is None
    assert fields.build('{"type": "object", "properties": {"e": {"enum": [1, 2]}}}', None) == {
        "name": "", "type": "object", "kind": "object", "required": False, "items": None,
        "enum": None, "description": None,
        "fields": [{"name": "e", "type": "integer", "kind": "integer", "required": False,
                    "fields": [], "items": None, "enum": [1, 2], "description": None}],
    }  # fmt: skip
