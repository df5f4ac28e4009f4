"""``/broker``: publish and subscribe, as go-micro's broker handler, plus an ack mode.

- ``POST /broker?topic=T``: publish the body; the message headers are the request's
  (canonical names, repeated values joined by ", ") but the per-hop ones, ``Authorization``,
  ``Host`` and ``Content-Length``. With ``&frame=1`` the body is a go-micro frame
  ``{"Header": {...}, "Body": "<base64>"}`` published as it is. ``{}`` once the broker
  accepted it; 503 when the broker cannot be reached, 502 when it refused the message.
- WebSocket ``/broker?topic=T[&queue=Q]``: a subscription (a queue group with ``queue``)
  that lives as long as the socket. The handshake completes once the subscription is in
  place, so nothing published after it is missed. Each message is pushed as the text frame
  ``{"Header": {...}, "Body": "<base64>"}``; text or binary frames from the client are
  published to T with the upgrade request's ``Content-Type`` (``text/plain`` without one).
- Ack mode, ``&ack=client``: each pushed frame also carries ``"Id"``, and the message is
  settled by the client: ``{"Ack": "<id>"}`` acknowledges it, ``{"Nack": "<id>"}`` (or the
  socket closing, or the proxy stopping) gives it back to the broker, which redelivers it
  when it is at-least-once (NATS JetStream, RabbitMQ, Redis Streams). One frame at a time
  waits for its answer; the next is pushed after it.

Topics outside the allow-list are refused (403).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from micro.broker import Broker, Event
from micro.errors import BadRequest, BrokerError, MethodNotAllowed, MicroError
from micro.metadata import canonical
from micro.toolkit.api._http import header
from micro.toolkit.proxy._common import (
    PROXY_ID,
    json_reply,
    query,
    refuse_topic,
    reply_error,
    ws_fail,
)
from micro.transport import Message

if TYPE_CHECKING:
    from micro.toolkit.proxy.app import ProxyApp

__all__ = ["MAX_TOPIC", "broker_http", "broker_subscribe"]

log = logging.getLogger("micro.proxy")

MAX_TOPIC = 255
"""Longest topic accepted (NATS, MQTT and AMQP all take at least this much)."""
_TOPIC_BAD = re.compile(r"[\s\x00-\x1f\x7f]")
_NOT_PASSED = frozenset(
    {
        "Authorization",
        "Connection",
        "Content-Length",
        "Host",
        "Keep-Alive",
        "Proxy-Authorization",
        "Proxy-Connection",
        "Te",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
    }
)


class Frame(msgspec.Struct):
    """go-micro's ``broker.Message`` as JSON (Go field names; the body base64)."""

    Header: dict[str, str] | None = None
    Body: bytes | None = None


class _AckFrame(msgspec.Struct):
    Header: dict[str, str]
    Body: bytes
    Id: str


_encoder = msgspec.json.Encoder()
_frame_decoder = msgspec.json.Decoder(Frame)


def topic_of(app: ProxyApp, scope: Scope) -> str:
    """The ``topic`` query parameter, checked and allowed.

    Raises:
        BadRequest: missing, too long, or holding spaces or control characters.
        Forbidden: outside the allow-list.
    """
    topic = query(scope, "topic")
    if not topic:
        raise BadRequest("missing topic: /broker?topic=T", id=PROXY_ID)
    if len(topic) > MAX_TOPIC:
        raise BadRequest(f"topic longer than {MAX_TOPIC} characters", id=PROXY_ID)
    if _TOPIC_BAD.search(topic):
        raise BadRequest("topic must not hold spaces or control characters", id=PROXY_ID)
    if not app.options.topic_allowed(topic):
        raise refuse_topic(topic)
    return topic


def message_headers(scope: Scope) -> dict[str, str]:
    """The request's headers as message headers (see the module docstring)."""
    out: dict[str, str] = {}
    for key, value in scope["headers"]:
        name = canonical(key.decode("latin-1"))
        if name in _NOT_PASSED:
            continue
        text = value.decode()  # UTF-8: the header check let nothing else through
        out[name] = f"{out[name]}, {text}" if name in out else text
    return out


def decode_frame(body: bytes) -> Message:
    """The message of a go-micro frame body.

    Raises:
        BadRequest: the body is not a frame.
    """
    try:
        frame = _frame_decoder.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        detail = f'invalid frame: {exc}; want {{"Header": {{...}}, "Body": "<base64>"}}'
        raise BadRequest(detail, id=PROXY_ID) from None
    return Message(frame.Header or {}, frame.Body or b"")


async def connected(app: ProxyApp) -> Broker:
    """The proxy's broker, connected; 503 when it cannot be reached."""
    try:
        return await app.connected_broker()
    except BrokerError as exc:
        detail = f"broker unavailable: {exc.detail}"
        raise MicroError(detail, id=exc.id or PROXY_ID, code=503) from None


async def publish(app: ProxyApp, topic: str, message: Message) -> None:
    """Publish through the proxy's broker; 503 unreachable, 502 refused."""
    broker = await connected(app)
    try:
        await broker.publish(topic, message)
    except BrokerError as exc:
        raise MicroError(exc.detail, id=exc.id or PROXY_ID, code=502) from None


async def broker_http(app: ProxyApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve ``POST /broker`` (see the module docstring)."""
    try:
        if scope["method"] != "POST":
            detail = f"{scope['method']} not allowed on /broker: POST to publish, or open a "
            raise MethodNotAllowed(detail + "WebSocket to subscribe", id=PROXY_ID)
        topic = topic_of(app, scope)
        body = await app.read_body(scope, receive)
        framed = query(scope, "frame") in ("1", "true")
        message = decode_frame(body) if framed else Message(message_headers(scope), body)
        await publish(app, topic, message)
    except Exception as exc:
        extra = {"allow": "POST"} if isinstance(exc, MethodNotAllowed) else {}
        await reply_error(send, exc, **extra)
        return
    await json_reply(send, b"{}")


async def broker_subscribe(app: ProxyApp, ws: WebSocket) -> None:
    """Serve one subscription WebSocket (see the module docstring)."""
    try:
        topic = topic_of(app, ws.scope)
        ack = query(ws.scope, "ack")
        if ack not in ("", "client"):
            raise BadRequest(f"invalid ack {ack!r}: want ack=client or none", id=PROXY_ID)
        broker = await connected(app)
        session = _Session(app, ws, topic, acks=ack == "client")
        try:
            subscription = await broker.subscribe(
                topic, session.deliver, queue=query(ws.scope, "queue") or None, auto_ack=False
            )
        except BrokerError as exc:
            raise MicroError(exc.detail, id=exc.id or PROXY_ID, code=502) from None
    except Exception as exc:
        await ws_fail(ws, exc)
        return
    try:
        await ws.accept()
        session.ready.set()
        async with app.streams.watch("subscribe", session.read) as over:
            await over
    finally:
        session.close()
        await subscription.unsubscribe()
    await app.close_socket(ws)


class _Session:
    """One subscription socket: pushes events one at a time, settles them, reads the
    client's frames (acks, or messages to publish)."""

    def __init__(self, app: ProxyApp, ws: WebSocket, topic: str, *, acks: bool) -> None:
        self.app = app
        self.ws = ws
        self.topic = topic
        self.acks = acks
        self.content_type = header(ws.scope, b"content-type") or "text/plain"
        self.ready = asyncio.Event()  # set once the socket is accepted (or gone)
        self.closed = False
        self._turn = asyncio.Lock()  # whole frames, and one unsettled frame at a time
        self._ids = itertools.count(1)
        self._waiting: tuple[str, asyncio.Future[bool]] | None = None

    async def deliver(self, event: Event) -> None:
        """The subscription's handler (``auto_ack=False``: it settles each event)."""
        await self.ready.wait()
        async with self._turn:
            if self.closed:
                await event.nack(requeue=True)
                return
            try:
                acked = await self._push(event)
            except Exception as exc:  # the socket is gone: give the message back
                log.debug("push of %s to a subscriber failed: %r", event.id or "-", exc)
                acked = False
            if acked:
                await event.ack()
            else:
                await event.nack(requeue=True)

    async def _push(self, event: Event) -> bool:
        header, body = dict(event.message.header), event.message.body
        if not self.acks:
            await self.ws.send_text(_encoder.encode(Frame(header, body)).decode())
            return True
        frame_id = str(next(self._ids))
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting = (frame_id, answer)
        try:
            await self.ws.send_text(_encoder.encode(_AckFrame(header, body, frame_id)).decode())
            return await answer
        finally:
            self._waiting = None

    def close(self) -> None:
        """Stop pushing; the frame waiting for its answer is given back to the broker."""
        self.closed = True
        self.ready.set()
        if self._waiting is not None and not self._waiting[1].done():
            self._waiting[1].set_result(False)

    async def read(self) -> None:
        """Read the client's frames until it leaves (or a publish fails)."""
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            raw = text.encode() if text is not None else (message.get("bytes") or b"")
            if self.acks and self._settle(raw):
                continue
            try:
                await publish(
                    self.app, self.topic, Message({"Content-Type": self.content_type}, raw)
                )
            except Exception as exc:
                await ws_fail(self.ws, exc)
                return

    def _settle(self, raw: bytes) -> bool:
        """Whether ``raw`` is an ``{"Ack": id}`` or ``{"Nack": id}`` frame (then applied)."""
        if not raw.startswith(b"{"):
            return False
        try:
            data: Any = msgspec.json.decode(raw)
        except (msgspec.DecodeError, RecursionError):
            return False
        if not isinstance(data, dict) or len(data) != 1:
            return False
        ((verb, frame_id),) = data.items()
        if verb not in ("Ack", "Nack") or not isinstance(frame_id, str):
            return False
        waiting = self._waiting
        if waiting is not None and waiting[0] == frame_id and not waiting[1].done():
            waiting[1].set_result(verb == "Ack")
        return True  # an answer to a frame no longer waiting (a late one) is dropped
