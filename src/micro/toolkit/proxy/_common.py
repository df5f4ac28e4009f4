"""What the proxy's routes share: its error id and mapping, JSON answers, query parameters,
WebSocket refusals, and the allow-list errors."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketState

from micro.errors import Forbidden, MicroError, status_text
from micro.toolkit.api._errors import API_ID

__all__ = [
    "PROXY_ID",
    "WebSocketRefusals",
    "error_json",
    "json_reply",
    "proxy_error",
    "query",
    "refuse_service",
    "refuse_topic",
    "reply_error",
    "ws_fail",
]

PROXY_ID = "go.micro.proxy"
"""The ``id`` of the errors the proxy itself answers with."""
_SHARED_IDS = frozenset({API_ID, "go.micro.rpc"})
"""Ids of the errors raised by the gateway's helpers the proxy reuses (body reads, /rpc
fields): they are the proxy's own errors here."""

log = logging.getLogger("micro.proxy")
_json = msgspec.json.Encoder()

Route = Callable[[Scope, Receive, Send], Awaitable[None]]


def proxy_error(exc: BaseException) -> MicroError:
    """The error to answer with; its ``code`` is the HTTP status.

    A service's error passes through unchanged (same id, code and detail: a 408 stays a
    408), so that a client of the proxy sees what a client next to the service sees. Only
    an error that is not HTTP-shaped is mapped: no code (a plain-text error) or one outside
    400-599 becomes 500; anything not a :class:`MicroError` is logged and answered 500.
    """
    if not isinstance(exc, MicroError):
        log.error("proxy failure", exc_info=exc)
        return MicroError(f"proxy failure: {type(exc).__name__}", id=PROXY_ID, code=500)
    if exc.code == 0:
        return MicroError(f"error during request: {exc.detail}", id=exc.id or PROXY_ID, code=500)
    if not 400 <= exc.code <= 599:
        return MicroError(exc.detail, id=exc.id or PROXY_ID, code=500)
    if exc.id in _SHARED_IDS:
        exc.id = PROXY_ID
    if not exc.status:
        exc.status = status_text(exc.code)
    return exc


def error_json(exc: BaseException) -> tuple[int, bytes]:
    """(HTTP status, go-micro's error JSON) for ``exc``."""
    err = proxy_error(exc)
    return err.code, err.to_json().encode()


async def json_reply(send: Send, body: bytes, status: int = 200, **headers: str) -> None:
    """Answer ``body`` (JSON bytes) as an ``application/json`` response."""
    extra = [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def reply_error(send: Send, exc: BaseException, **headers: str) -> None:
    """Answer ``exc`` as go-micro's error JSON with its code as the status."""
    status, body = error_json(exc)
    await json_reply(send, body, status, **headers)


def encode(value: Any) -> bytes:
    return _json.encode(value)


def query(scope: Scope, name: str) -> str:
    """The last value of ``name`` in the query string ("" when absent)."""
    found = ""
    for key, value in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
        if key == name:
            found = value
    return found


def refuse_service(name: str) -> Forbidden:
    return Forbidden(f"service {name!r} is not allowed through this proxy", id=PROXY_ID)


def refuse_topic(topic: str) -> Forbidden:
    return Forbidden(f"topic {topic!r} is not allowed through this proxy", id=PROXY_ID)


async def ws_fail(ws: WebSocket, exc: BaseException) -> None:
    """End the socket with ``exc``: the frame ``{"error": {...}}``, then close
    ``4000 + code`` (accepting it first if it was not yet); never raises."""
    status, body = error_json(exc)
    with contextlib.suppress(Exception):
        if ws.application_state == WebSocketState.CONNECTING:
            await ws.accept()
        if ws.application_state == WebSocketState.CONNECTED:
            await ws.send_text('{"error":' + body.decode() + "}")
            await ws.close(code=4000 + status)


class WebSocketRefusals:
    """Makes a refused WebSocket readable by its client.

    The gateway's middleware refuses a WebSocket before accepting it (auth: close 4401;
    rate limit: an HTTP 429 answer), which a client only sees as a handshake failure with
    status 403 or 500. Here the socket is accepted first: a close keeps its code (4401,
    4400), and an HTTP error answer becomes the frame ``{"error": {...}}`` and close
    ``4000 + status`` (4429), as every other error of the proxy's WebSockets.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        connected = accepted = False
        status = 0

        async def on_receive() -> Message:
            nonlocal connected
            message = await receive()
            connected = connected or message["type"] == "websocket.connect"
            return message

        async def accept() -> None:
            nonlocal accepted
            if not connected:
                await on_receive()  # the websocket.connect an ASGI app reads first
            accepted = True
            await send({"type": "websocket.accept"})

        async def on_send(message: Message) -> None:
            nonlocal accepted, status
            kind = message["type"]
            if accepted:
                await send(message)
            elif kind == "websocket.accept":
                accepted = True
                await send(message)
            elif kind == "websocket.close":
                await accept()
                await send(message)
            elif kind == "http.response.start":
                status = int(message["status"])
            elif kind == "http.response.body":
                await accept()
                text = '{"error":' + bytes(message.get("body", b"")).decode() + "}"
                await send({"type": "websocket.send", "text": text})
                await send({"type": "websocket.close", "code": 4000 + status})
            else:
                await send(message)

        await self.app(scope, on_receive, on_send)
