"""``/rpc``: calls and streams, as go-micro's ``/rpc`` (the gateway's ``--enable-rpc``).

- ``POST /rpc``: ``{"service", "endpoint" (or "method"), "request", "address"?}`` as JSON or
  a form, header ``Timeout: <seconds>``; the endpoint's JSON response, or its error with its
  code. The other headers are call metadata (``Authorization`` is not passed on).
- WebSocket ``/rpc?service=S&endpoint=E[&address=A][&timeout=secs]``: always a stream, with
  the gateway's protocol (:mod:`micro.toolkit.api.stream`): the first text frame is the
  request, later ones further messages, a binary frame of zero bytes ends the client's
  side; each message of the service is one text frame; close 1000 at the end, or
  ``{"error": {...}}`` and close ``4000 + code``. The client closing the socket cancels
  the stream on the service; so does the proxy shutting down (close 1001).

With an allow-list of services, a call may name only an allowed service, and an
``address`` only one of that service's registered nodes (else any host:port inside the
network could be reached through the proxy).
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING

import msgspec
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from micro.errors import BadRequest, Forbidden, MethodNotAllowed, ServiceNotFound
from micro.registry import split_host_port
from micro.toolkit.api._http import RawResponse
from micro.toolkit.api.app import _rpc_fields
from micro.toolkit.api.handlers import call_metadata, call_timeout
from micro.toolkit.api.resolver import Route
from micro.toolkit.api.stream import web_socket_rpc
from micro.toolkit.proxy._common import (
    PROXY_ID,
    proxy_error,
    query,
    refuse_service,
    reply_error,
    ws_fail,
)
from micro.toolkit.web._context import stop

if TYPE_CHECKING:
    from micro.toolkit.proxy.app import ProxyApp

__all__ = ["rpc_http", "rpc_stream"]

MAX_TIMEOUT = 3600.0


async def rpc_http(app: ProxyApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve ``POST /rpc`` (see the module docstring)."""
    try:
        if scope["method"] != "POST":
            detail = f"{scope['method']} not allowed on /rpc: POST a call, or open a WebSocket"
            raise MethodNotAllowed(detail, id=PROXY_ID)
        body = await app.read_body(scope, receive)
        service, endpoint, request, address = _rpc_fields(scope, body)
        await check_target(app, service, address)
        rsp = await app.client.call(
            service,
            endpoint,
            request,
            response_type=msgspec.Raw,
            address=address or None,
            timeout=call_timeout(scope) or app.options.timeout,
            metadata=call_metadata(scope),
            content_type="application/json",
        )
    except Exception as exc:
        extra = {"allow": "POST"} if isinstance(exc, MethodNotAllowed) else {}
        await reply_error(send, exc, **extra)
        return
    await RawResponse(bytes(rsp))(scope, receive, send)


async def check_target(app: ProxyApp, service: str, address: str) -> None:
    """Refuse (403) a service outside the allow-list, or an address that is not one of its
    nodes while an allow-list is set."""
    if not app.options.service_allowed(service):
        raise refuse_service(service)
    if not address or not app.options.allow_services:
        return
    try:
        nodes = {n.address for s in await app.registry.get_service(service) for n in s.nodes}
    except ServiceNotFound:
        nodes = set()
    if address not in nodes:
        detail = f"address {address!r} is not a node of {service!r}: not allowed through this proxy"
        raise Forbidden(detail, id=PROXY_ID)


def _stream_params(scope: Scope) -> tuple[str, str, str, float | None]:
    service, endpoint, address = (query(scope, k) for k in ("service", "endpoint", "address"))
    if not service:
        raise BadRequest("missing service: /rpc?service=S&endpoint=E", id=PROXY_ID)
    if not endpoint:
        raise BadRequest("missing endpoint: /rpc?service=S&endpoint=E", id=PROXY_ID)
    if address:
        try:
            host, port = split_host_port(address)
        except ValueError:
            host, port = "", 0
        if not host or not 0 < port < 65536:
            raise BadRequest(f"invalid address {address!r}: want host:port", id=PROXY_ID)
    text = query(scope, "timeout")
    timeout = None
    if text:
        try:
            timeout = float(text)
        except ValueError:
            timeout = -1.0
        if not (math.isfinite(timeout) and 0 < timeout <= MAX_TIMEOUT):
            raise BadRequest(f"invalid timeout {text!r}: want seconds", id=PROXY_ID)
    return service, endpoint, address, timeout


async def rpc_stream(app: ProxyApp, ws: WebSocket) -> None:
    """Serve one stream WebSocket (see the module docstring)."""
    try:
        service, endpoint, address, timeout = _stream_params(ws.scope)
        await check_target(app, service, address)
    except Exception as exc:
        await ws_fail(ws, exc)
        return
    route = Route(service=service, endpoint=endpoint)
    async with app.streams.watch("stream", _forever) as over:
        task = asyncio.create_task(
            web_socket_rpc(
                app.gateway,
                ws,
                route,
                streaming=True,
                address=address or None,
                timeout=timeout,
                error_of=proxy_error,
            )
        )
        await asyncio.wait({task, over}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():  # the proxy is stopping: the stream ends on the service too
            await stop(task)
            await app.close_socket(ws)


async def _forever() -> None:
    await asyncio.Event().wait()
