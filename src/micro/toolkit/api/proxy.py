"""The ``http`` (alias ``proxy``) and ``web`` handlers: reverse proxy to an HTTP service.

The service is found in the registry like any other (a node's ``address`` is where its HTTP
server listens); one node is chosen per request by the selector. The path and query go
through unchanged with ``X-Forwarded-For``/``-Host``/``-Proto`` added. ``web`` also passes
WebSocket connections through, frame by frame, both ways.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import httpx
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from micro.errors import ConnectError, MicroError, Timeout
from micro.toolkit.api._errors import API_ID, http_error
from micro.toolkit.api.resolver import Route

if TYPE_CHECKING:
    from micro.toolkit.api.app import Gateway

__all__ = ["HOP", "RESPONSE_HOP", "forward_headers", "http_handler", "pump", "web_socket_proxy"]

HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
    }
)
"""Request headers that describe one hop (and ``Host``, ``Content-Length``, set anew)."""
RESPONSE_HOP = HOP - {b"content-length"}


async def _node_address(gw: Gateway, route: Route) -> str:
    next_node = await gw.selector.select(route.service)
    return next_node().address


def forward_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    """The request's headers as the client sent them (bytes), less per-hop ones, with the
    ``X-Forwarded-*`` headers added."""
    out = []
    forwarded_for = b""
    host = b""
    for name, value in scope["headers"]:
        if name == b"host":
            host = value
        if name == b"x-forwarded-for":
            forwarded_for = value
        elif name not in HOP:
            out.append((name, value))
    client = scope.get("client")
    if client:
        peer = str(client[0]).encode()
        forwarded_for = forwarded_for + b", " + peer if forwarded_for else peer
    if forwarded_for:
        out.append((b"x-forwarded-for", forwarded_for))
    if host:
        out.append((b"x-forwarded-host", host))
    out.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
    return out


def _target(address: str, scope: Scope, path: str, scheme: str) -> str:
    query = scope["query_string"].decode("latin-1")
    raw = scope.get("raw_path", b"").decode("latin-1") or path
    return f"{scheme}://{address}{raw}" + (f"?{query}" if query else "")


async def http_handler(gw: Gateway, scope: Scope, receive: Receive, route: Route) -> Response:
    """Forward the request to a node of ``route.service``; stream its answer back."""
    address = await _node_address(gw, route)
    body = await gw.read_body(scope, receive)
    request = gw.http.build_request(
        scope["method"],
        _target(address, scope, route.path, "http"),
        headers=forward_headers(scope),
        content=body,
    )
    try:
        upstream = await gw.http.send(request, stream=True)
    except httpx.TimeoutException as exc:
        raise Timeout(f"{route.service} at {address}: {exc!r}", id=API_ID) from None
    except httpx.HTTPError as exc:
        raise ConnectError(f"{route.service} at {address}: {exc!r}", id=API_ID) from None
    response = StreamingResponse(
        upstream.aiter_raw(),
        status_code=upstream.status_code,
        background=BackgroundTask(upstream.aclose),
    )
    raw = ((name.lower(), value) for name, value in upstream.headers.raw)
    response.raw_headers = [(name, value) for name, value in raw if name not in RESPONSE_HOP]
    return response


async def web_socket_proxy(gw: Gateway, ws: WebSocket, route: Route) -> None:
    """Pass a WebSocket through to a node of ``route.service``, frames both ways."""
    try:
        address = await _node_address(gw, route)
        url = _target(address, ws.scope, route.path, "ws")
        upstream = await connect(
            url,
            subprotocols=ws.scope.get("subprotocols") or None,
            additional_headers=[
                (name.decode(), value.decode())  # UTF-8: the header check let nothing else by
                for name, value in forward_headers(ws.scope)
                if not name.startswith(b"sec-websocket")
            ],
            open_timeout=gw.options.read_timeout,
            max_size=gw.options.max_body,
        )
    except (OSError, InvalidHandshake, InvalidURI, TimeoutError, MicroError) as exc:
        err = http_error(exc if isinstance(exc, MicroError) else ConnectError(str(exc)))
        await ws.accept()
        await ws.close(code=4000 + err.code, reason=err.detail[:120])
        return
    async with upstream:
        await ws.accept(subprotocol=upstream.subprotocol)
        await pump(ws, upstream)


async def pump(ws: WebSocket, upstream: ClientConnection) -> None:
    """Copy frames both ways until either side closes; the other side is closed too."""

    async def downstream() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in upstream:
                if isinstance(frame, str):
                    await ws.send_text(frame)
                else:
                    await ws.send_bytes(frame)
        with contextlib.suppress(Exception):
            await ws.close(code=upstream.close_code or 1000)

    async def upward() -> None:
        with contextlib.suppress(WebSocketDisconnect, ConnectionClosed, RuntimeError):
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                if message.get("text") is not None:
                    await upstream.send(message["text"])
                elif message.get("bytes") is not None:
                    await upstream.send(message["bytes"])
        await upstream.close()

    tasks = [asyncio.create_task(downstream()), asyncio.create_task(upward())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
