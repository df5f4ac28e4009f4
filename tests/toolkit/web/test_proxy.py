"""The reverse proxy: /[name]/... to a real web app registered as go.micro.web.[name]."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from micro.registry import Node, Service
from micro.selector.cache import RegistrySelector
from micro.toolkit.web import Dashboard, WebOptions
from tests.toolkit.web.conftest import Env

HTML = {"accept": "text/html"}


class RecordingSelector(RegistrySelector):
    """The registry selector, remembering every ``mark``."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.marks: list[tuple[str, str, str | None]] = []

    def mark(self, service: str, node: Node, error: BaseException | None) -> None:
        kind = type(error).__name__ if error is not None else None
        self.marks.append((service, node.id, kind))
        super().mark(service, node, error)


def recording_dashboard(env: Env, **options: object) -> tuple[Dashboard, RecordingSelector]:
    selector = RecordingSelector(env.registry)
    dash = Dashboard(
        WebOptions(access_log=False, **options),  # type: ignore[arg-type]
        registry=env.registry,
        selector=selector,
        client=env.client,
    )
    env.exits.push_async_callback(dash.close)
    return dash, selector


async def test_pages_of_a_web_service(env: Env) -> None:
    await env.webapp("hello")
    http = await env.http(env.dashboard())
    rsp = await http.get("/hello/", headers=HTML)
    assert rsp.status_code == 200
    assert "webapp at /hello" in rsp.text
    assert "content-security-policy" not in rsp.headers  # the app's answer, as it made it
    about = await http.get("/hello/about")
    assert "about" in about.text


async def test_name_without_slash_redirects(env: Env) -> None:
    await env.webapp("hello")
    http = await env.http(env.dashboard())
    rsp = await http.get("/hello", params={"a": "1"})
    assert rsp.status_code == 307
    assert rsp.headers["location"] == "/hello/?a=1"
    posted = await http.post("/hello", content=b"x")  # not a page: the app's / answers
    assert posted.status_code == 405  # the webapp has no POST on /


async def test_prefix_stripped_query_kept_and_headers_set(env: Env) -> None:
    await env.webapp("hello")
    http = await env.http(env.dashboard())
    rsp = await http.get(
        "/hello/echo/a%2Fb/c",
        params={"x": "1", "y": "two words"},
        headers={"x-micro-web-base-path": "/forged", "x-forwarded-for": "192.0.2.9"},
    )
    assert rsp.status_code == 200
    assert rsp.headers["x-webapp"] == "1"
    got = rsp.json()
    assert got["path"] == "/echo/a/b/c"  # the app decodes %2F itself
    assert got["query"] == "x=1&y=two+words"
    assert got["headers"]["x-micro-web-base-path"] == "/hello"
    assert got["headers"]["x-forwarded-for"] == "192.0.2.9, 10.1.2.3"
    assert got["headers"]["x-forwarded-host"] == "dash"
    assert got["headers"]["x-forwarded-proto"] == "http"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_bodies_and_methods(env: Env, method: str) -> None:
    await env.webapp("hello")
    http = await env.http(env.dashboard())
    rsp = await http.request(method, "/hello/echo", content=b'{"a": 1}')
    assert rsp.status_code == 200
    assert (rsp.json()["method"], rsp.json()["body"]) == (method, '{"a": 1}')


async def test_large_and_chunked_uploads_stream_through(env: Env) -> None:
    await env.webapp("hello")
    http = await env.http(env.dashboard(max_body=4 * 1024 * 1024))
    big = b"y" * (2 * 1024 * 1024)
    rsp = await http.post("/hello/echo", content=big)
    assert rsp.status_code == 200
    assert len(rsp.json()["body"]) == len(big)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"z" * 1000

    rsp = await http.post("/hello/echo", content=chunks())
    assert rsp.status_code == 200
    assert rsp.json()["body"] == "z" * 10_000


async def test_uploads_over_the_limit_get_413(env: Env) -> None:
    await env.webapp("hello")
    http = await env.http(env.dashboard(max_body=100_000))
    declared = await http.post("/hello/echo", content=b"x" * 200_000)
    assert declared.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b"z" * 10_000

    streamed = await http.post("/hello/echo", content=chunks())
    assert streamed.status_code == 413
    assert streamed.json()["code"] == 413


async def test_answers_stream_back(env: Env) -> None:
    await env.webapp("hello")
    url = await env.serve(env.dashboard())
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        started = time.monotonic()
        arrivals = []
        async with http.stream("GET", "/hello/stream", params={"n": "6"}) as rsp:
            assert rsp.status_code == 200
            async for line in rsp.aiter_lines():
                if line:
                    arrivals.append((line, time.monotonic() - started))
        assert [line for line, _ in arrivals] == [f"line {i}" for i in range(6)]
        # the first line came before the app had written the last (6 x 50 ms)
        assert arrivals[0][1] < arrivals[-1][1] - 0.15
        big = await http.get("/hello/big", params={"kb": "3000"})
        assert len(big.content) == 3000 * 1024


async def test_websocket_passes_through(env: Env) -> None:
    await env.webapp("hello")
    url = await env.serve(env.dashboard())
    ws_url = url.replace("http://", "ws://")
    async with websockets.connect(ws_url + "/hello/ws") as ws:
        for text in ("a", "bé", "c" * 10_000):
            await ws.send(text)
            assert await ws.recv() == "echo:" + text
        await ws.send(b"\x00\x01")
        assert await ws.recv() == b"\x00\x01"
    async with websockets.connect(ws_url + "/nobody/ws") as ws:
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4404
    with pytest.raises(InvalidStatus):
        async with websockets.connect(ws_url + "/_/nothing"):
            pass


async def test_unknown_name_lists_the_web_services(env: Env) -> None:
    await env.webapp("hello")
    await env.webapp("shop-2")
    await env.greeter("go.micro.web.not_valid")  # no /[name] can reach it: not listed
    await env.greeter("greeter")  # another namespace: not listed
    http = await env.http(env.dashboard())
    for path in ("/nobody/", "/nobody/deep/path?x=1", "/-bad-/"):
        rsp = await http.get(path, headers=HTML)
        assert rsp.status_code == 404, path
        assert rsp.headers["content-type"].startswith("text/html")
        assert 'href="/hello/"' in rsp.text
        assert 'href="/shop-2/"' in rsp.text
        assert "not_valid" not in rsp.text
        assert "greeter" not in rsp.text
        assert "default-src 'self'" in rsp.headers["content-security-policy"]
    as_json = await http.get("/nobody/")
    assert as_json.status_code == 404
    assert as_json.json()["code"] == 404


async def test_404_page_without_web_services(env: Env) -> None:
    http = await env.http(env.dashboard(namespace="acme.web"))
    rsp = await http.get("/nobody/", headers=HTML)
    assert rsp.status_code == 404
    assert "No web service" in rsp.text
    assert "acme.web" in rsp.text


async def test_dead_node_gets_502_and_is_marked(env: Env) -> None:
    dead = Service("go.micro.web.dead", nodes=[Node("dead-1", "127.0.0.1:1")])
    await env.registry.register(dead)
    dash, selector = recording_dashboard(env)
    http = await env.http(dash)
    page = await http.get("/dead/", headers=HTML)
    assert page.status_code == 502
    assert page.headers["content-type"].startswith("text/html")
    assert "127.0.0.1:1" in page.text
    as_json = await http.get("/dead/x")
    assert as_json.status_code == 502
    assert as_json.json()["code"] == 502
    assert selector.marks == [("go.micro.web.dead", "dead-1", "ConnectError")] * 2


async def test_next_node_answers_when_one_is_dead(env: Env) -> None:
    alive = await env.webapp("pair")
    await env.registry.register(Service("go.micro.web.pair", nodes=[Node("a-dead", "127.0.0.1:1")]))
    dash, selector = recording_dashboard(env)
    http = await env.http(dash)
    for _ in range(4):  # round robin starts on either node; each request still answers
        rsp = await http.post("/pair/echo", content=b"payload")
        assert rsp.status_code == 200
        assert rsp.json()["body"] == "payload"
    dead_marks = [m for m in selector.marks if m[1] == "a-dead"]
    assert dead_marks
    assert all(kind == "ConnectError" for _, _, kind in dead_marks)
    assert any(m[1] != "a-dead" and m[2] is None for m in selector.marks), alive


async def test_dead_node_websocket_closes_4502(env: Env) -> None:
    await env.registry.register(Service("go.micro.web.dead", nodes=[Node("d", "127.0.0.1:1")]))
    dash, selector = recording_dashboard(env)
    url = await env.serve(dash)
    async with websockets.connect(url.replace("http", "ws") + "/dead/ws") as ws:
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4502
    assert selector.marks == [("go.micro.web.dead", "d", "ConnectError")]


async def test_registry_strings_are_escaped_in_error_pages(env: Env) -> None:
    evil = Service(
        "go.micro.web.evil",
        metadata={"x": "<script>alert(1)</script>"},
        nodes=[Node("e", "<script>alert(2)</script>:1")],
    )
    await env.registry.register(evil)
    await env.registry.register(
        Service("go.micro.web.<script>alert(3)</script>", nodes=[Node("s", "127.0.0.1:1")])
    )
    http = await env.http(env.dashboard())
    rsp = await http.get("/evil/", headers=HTML)
    assert rsp.status_code == 502
    assert "<script>" not in rsp.text
    assert "&lt;script&gt;alert(2)" in rsp.text
    missing = await http.get("/<script>alert(4)</script>", headers=HTML)
    assert missing.status_code == 404
    assert "<script>" not in missing.text
    assert "&lt;script&gt;alert(4)" in missing.text
    assert 'href="/evil/"' in missing.text
    await env.registry.register(Service("go.micro.web.bad", nodes=[Node("b", "[::1:80")]))
    unusable = await http.get("/bad/", headers=HTML)
    assert unusable.status_code == 502
    assert "bad node address" in unusable.text


async def test_slow_upstream_times_out(env: Env) -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # accepts connections, never answers
    port = listener.getsockname()[1]
    try:
        await env.registry.register(
            Service("go.micro.web.slow", nodes=[Node("s", f"127.0.0.1:{port}")])
        )
        http = await env.http(env.dashboard(timeout=0.5))
        rsp = await asyncio.wait_for(http.get("/slow/"), 10)
        assert rsp.status_code == 504
    finally:
        listener.close()
