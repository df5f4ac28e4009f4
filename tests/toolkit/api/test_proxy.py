"""The ``http``/``web`` handlers' reverse proxy, in process, against real loopback services:
what reaches the service, what comes back, streaming, and the errors (dead, slow, broken
nodes)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from micro.registry import Node, Service
from micro.selector.cache import RegistrySelector
from tests.toolkit.api.conftest import Stack, asgi_server

SITE = "go.micro.api.site"


class RecordingSelector(RegistrySelector):
    """The registry selector, remembering every ``mark`` as (node id, error type or None)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.marks: list[tuple[str, str | None]] = []

    def mark(self, service: str, node: Node, error: BaseException | None) -> None:
        self.marks.append((node.id, type(error).__name__ if error is not None else None))
        super().mark(service, node, error)


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers what it got: method, raw path, query, headers and body, as JSON."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    seen = {
        "method": scope["method"],
        "raw_path": scope["raw_path"].decode(),
        "query": scope["query_string"].decode(),
        "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
        "body": body.decode(),
    }
    out = json.dumps(seen).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(out)).encode()),
        (b"x-site", b"1"),
        (b"keep-alive", b"timeout=5"),
    ]
    await send({"type": "http.response.start", "status": 201, "headers": headers})
    await send({"type": "http.response.body", "body": out})


def dead_address() -> str:
    """A loopback address nothing listens on (a port just freed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


@contextlib.asynccontextmanager
async def raw_server(reply: bytes | None) -> AsyncIterator[str]:
    """A loopback server that reads a request head, then writes ``reply`` and closes (None:
    stays silent until the client leaves)."""

    writers: list[asyncio.StreamWriter] = []

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            if reply is None:
                await reader.read()
            else:
                writer.write(reply)
                await writer.drain()
        writer.close()

    srv = await asyncio.start_server(run, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{srv.sockets[0].getsockname()[1]}"
    finally:
        srv.close()
        for writer in writers:
            writer.close()


async def register(stack: Stack, *addresses: str) -> None:
    nodes = [Node(id=f"site-{i}", address=a) for i, a in enumerate(addresses)]
    await stack.registry.register(Service(SITE, nodes=nodes))


async def test_path_query_headers_and_body_pass_through(stack: Stack) -> None:
    async with asgi_server(echo) as address:
        await register(stack, address)
        _, http = await stack.gateway(handler="http")
        rsp = await http.post(
            "/site/a%2Fb/c?x=1&y=%20",
            content=b"hello",
            headers={"X-Forwarded-For": "192.0.2.1", "X-Custom": "yes", "TE": "trailers"},
        )
    assert rsp.status_code == 201
    seen = rsp.json()
    assert (seen["method"], seen["raw_path"], seen["query"]) == (
        "POST",
        "/site/a%2Fb/c",
        "x=1&y=%20",
    )
    assert seen["body"] == "hello"
    headers = dict(seen["headers"])
    assert headers["x-custom"] == "yes"
    assert headers["x-forwarded-for"] == "192.0.2.1, 10.1.2.3"
    assert headers["x-forwarded-host"] == "gateway"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["host"] == address
    assert headers["content-length"] == "5"
    assert "te" not in headers
    assert rsp.headers["x-site"] == "1"
    assert "keep-alive" not in rsp.headers  # per hop: dropped on the way back


async def test_long_answers_stream_as_they_come(stack: Stack) -> None:
    more = asyncio.Event()

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await asyncio.wait_for(more.wait(), 10)
        await send({"type": "http.response.body", "body": b"x" * 100_000})

    async with asgi_server(slow) as address:
        await register(stack, address)
        gw, _ = await stack.gateway(handler="http")
        async with asgi_server(gw) as front, httpx.AsyncClient(timeout=10) as client:
            async with client.stream("GET", f"http://{front}/site/events") as rsp:
                chunks = rsp.aiter_raw()
                assert await asyncio.wait_for(anext(chunks), 10) == b"first"
                more.set()
                rest = b"".join([chunk async for chunk in chunks])
    assert rest == b"x" * 100_000


async def test_a_refusing_node_is_marked_and_the_next_one_answers(stack: Stack) -> None:
    selector = RecordingSelector(stack.registry)
    stack.exits.push_async_callback(selector.close)
    async with asgi_server(echo) as address:
        await register(stack, dead_address(), address)
        _, http = await stack.gateway(handler="http", selector=selector)
        statuses = [(await http.get(f"/site/{i}")).status_code for i in range(6)]
    assert statuses == [201] * 6
    assert ("site-0", "ConnectError") in selector.marks
    assert ("site-1", None) in selector.marks


async def test_no_node_answering_is_502(stack: Stack) -> None:
    selector = RecordingSelector(stack.registry)
    stack.exits.push_async_callback(selector.close)
    await register(stack, dead_address())
    _, http = await stack.gateway(handler="http", selector=selector)
    rsp = await http.get("/site/x")
    assert rsp.status_code == 502
    err = rsp.json()
    assert (err["id"], err["code"]) == ("go.micro.api", 502)
    assert SITE in err["detail"]
    assert selector.marks == [("site-0", "ConnectError")]


async def test_a_bad_answer_is_502_and_marks_the_node(stack: Stack) -> None:
    selector = RecordingSelector(stack.registry)
    stack.exits.push_async_callback(selector.close)
    async with raw_server(b"not http at all\r\n\r\n") as address:
        await register(stack, address)
        _, http = await stack.gateway(handler="http", selector=selector)
        rsp = await http.get("/site/x")
    assert (rsp.status_code, rsp.json()["code"]) == (502, 502)
    assert selector.marks == [("site-0", "ConnectError")]


async def test_a_silent_node_is_504(stack: Stack) -> None:
    async with raw_server(None) as address:
        await register(stack, address)
        _, http = await stack.gateway(handler="http", timeout=0.3)
        rsp = await http.get("/site/x")
    assert (rsp.status_code, rsp.json()["code"]) == (504, 504)


@pytest.mark.parametrize("handler", ["http", "web"])
async def test_a_body_over_the_limit_is_413_and_never_sent(stack: Stack, handler: str) -> None:
    seen: list[str] = []

    async def site(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["path"])
        await echo(scope, receive, send)

    async with asgi_server(site) as address:
        await register(stack, address)
        _, http = await stack.gateway(handler=handler, max_body=10)
        rsp = await http.post("/site/upload", content=b"x" * 11)
        assert rsp.status_code == 413
        assert (await http.post("/site/upload", content=b"x" * 10)).status_code == 201
    assert seen == ["/site/upload"]
