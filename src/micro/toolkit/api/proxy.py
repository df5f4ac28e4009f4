"""The ``http`` (alias ``proxy``) and ``web`` handlers: reverse proxy to an HTTP service.

The service is found in the registry like any other (a node's ``address`` is where its HTTP
server listens); one node is chosen per request by the selector. The path and query go
through unchanged with ``X-Forwarded-For``/``-Host``/``-Proto`` added and the per-hop
headers dropped. The request body is read whole first (within ``max_body`` and
``read_timeout``); the answer is relayed as it comes (one piece when it declares at most
64 KiB). Requests go through the gateway's pooled HTTP/1.1 client
(:class:`~micro.toolkit.api._upstream.Pool`, ``Gateway.upstream``).

Errors: a node that refuses the connection is marked failed on the selector and the next
node is tried (up to three; nothing of the request was sent), else 502 (``ConnectError``);
no connection or no answer within the timeout is 504 (``Timeout``); an answer that is not
HTTP or is cut short before its head is 502 and marks the node.

``web`` also passes WebSocket connections through, frame by frame, both ways.
"""

from __future__ import annotations

import asyncio
import contextlib
import string
from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from micro.errors import BadRequest, ConnectError, MicroError, NoneAvailable, Timeout
from micro.toolkit.api._errors import API_ID, http_error
from micro.toolkit.api._upstream import (
    Answer,
    ConnectFailed,
    ConnectTimeout,
    UpstreamError,
    UpstreamTimeout,
)
from micro.toolkit.api.resolver import Route

if TYPE_CHECKING:
    from micro.toolkit.api.app import Gateway
    from micro.toolkit.api.handlers import Reply

__all__ = [
    "ATTEMPTS",
    "HOP",
    "RESPONSE_HOP",
    "WHOLE",
    "Whole",
    "forward_headers",
    "http_handler",
    "pump",
    "reason",
    "relay",
    "web_socket_proxy",
]

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
ATTEMPTS = 3
"""Nodes tried for one request when they refuse the connection."""
WHOLE = 64 * 1024
"""Answers that declare at most this length are read whole and sent in one piece; longer or
undeclared ones stream."""
_TARGET_SAFE = "".join(c for c in string.printable if c not in string.whitespace)


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


def _url(address: str, scope: Scope, path: str, scheme: str) -> str:
    query = scope["query_string"].decode("latin-1")
    raw = scope.get("raw_path", b"").decode("latin-1") or path
    return f"{scheme}://{address}{raw}" + (f"?{query}" if query else "")


def _target(scope: Scope) -> str:
    """The request's own target (raw path and query, as the client sent them); bytes other
    than printable ASCII (which an ASGI server may pass on) percent-encoded.

    Raises:
        BadRequest: the target is not a path (``*``, an absolute URL).
    """
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope["query_string"]
    target = raw + b"?" + query if query else raw
    text = target.decode("latin-1")
    if not (text.isascii() and text.isprintable()) or " " in text:
        text = quote(target, safe=_TARGET_SAFE)
    if not text.startswith("/"):
        raise BadRequest(f"invalid request target {text[:64]!r}: want a path", id=API_ID)
    return text


async def http_handler(gw: Gateway, scope: Scope, receive: Receive, route: Route) -> Reply:
    """Forward the request to a node of ``route.service``; relay its answer."""
    service = route.service
    next_node = await gw.selector.select(service)
    body = await gw.read_body(scope, receive)
    headers = forward_headers(scope)
    target = _target(scope)
    last: MicroError | None = None
    for _ in range(ATTEMPTS):
        try:
            node = next_node()
        except NoneAvailable:
            break
        where = f"{service} at {node.address}"
        try:
            answer = await gw.upstream.request(scope["method"], node.address, target, headers, body)
        except ConnectTimeout as exc:  # a slow connect: do not spend the timeout again
            gw.selector.mark(service, node, ConnectError(where, id=API_ID))
            raise Timeout(f"{where}: {reason(exc)}", id=API_ID) from None
        except ConnectFailed as exc:
            last = ConnectError(f"{where}: {reason(exc)}", id=API_ID)
            gw.selector.mark(service, node, last)
            continue
        except UpstreamTimeout as exc:
            raise Timeout(f"{where}: {reason(exc)}", id=API_ID) from None
        except UpstreamError as exc:
            error = ConnectError(f"{where}: {reason(exc)}", id=API_ID)
            gw.selector.mark(service, node, error)
            raise error from None
        gw.selector.mark(service, node, None)
        return await relay(answer)
    raise last or NoneAvailable(f"service {service}: none available", id=API_ID)


async def relay(answer: Answer) -> Response | Whole:
    """The service's answer as the client's, less per-hop headers: read whole when short
    (one send, no task), else streamed as it comes (the connection given back at its end).

    Raises:
        UpstreamError: the short body did not come whole.
    """
    headers = [(key, value) for key, value in answer.headers if key not in RESPONSE_HOP]
    length = answer.content_length()
    if length is not None and length <= WHOLE:
        try:
            body = await answer.read()
        except UpstreamError:
            answer.close()
            raise
        return Whole(answer.status, headers, body)
    response = StreamingResponse(
        answer.chunks(), status_code=answer.status, background=BackgroundTask(answer.close)
    )
    response.raw_headers = headers
    return response


class Whole:
    """A relayed answer read whole: its status, headers (as the service sent them) and
    body, sent as they are."""

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


def reason(exc: BaseException) -> str:
    """The error's text, else its type's name."""
    text = str(exc)
    return text or type(exc).__name__


async def web_socket_proxy(gw: Gateway, ws: WebSocket, route: Route) -> None:
    """Pass a WebSocket through to a node of ``route.service``, frames both ways."""
    try:
        next_node = await gw.selector.select(route.service)
        url = _url(next_node().address, ws.scope, route.path, "ws")
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
