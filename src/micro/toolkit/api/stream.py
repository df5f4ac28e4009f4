"""RPC over WebSocket: streaming endpoints, and unary ones message by message.

Protocol (text frames of JSON):

- Streaming endpoint (registry metadata ``stream=true``, or ``streaming=True``): the first
  client message opens the stream. It is the request of a server stream and the first
  message of a bidirectional one; later client messages go to a bidirectional stream (a
  server stream ignores them). A binary frame of zero bytes ends the client's side
  (``close_send``: the service sees the end of its input, the answers go on). Each message
  the service sends becomes one frame. When the service ends the stream the
  gateway closes with 1000; when it fails, the gateway sends the error JSON
  ``{"error": {id, code, detail, status}}`` and closes with ``4000 + code`` (4404, 4504...).
- Unary endpoint: each client message is one call; each answer (or ``{"error": ...}``) is
  one frame, and the connection stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, MutableMapping
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.websockets import WebSocket, WebSocketDisconnect

from micro.client import Stream
from micro.errors import BadRequest, MicroError
from micro.toolkit.api._errors import API_ID, http_error
from micro.toolkit.api._http import decode_json
from micro.toolkit.api.handlers import call_metadata
from micro.toolkit.api.resolver import Route

if TYPE_CHECKING:
    from micro.toolkit.api.app import Gateway

__all__ = ["web_socket_rpc"]


def _frame(message: MutableMapping[str, Any]) -> bytes | None:
    """The JSON payload of a WebSocket frame; None when the client disconnected."""
    if message["type"] == "websocket.disconnect":
        return None
    data = message.get("text")
    raw = data.encode() if data is not None else (message.get("bytes") or b"")
    decode_json(raw, "JSON message")
    return raw


def _is_close_send(message: MutableMapping[str, Any]) -> bool:
    """A binary frame of zero bytes: the client will send nothing more."""
    return message.get("text") is None and message.get("bytes") == b""


ErrorOf = Callable[[BaseException], MicroError]
"""Maps a failure to the error sent (its code is the close code's last three digits)."""


def _error_frame(exc: BaseException, error_of: ErrorOf = http_error) -> tuple[MicroError, str]:
    err = error_of(exc)
    return err, '{"error":' + err.to_json() + "}"


async def _fail(ws: WebSocket, exc: BaseException, error_of: ErrorOf = http_error) -> None:
    err, text = _error_frame(exc, error_of)
    with contextlib.suppress(Exception):
        await ws.send_text(text)
        await ws.close(code=4000 + err.code, reason=err.detail[:120])


async def web_socket_rpc(
    gw: Gateway,
    ws: WebSocket,
    route: Route,
    *,
    streaming: bool | None = None,
    address: str | None = None,
    timeout: float | None = None,
    error_of: ErrorOf = http_error,
) -> None:
    """Serve one WebSocket connection for ``route`` (see the module docstring).

    ``streaming`` says whether the endpoint streams (None: as its registry metadata says,
    a stream when unknown); a stream goes to ``address`` when given (else a node the
    selector picks) and ends after ``timeout`` seconds when given. ``error_of`` maps the
    error that ends the connection (default: the gateway's mapping, a deadline is 504).
    """
    await ws.accept()
    if streaming is None:
        endpoint = gw.catalog.endpoint(route.service, route.endpoint)
        streaming = endpoint is None or (endpoint.metadata or {}).get("stream") == "true"
    try:
        if streaming:
            await _stream(gw, ws, route, address, timeout)
        else:
            await _unary(gw, ws, route)
    except WebSocketDisconnect:
        return
    except Exception as exc:
        await _fail(ws, exc, error_of)


async def _unary(gw: Gateway, ws: WebSocket, route: Route) -> None:
    metadata = call_metadata(ws.scope)
    while True:
        try:
            raw = _frame(await ws.receive())
            if raw is None:
                return
            rsp = await gw.client.call(
                route.service,
                route.endpoint,
                msgspec.Raw(raw),
                response_type=msgspec.Raw,
                metadata=metadata,
            )
            await ws.send_text(bytes(rsp).decode())
        except MicroError as exc:
            await ws.send_text(_error_frame(exc)[1])


async def _stream(
    gw: Gateway, ws: WebSocket, route: Route, address: str | None, timeout: float | None
) -> None:
    first = _frame(await ws.receive())
    if first is None:
        return
    stream = gw.client.stream(
        route.service,
        route.endpoint,
        msgspec.Raw(first),
        response_type=msgspec.Raw,
        address=address,
        timeout=timeout,
        metadata=call_metadata(ws.scope),
    )
    async with stream:  # sends ``first`` as the stream's first message too
        sender = asyncio.create_task(_client_to_stream(ws, stream))
        try:
            async for item in stream:
                await ws.send_text(bytes(item).decode())
        finally:
            sender.cancel()
            with contextlib.suppress(BaseException):
                await sender
    await ws.close(code=1000)


async def _client_to_stream(ws: WebSocket, stream: Stream) -> None:
    sending = True
    while True:
        message = await ws.receive()
        if sending and _is_close_send(message):
            sending = False
            await stream.close_send()
            continue
        try:
            raw = _frame(message)
        except BadRequest as exc:
            await ws.send_text(_error_frame(exc)[1])
            continue
        if raw is None:
            await stream.close()  # the client left: the stream ends on the service too
            return
        if not sending:
            closed = BadRequest(
                "message after the end of sending (a zero-byte binary frame)", id=API_ID
            )
            await ws.send_text(_error_frame(closed)[1])
            continue
        await stream.send(msgspec.Raw(raw))
