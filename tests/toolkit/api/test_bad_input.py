"""Hostile request content (bodies, queries, headers) gets a 400 naming it, never a 500."""

from __future__ import annotations

import json
import logging
from collections.abc import MutableMapping
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

from micro.errors import BadRequest
from micro.registry import Node, Service
from micro.toolkit.api.stream import _frame
from tests.toolkit.api.conftest import Stack, asgi_server
from tests.toolkit.api.services import Headers

DEEP = b"[" * 100_000 + b"]" * 100_000


def detail_of(body: bytes, status: int) -> str:
    err = json.loads(body)
    assert err["code"] == status
    return str(err["detail"])


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_deeply_nested_json_is_400_without_a_traceback(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    _, http = await stack.gateway(enable_rpc=True)
    rsp = await http.post("/greeter/say-hello", content=DEEP)
    assert "nested too deeply" in detail_of(rsp.content, 400)
    rsp = await http.post("/rpc", content=DEEP)
    assert "nested too deeply" in detail_of(rsp.content, 400)
    call = {"service": "go.micro.api.calc", "endpoint": "Calc.Add", "request": DEEP.decode()}
    rsp = await http.post("/rpc", json=call)
    assert "nested too deeply" in detail_of(rsp.content, 400)
    # a query value that looks like JSON but cannot be read stays a string for the service
    rsp = await http.get("/calc/add", params={"a": "1", "extra": "[" * 20_000})
    assert rsp.status_code == 200
    assert_no_traceback(caplog)


def test_deeply_nested_websocket_message_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="nested too deeply"):
        _frame({"type": "websocket.receive", "bytes": DEEP})


NOT_UTF8 = b"a\xff\xfe"
PREFLIGHT = {"origin": "https://app.example", "access-control-request-method": "POST"}


@pytest.mark.parametrize(
    ("method", "name", "options", "also", "why"),
    [
        ("POST", "Timeout", {}, {}, "not ASCII"),
        ("POST", "Content-Type", {}, {}, "not ASCII"),
        ("POST", "Authorization", {"auth": lambda token, scope: True}, {}, "not ASCII"),
        ("POST", "Host", {"resolver": "host"}, {}, "not ASCII"),
        ("POST", "Origin", {"cors_origins": ("*",), "cors_credentials": True}, {}, "not ASCII"),
        (
            "OPTIONS",
            "Access-Control-Request-Headers",
            {"cors_origins": ("https://app.example",)},
            PREFLIGHT,
            "not ASCII",
        ),
        ("POST", "Micro-From-Service", {}, {}, "not UTF-8"),
        ("POST", "X-Anything", {"handler": "api"}, {}, "not UTF-8"),
    ],
)
async def test_an_unreadable_header_is_400_naming_it(
    stack: Stack,
    caplog: pytest.LogCaptureFixture,
    method: str,
    name: str,
    options: dict[str, object],
    also: dict[str, str],
    why: str,
) -> None:
    _, http = await stack.gateway(**options)
    headers = [*((k.encode(), v.encode()) for k, v in also.items()), (name.encode(), NOT_UTF8)]
    rsp = await http.request(method, "/greeter/say-hello", content=b"{}", headers=headers)
    assert detail_of(rsp.content, 400) == f"invalid {name} header: {why}"
    assert_no_traceback(caplog)


async def test_utf8_header_values_reach_the_service_as_sent(stack: Stack) -> None:
    await stack.serve("go.micro.api.headers", Headers())
    _, http = await stack.gateway()
    name = "Zoë ∑".encode()
    rsp = await http.post("/headers/echo", json={}, headers=[(b"x-name", name)])
    assert rsp.json()["X-Name"] == name.decode()


async def test_the_http_proxy_forwards_header_bytes_as_sent(stack: Stack) -> None:
    seen: list[list[tuple[bytes, bytes]]] = []

    name = "Zoë ∑".encode()

    async def upstream(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["headers"])
        headers = [(b"content-length", b"2"), (b"x-back", name)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    async with asgi_server(upstream) as address:
        node = Node(id="site-1", address=address)
        await stack.registry.register(Service("go.micro.api.site", nodes=[node]))
        _, http = await stack.gateway(handler="http")
        rsp = await http.get("/site/page", headers=[(b"x-name", name)])
    assert (rsp.status_code, rsp.content) == (200, b"ok")
    assert (b"x-name", name) in seen[0]
    assert (b"x-back", name) in rsp.headers.raw


async def test_a_websocket_with_an_unreadable_header_is_closed_4400(stack: Stack) -> None:
    gw, _ = await stack.gateway()
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": "/greeter/say-hello",
        "headers": [(b"x-anything", NOT_UTF8)],
        "query_string": b"",
    }
    await gw(scope, receive, send)
    assert sent == [{"type": "websocket.close", "code": 4400}]
