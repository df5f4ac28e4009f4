"""``/registry``: the registry over HTTP, as go-micro's registry handler.

- ``GET /registry``: every service (``list_services``), a JSON array of go-micro services.
- ``GET /registry?service=X``: the versions of X (``get_service``); 404 when none.
- ``POST /registry[?ttl=30s]``: register the service JSON of the body; ``{}``.
- ``DELETE /registry``: deregister the service JSON of the body; ``{}``.
- WebSocket ``/registry[?service=X]``: one text frame ``{"action", "service"}`` per change
  seen by ``watch``, until either side closes.

Services outside the allow-list are refused by name (403) and left out of lists and watches.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING

from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from micro.errors import BadRequest, MethodNotAllowed, NotFound, RegistryError, ServiceNotFound
from micro.registry import Service, decode_service
from micro.settings import parse_duration
from micro.toolkit.proxy._common import (
    PROXY_ID,
    encode,
    json_reply,
    query,
    refuse_service,
    reply_error,
    ws_fail,
)
from micro.toolkit.web._context import stop

if TYPE_CHECKING:
    from micro.toolkit.proxy.app import ProxyApp

__all__ = ["registry_http", "registry_watch"]

_ALLOW = "GET, POST, DELETE"


async def registry_http(app: ProxyApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one HTTP request to ``/registry`` (see the module docstring)."""
    method = scope["method"]
    try:
        if method in ("GET", "HEAD"):
            body = await _lookup(app, query(scope, "service"))
        elif method in ("POST", "DELETE"):
            service = _service(await app.read_body(scope, receive))
            if not app.options.service_allowed(service.name):
                raise refuse_service(service.name)
            if method == "POST":
                await app.registry.register(service, ttl=_ttl(query(scope, "ttl")))
            else:
                await app.registry.deregister(service)
            body = b"{}"
        else:
            raise MethodNotAllowed(f"{method} not allowed on /registry", id=PROXY_ID)
    except Exception as exc:
        extra = {"allow": _ALLOW} if isinstance(exc, MethodNotAllowed) else {}
        await reply_error(send, exc, **extra)
        return
    await json_reply(send, body)


async def _lookup(app: ProxyApp, name: str) -> bytes:
    if not name:
        services = await app.registry.list_services()
        return encode([s for s in services if app.options.service_allowed(s.name)])
    if not app.options.service_allowed(name):
        raise refuse_service(name)
    try:
        return encode(await app.registry.get_service(name))
    except ServiceNotFound:
        raise NotFound(f"service {name!r} not found", id=PROXY_ID) from None


def _service(body: bytes) -> Service:
    if not body.strip():
        raise BadRequest("empty body: send a service as go-micro JSON", id=PROXY_ID)
    try:
        service = decode_service(body)
    except RegistryError as exc:
        raise BadRequest(f"invalid service: {exc.detail}", id=PROXY_ID) from None
    if not service.name:
        raise BadRequest("invalid service: no name", id=PROXY_ID)
    return service


def _ttl(text: str) -> float | None:
    """``ttl`` in seconds: a Go duration (``30s``) or a number; None when not given."""
    if not text:
        return None
    try:
        seconds = parse_duration(text)
    except ValueError:
        seconds = -1.0
    if not (math.isfinite(seconds) and seconds > 0):
        raise BadRequest(f"invalid ttl {text!r}: want seconds or a duration like 30s", id=PROXY_ID)
    return seconds


async def registry_watch(app: ProxyApp, ws: WebSocket) -> None:
    """Serve one watch WebSocket (see the module docstring)."""
    name = query(ws.scope, "service")
    if name and not app.options.service_allowed(name):
        await ws_fail(ws, refuse_service(name))
        return
    await ws.accept()
    watcher = app.registry.watch(name or None)

    async def pump() -> None:
        async for result in watcher:
            if app.options.service_allowed(result.service.name):
                await ws.send_text(encode(result).decode())

    async def until_closed() -> None:
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass  # the client has nothing to say here

    async with app.streams.watch("watch", until_closed) as over:
        task = asyncio.create_task(pump())
        try:
            await asyncio.wait({task, over}, return_when=asyncio.FIRST_COMPLETED)
            if task.done() and not task.cancelled():
                error = task.exception()
                if error is not None and not isinstance(error, WebSocketDisconnect | OSError):
                    await ws_fail(ws, error)
                    return
        finally:
            await stop(task)
            await watcher.aclose()
    await app.close_socket(ws)
