"""Calling, streaming, publishing and tailing from the dashboard.

- ``POST /_/call`` ``{"service","endpoint","request","metadata","timeout"}`` -> ``{"response",
  "node": {"id","address"}|null, "duration_ms"}``. The node is the one that answered, as
  seen by :func:`record_node` (a call wrapper: the dashboard's client is built with it;
  without it the node is null). A service's error answers with its own status and detail.
- WebSocket ``/_/stream``: the first text frame is the same object; each message of the
  stream goes out as ``{"message": ...}``, then ``{"end": true, "count": n}`` and close
  1000, or ``{"error": {...}}`` and close ``4000 + code``. The client closing the socket
  closes the stream, and so cancels it on the service; so does the server shutting down
  (close 1001).
- ``POST /_/publish`` ``{"topic","body","metadata"}`` -> ``{"topic","bytes"}``, through the
  dashboard's broker, with the headers ``micro.Client.publish`` sets.
- ``GET /_/tail?topic=T``: Server-Sent Events; a broadcast subscription to ``T`` lives while
  the connection does. Event ``subscribed`` once it is in place, then ``message`` per
  event: ``{"topic","t","header","body"}`` (the body as JSON, else as text). A client that
  reads slower than events arrive loses the oldest (``dropped`` counts them). The
  subscription ends as soon as the client leaves or the server shuts down.

Request bodies are JSON objects; anything else is a 400 naming what is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from micro.broker import Event
from micro.client import CallFunc, CallOptions, Request
from micro.errors import BadRequest
from micro.registry import Node
from micro.toolkit.web._context import (
    PING,
    WEB_ID,
    Dashboard,
    error_body,
    handler,
    json_object,
    query,
    send_json,
    sse_event,
    sse_start,
    stop,
    wait_disconnect,
)
from micro.transport import Message

__all__ = ["MAX_TOPIC", "TAIL_QUEUE", "record_node", "routes"]

CONTENT_TYPE = "application/json"
MAX_TOPIC = 255
"""Longest topic accepted (NATS, MQTT and AMQP all take at least this much)."""
MAX_NAME = 1024
"""Longest service or endpoint name accepted."""
MAX_TIMEOUT = 3600.0
TAIL_QUEUE = 256
"""Events held for a tail client that reads slowly; older ones are dropped beyond it."""
FIRST_FRAME_TIMEOUT = 30.0
"""Seconds a ``/_/stream`` client has to send its request."""
PING_EVERY = 15.0
_TOPIC_BAD = re.compile(r"[\s\x00-\x1f\x7f]")
_json = msgspec.json.Encoder()

_answered: contextvars.ContextVar[list[Node] | None] = contextvars.ContextVar(
    "micro_web_answered", default=None
)


def record_node(call: CallFunc) -> CallFunc:
    """A call wrapper noting each attempt's node for the ``/_/call`` that made it.

    Outside a dashboard call it only passes the call on. Give it to the dashboard's client
    (``RpcClient(wrappers=[record_node])``) so ``/_/call`` can say which node answered.
    """

    async def wrapped(node: Node, request: Request, options: CallOptions) -> Any:
        seen = _answered.get()
        if seen is not None:
            seen.append(node)
        return await call(node, request, options)

    return wrapped


# -- reading requests ---------------------------------------------------------------------


class _CallSpec(msgspec.Struct):
    service: str
    endpoint: str
    request: bytes
    metadata: dict[str, str] | None
    timeout: float | None


def _name(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"missing {key}: a non-empty string", id=WEB_ID)
    if len(value) > MAX_NAME:
        raise BadRequest(f"{key} longer than {MAX_NAME} characters", id=WEB_ID)
    return value.strip()


def _metadata(data: Mapping[str, Any]) -> dict[str, str] | None:
    value = data.get("metadata")
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise BadRequest("metadata must be an object of strings", id=WEB_ID)
    for key in value:
        if not key or _TOPIC_BAD.search(key) or ":" in key:
            raise BadRequest(f"invalid metadata key {key!r}", id=WEB_ID)
    if any(ch in v for v in value.values() for ch in "\r\n\x00"):
        raise BadRequest("metadata values must not hold line breaks", id=WEB_ID)
    return dict(value) or None


def _timeout(data: Mapping[str, Any], default: float | None) -> float | None:
    value = data.get("timeout")
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest("timeout must be a number of seconds", id=WEB_ID)
    if not 0 < value <= MAX_TIMEOUT:
        raise BadRequest(f"timeout must be > 0 and <= {MAX_TIMEOUT:g} seconds", id=WEB_ID)
    return float(value)


def _call_spec(data: Mapping[str, Any], default_timeout: float | None) -> _CallSpec:
    request = data.get("request", {})
    return _CallSpec(
        service=_name(data, "service"),
        endpoint=_name(data, "endpoint"),
        request=_json.encode({} if request is None else request),
        metadata=_metadata(data),
        timeout=_timeout(data, default_timeout),
    )


def _topic(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise BadRequest("missing topic: a non-empty string", id=WEB_ID)
    if len(value) > MAX_TOPIC:
        raise BadRequest(f"topic longer than {MAX_TOPIC} characters", id=WEB_ID)
    if _TOPIC_BAD.search(value):
        raise BadRequest("topic must not hold spaces or control characters", id=WEB_ID)
    return value


# -- /_/call -------------------------------------------------------------------------------


async def call(dash: Dashboard, spec: _CallSpec) -> bytes:
    """Make the call; the ``/_/call`` JSON. Raises the call's error."""
    seen: list[Node] = []
    token = _answered.set(seen)
    started = time.perf_counter()
    try:
        raw = await dash.client.call(
            spec.service,
            spec.endpoint,
            msgspec.Raw(spec.request),
            response_type=msgspec.Raw,
            timeout=spec.timeout,
            content_type=CONTENT_TYPE,
            metadata=spec.metadata,
        )
    finally:
        _answered.reset(token)
    took = (time.perf_counter() - started) * 1000
    body = bytes(raw).strip() or b"null"
    node = _json.encode({"id": seen[-1].id, "address": seen[-1].address}) if seen else b"null"
    return (
        b'{"response":'
        + body
        + b',"node":'
        + node
        + b',"duration_ms":'
        + _json.encode(round(took, 3))
        + b"}"
    )


# -- /_/stream -----------------------------------------------------------------------------


async def _first_frame(ws: WebSocket) -> dict[str, Any] | None:
    """The client's request object; None when it left first."""
    async with asyncio.timeout(FIRST_FRAME_TIMEOUT):
        message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        return None
    text = message.get("text")
    raw = text.encode() if text is not None else (message.get("bytes") or b"")
    try:
        data = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        raise BadRequest("invalid JSON in the first message", id=WEB_ID) from None
    if not isinstance(data, dict):
        raise BadRequest("the first message must be a JSON object", id=WEB_ID)
    return data


async def _until_closed(ws: WebSocket) -> None:
    """Return when the client closes (later frames are not part of the protocol: ignored)."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return


def _not_a_stream(dash: Dashboard, spec: _CallSpec) -> bool:
    """The registry lists the endpoint as unary (``stream`` metadata other than true)."""
    live = getattr(dash, "live", None)
    if live is None:
        return False
    listed = [
        (ep.metadata or {}).get("stream")
        for svc in live.services(spec.service)
        for ep in svc.endpoints
        if ep.name == spec.endpoint
    ]
    return bool(listed) and all(v == "false" for v in listed)


async def _pipe(dash: Dashboard, ws: WebSocket, spec: _CallSpec) -> int:
    """Open the stream, send each message to the client; the count sent."""
    stream = dash.client.stream(
        spec.service,
        spec.endpoint,
        msgspec.Raw(spec.request),
        response_type=msgspec.Raw,
        timeout=spec.timeout,
        content_type=CONTENT_TYPE,
        metadata=spec.metadata,
    )
    count = 0
    try:
        await stream.open()
        await stream.close_send()  # one request: a bidirectional stream answers it, then ends
        async for item in stream:
            await ws.send_text('{"message":' + (bytes(item).decode() or "null") + "}")
            count += 1
    finally:
        await stream.close()
    return count


async def stream_socket(dash: Dashboard, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one ``/_/stream`` WebSocket (see the module docstring)."""
    ws = WebSocket(scope, receive, send)
    await ws.accept()
    try:
        data = await _first_frame(ws)
        if data is None:
            return
        spec = _call_spec(data, dash.options.timeout)
        if _not_a_stream(dash, spec):
            raise BadRequest(
                f"{spec.endpoint} of {spec.service} is not a stream; call it instead", id=WEB_ID
            )
        async with dash.streams.watch("stream", lambda: _until_closed(ws)) as over:
            pipe = asyncio.create_task(_pipe(dash, ws, spec))
            try:
                await asyncio.wait({pipe, over}, return_when=asyncio.FIRST_COMPLETED)
                if not pipe.done():  # closing the stream cancels it on the service
                    await _going_away(ws)  # when the server ends it; the client may be gone
                    return
                count = pipe.result()
            finally:
                await stop(pipe)
        await ws.send_text(_json.encode({"end": True, "count": count}).decode())
        await ws.close(code=1000)
    except WebSocketDisconnect:
        return
    except TimeoutError:
        await _fail(ws, BadRequest("no request received on the stream", id=WEB_ID))
    except Exception as exc:
        await _fail(ws, exc)


async def _going_away(ws: WebSocket) -> None:
    """Close with 1001 (going away) unless the client is gone already."""
    with contextlib.suppress(Exception):
        if ws.client_state == WebSocketState.CONNECTED:
            await ws.close(code=1001)


async def _fail(ws: WebSocket, exc: BaseException) -> None:
    status, body = error_body(exc)
    with contextlib.suppress(Exception):
        if ws.application_state == WebSocketState.CONNECTED:
            await ws.send_text(body.decode())
            await ws.close(code=4000 + status)


# -- /_/publish ----------------------------------------------------------------------------


async def publish(dash: Dashboard, data: Mapping[str, Any]) -> dict[str, Any]:
    """Publish ``data["body"]`` to ``data["topic"]``; the ``/_/publish`` JSON."""
    topic = _topic(data.get("topic"))
    if "body" not in data:
        raise BadRequest("missing body: any JSON value", id=WEB_ID)
    body = _json.encode(data["body"])
    header = dict(_metadata(data) or {})
    header["Content-Type"] = CONTENT_TYPE
    header["Micro-Topic"] = topic
    header["Micro-Id"] = str(uuid.uuid4())
    broker = await dash.connected_broker()
    await broker.publish(topic, Message(header, body))
    return {"topic": topic, "bytes": len(body)}


# -- /_/tail -------------------------------------------------------------------------------


def _event_json(event: Event) -> bytes:
    body = event.message.body
    try:
        decoded: Any = msgspec.json.decode(body) if body.strip() else None
    except (msgspec.DecodeError, RecursionError):
        decoded = body.decode("utf-8", errors="replace")
    return _json.encode(
        {
            "topic": event.topic,
            "t": round(time.time(), 3),
            "header": dict(event.message.header),
            "body": decoded,
        }
    )


async def tail(dash: Dashboard, topic: str, receive: Receive, send: Send) -> None:
    """Stream the events of ``topic`` until the client leaves (see the module docstring)."""
    queue: asyncio.Queue[bytes] = asyncio.Queue(TAIL_QUEUE)
    dropped = 0

    async def on_event(event: Event) -> None:
        nonlocal dropped
        data = _event_json(event)
        while queue.full():  # keep the newest: a slow reader loses the oldest
            queue.get_nowait()
            dropped += 1
        queue.put_nowait(data)

    broker = await dash.connected_broker()
    subscription = await broker.subscribe(topic, on_event)
    got: asyncio.Task[bytes] | None = None
    try:
        async with dash.streams.watch("tail", lambda: wait_disconnect(receive)) as over:
            await sse_start(send)
            hello = _json.encode({"topic": topic, "broker": broker.name})
            first = sse_event("subscribed", hello)
            await send({"type": "http.response.body", "body": first, "more_body": True})
            while not over.done():
                got = asyncio.create_task(queue.get())
                await asyncio.wait(
                    {got, over}, timeout=PING_EVERY, return_when=asyncio.FIRST_COMPLETED
                )
                if got.done():
                    chunk = sse_event("message", got.result())
                    if dropped:
                        chunk = sse_event("dropped", b"%d" % dropped) + chunk
                        dropped = 0
                else:
                    await stop(got)
                    if over.done():
                        break
                    chunk = PING
                got = None
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    except OSError:
        pass
    finally:
        await stop(got)
        await subscription.unsubscribe()


# -- routes --------------------------------------------------------------------------------


def routes(dash: Dashboard) -> dict[str, ASGIApp]:
    """``/_/call``, ``/_/stream``, ``/_/publish`` and ``/_/tail``."""

    @handler("POST")
    async def call_route(scope: Scope, receive: Receive, send: Send) -> None:
        spec = _call_spec(await json_object(dash, scope, receive), dash.options.timeout)
        await send_json(send, await call(dash, spec))

    async def stream_route(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await stream_socket(dash, scope, receive, send)
        else:
            await refuse_http(scope, receive, send)

    @handler("GET")
    async def refuse_http(scope: Scope, receive: Receive, send: Send) -> None:
        raise BadRequest("/_/stream is a WebSocket: connect with an Upgrade", id=WEB_ID)

    @handler("POST")
    async def publish_route(scope: Scope, receive: Receive, send: Send) -> None:
        data = await json_object(dash, scope, receive)
        await send_json(send, await publish(dash, data))

    @handler("GET")
    async def tail_route(scope: Scope, receive: Receive, send: Send) -> None:
        topic = _topic(query(scope, "topic"))
        await tail(dash, topic, receive, send)

    return {
        "/_/call": call_route,
        "/_/stream": stream_route,
        "/_/publish": publish_route,
        "/_/tail": tail_route,
    }
