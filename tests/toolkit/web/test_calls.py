"""/_/call, /_/stream (WebSocket), /_/publish and /_/tail (SSE) against real service
processes over mDNS on loopback and the http broker."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from micro.toolkit.web import Dashboard
from tests.toolkit.web.harness import (
    DATA_SERVICE,
    Spawn,
    base_env,
    records,
    serve,
    spawn,
    sse_events,
    unique,
    wait_for,
)

__all__ = ["spawn"]  # the fixture

pytestmark = pytest.mark.integration

MICRO = str(Path(sys.executable).with_name("micro"))


Running = tuple[Dashboard, httpx.AsyncClient, str, str, Path, str]


@pytest.fixture
async def running(spawn: Spawn, tmp_path: Path) -> AsyncIterator[Running]:
    """The dashboard and one data service; yields (dash, http, url, service, record, topic)."""
    name, topic = unique("web-calls"), unique("web-topic")
    record = tmp_path / "record"
    spawn(DATA_SERVICE, name, "--record", str(record), "--topic", topic)
    async with serve(max_body=4096) as (dash, url):
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            await wait_for(lambda: name in dash.live.names(), what=name)
            yield dash, http, url, name, record, topic


async def test_call_answers_with_the_node_and_time(running: Running) -> None:
    dash, http, _, name, _, _ = running
    rsp = await http.post(
        "/_/call",
        json={"service": name, "endpoint": "Greeter.SayHello", "request": {"name": "Web"}},
    )
    assert rsp.status_code == 200, rsp.text
    body = rsp.json()
    assert body["response"] == {"msg": "Hello Web"}
    [(node, _)] = dash.live.nodes_of(name)
    assert body["node"] == {"id": node.id, "address": node.address}
    assert body["duration_ms"] > 0

    rsp = await http.post(
        "/_/call",
        json={"service": name, "endpoint": "Calc.Add", "request": {"a": 2, "b": 3},
              "metadata": {"X-Trace": "1"}, "timeout": 5},
    )  # fmt: skip
    assert rsp.json()["response"] == {"total": 5.0}


async def test_a_validation_error_keeps_the_field(running: Running) -> None:
    _, http, _, name, _, _ = running
    rsp = await http.post(
        "/_/call", json={"service": name, "endpoint": "Calc.Add", "request": {"a": "two"}}
    )
    assert rsp.status_code == 400
    error = rsp.json()["error"]
    assert error["code"] == 400
    assert "$.a" in error["detail"]


async def test_call_errors_are_clear(running: Running) -> None:
    _, http, _, name, _, _ = running

    async def post(body: Any, **kw: Any) -> tuple[int, str]:
        rsp = await http.post("/_/call", **({"json": body} if body is not None else kw))
        return rsp.status_code, rsp.json()["error"]["detail"]

    code, detail = await post(None, content=b"{nope")
    assert code == 400
    assert detail.startswith("invalid JSON body")
    assert await post(None, content=b"") == (400, "empty body: send a JSON object")
    assert await post([1]) == (400, "the body must be a JSON object")
    assert await post({"endpoint": "Greeter.SayHello"}) == (
        400, "missing service: a non-empty string",
    )  # fmt: skip
    assert await post({"service": name}) == (400, "missing endpoint: a non-empty string")
    assert (await post({"service": name, "endpoint": "A.B", "metadata": {"k": 1}}))[0] == 400
    assert (await post({"service": name, "endpoint": "A.B", "timeout": -1}))[0] == 400
    assert (await post({"service": name, "endpoint": "A.B", "timeout": "soon"}))[0] == 400
    code, _ = await post({"service": "nobody-" + name, "endpoint": "A.B"})
    assert code == 404
    code, detail = await post({"service": name, "endpoint": "Nope.Nothing"})
    assert code == 404 or code == 400, detail
    code, _ = await post(None, content=b'{"service": "' + b"x" * 5000 + b'"}')
    assert code == 413  # beyond max_body
    rsp = await http.get("/_/call")
    assert rsp.status_code == 405


async def _ws(url: str) -> Any:
    return websockets.connect(url.replace("http://", "ws://") + "/_/stream")


async def test_stream_messages_arrive_then_end(running: Running) -> None:
    _, _, url, name, _, _ = running
    async with await _ws(url) as ws:
        await ws.send(json.dumps(
            {"service": name, "endpoint": "Ticker.Ticks", "request": {"to": 3, "delay": 0.01}}
        ))  # fmt: skip
        frames = [json.loads(await ws.recv()) for _ in range(4)]
        assert frames == [
            {"message": {"n": 1}}, {"message": {"n": 2}}, {"message": {"n": 3}},
            {"end": True, "count": 3},
        ]  # fmt: skip
        await ws.wait_closed()
        assert ws.close_code == 1000


async def test_closing_the_socket_cancels_the_stream_on_the_service(running: Running) -> None:
    _, _, url, name, record, _ = running
    async with await _ws(url) as ws:
        await ws.send(json.dumps(
            {"service": name, "endpoint": "Ticker.Ticks", "request": {"to": 100000, "delay": 0.02}}
        ))  # fmt: skip
        assert json.loads(await ws.recv()) == {"message": {"n": 1}}
        assert json.loads(await ws.recv()) == {"message": {"n": 2}}
    found = await wait_for(lambda: [r for r in records(record) if "cancelled" in r], 10)
    assert found[0]["cancelled"] >= 2


async def test_end_streams_closes_streams_and_cancels_them_on_the_service(
    running: Running,
) -> None:
    dash, http, url, name, record, topic = running
    async with await _ws(url) as ws, http.stream("GET", f"/_/tail?topic={topic}") as tail:
        await ws.send(json.dumps(
            {"service": name, "endpoint": "Ticker.Ticks", "request": {"to": 100000, "delay": 0.02}}
        ))  # fmt: skip
        assert json.loads(await ws.recv()) == {"message": {"n": 1}}
        events = sse_events(tail)
        assert (await anext(events))[0] == "subscribed"
        assert dash.streams.counts() == {"stream": 1, "tail": 1}
        dash.end_streams()
        async with asyncio.timeout(2):
            await ws.wait_closed()
            assert [e async for e in events] == []  # the answer ends, properly
        assert ws.close_code == 1001
    assert dash.streams.counts() == {}
    found = await wait_for(lambda: [r for r in records(record) if "cancelled" in r], 10)
    assert found[0]["cancelled"] >= 1


async def test_stream_errors_close_with_the_code(running: Running) -> None:
    _, _, url, name, _, _ = running
    cases = [
        ("not json", 400),
        ("[1]", 400),
        (json.dumps({"service": name}), 400),
        (json.dumps({"service": name, "endpoint": "Greeter.SayHello", "request": {}}), 400),
        (json.dumps({"service": "nobody-" + name, "endpoint": "A.B"}), 404),
    ]
    for text, code in cases:
        async with await _ws(url) as ws:
            await ws.send(text)
            frame = json.loads(await ws.recv())
            assert frame["error"]["code"] == code, (text, frame)
            await ws.wait_closed()
            assert ws.close_code == 4000 + code
    async with httpx.AsyncClient(base_url=url) as http:
        rsp = await http.get("/_/stream")
        assert rsp.status_code == 400
        assert "WebSocket" in rsp.json()["error"]["detail"]


async def test_publish_reaches_a_subscriber_service(running: Running) -> None:
    _, http, _, _, record, topic = running
    body = {"id": 7, "note": "from the dashboard"}
    rsp = await http.post("/_/publish", json={"topic": topic, "body": body, "metadata": {"k": "v"}})
    assert rsp.status_code == 200, rsp.text
    assert rsp.json() == {"topic": topic, "bytes": len(json.dumps(body, separators=(",", ":")))}
    found = await wait_for(lambda: [r for r in records(record) if "event" in r], 10)
    assert found == [{"event": body}]


async def test_publish_refuses_bad_input(running: Running) -> None:
    _, http, _, _, _, topic = running
    bad = [
        {"body": {}},
        {"topic": "", "body": {}},
        {"topic": "t" * 256, "body": {}},
        {"topic": "a b", "body": {}},
        {"topic": topic},
        {"topic": topic, "body": {}, "metadata": ["x"]},
    ]
    for body in bad:
        rsp = await http.post("/_/publish", json=body)
        assert rsp.status_code == 400, body
        assert rsp.json()["error"]["detail"]
    rsp = await http.post("/_/publish", content=b"{")
    assert rsp.status_code == 400


async def test_tail_shows_an_event_published_by_another_process(running: Running) -> None:
    dash, http, _, _, _, _ = running
    topic = unique("tail")
    async with http.stream("GET", "/_/tail", params={"topic": topic}) as rsp:
        assert rsp.status_code == 200
        events = sse_events(rsp)
        event, data = await anext(events)
        assert event == "subscribed"
        assert json.loads(data)["topic"] == topic
        await wait_for(lambda: f"topic:{topic}" in dash.live.names(), what="the subscription")
        done = await asyncio.to_thread(
            subprocess.run,
            [MICRO, "publish", topic, '{"n": 1, "text": "<b>hi</b>"}'],
            env=base_env(),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        message: dict[str, Any] = {}
        async with asyncio.timeout(10):
            async for event, data in events:
                if event == "message":
                    message = json.loads(data)
                    break
        assert message["topic"] == topic
        assert message["body"] == {"n": 1, "text": "<b>hi</b>"}
        assert message["header"]["Micro-Topic"] == topic
        assert message["t"] > 0
    # the subscription ends with the connection
    await wait_for(lambda: f"topic:{topic}" not in dash.live.names(), 10, "unsubscribe")


async def test_tail_refuses_bad_topics(running: Running) -> None:
    _, http, _, _, _, _ = running
    for params in ({}, {"topic": "x" * 300}, {"topic": "a\nb"}):
        rsp = await http.get("/_/tail", params=params)
        assert rsp.status_code == 400, params
        assert "topic" in rsp.json()["error"]["detail"]
