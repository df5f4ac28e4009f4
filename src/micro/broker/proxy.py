"""A broker reached through ``micro proxy``: publish to and subscribe on the remote broker.

- ``connect`` checks that the proxy answers (``GET /health``).
- ``publish`` is ``POST /broker?topic=T&frame=1`` with the go-micro frame
  ``{"Header": {...}, "Body": "<base64>"}``: the message's headers and body arrive exactly.
- ``subscribe`` opens a WebSocket ``GET /broker?topic=T[&queue=Q]&ack=client``. Each frame
  pushed (with an ``Id``) becomes an :class:`~micro.broker.Event` for the handler; the
  subscription answers ``{"Ack": id}`` when the handler returns (``auto_ack``) or acks, and
  ``{"Nack": id}`` when it raises or nacks with ``requeue``. ``nack(requeue=False)`` answers
  ``Ack``: the message is dropped, not dead-lettered (the proxy has no word for it). The
  proxy holds its broker's delivery until that answer, so a message the handler did not
  finish is redelivered by an at-least-once broker even across a proxy restart. Frames come
  one at a time per subscription: with ``auto_ack=False`` the next one comes once the
  handler settled this one.
- A socket that ends under a subscription (the proxy restarted, the network dropped) is
  opened again with a backoff (0.1 s doubling to 5 s) until ``unsubscribe``/``disconnect``.
  Messages published meanwhile reach it only where the proxy's broker keeps them (a durable
  queue group).

Guarantees: those of the proxy's broker, which this process cannot see. ``capabilities``
says what the caller declares (``capabilities=``) or what the proxy reports in ``/health``
(``{"broker": {"capabilities": [...]}}``), never ``dead_letter``; with neither, nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Iterable
from typing import Any

import aiohttp
import msgspec

from micro._proxy_link import ProxyLink, ProxyUnreachable
from micro.broker import CAPABILITIES, Broker, BrokerError, Handler, Subscription
from micro.broker._common import BaseEvent, deliver
from micro.errors import ConnectError, MicroError, Timeout
from micro.transport import Message

__all__ = ["ProxyBroker", "broker_error", "publish_frame"]

log = logging.getLogger("micro.broker.proxy")
ERROR_ID = "go.micro.broker"
RECONNECT_MIN = 0.1
RECONNECT_MAX = 5.0
REFUSAL_WAIT = 0.03
"""Seconds a new subscription socket is watched for the proxy's refusal (an error frame and
close, sent right after the upgrade: a token or topic it does not accept), so that
``subscribe`` raises it."""


class _Frame(msgspec.Struct, rename="pascal", omit_defaults=True):
    """go-micro's broker frame, plus the id of our ack mode."""

    header: dict[str, str] | None = None
    body: bytes = b""
    id: str = ""


_encode = msgspec.json.Encoder().encode
_decode_frame = msgspec.json.Decoder(_Frame).decode


class _Unreachable(ProxyUnreachable, BrokerError):
    """The proxy could not be reached (a ConnectError, and the BrokerError promised)."""


def broker_error(exc: MicroError) -> MicroError:
    """``exc`` as the broker interface raises it: failures to reach or of the proxy's
    broker are ``BrokerError`` (same code and detail); refusals (4xx) keep their class."""
    if isinstance(exc, BrokerError):
        return exc
    if isinstance(exc, ProxyUnreachable):
        error = _Unreachable(exc.detail, id=exc.id)
        error.retryable = exc.retryable
        return error
    if isinstance(exc, ConnectError | Timeout) or exc.code >= 500:
        return BrokerError(exc.detail, id=exc.id or ERROR_ID, code=exc.code, status=exc.status)
    return exc


class ProxyBroker(Broker):
    """The broker behind a ``micro proxy`` (see the module docs).

    Args:
        proxy_address: the proxy, ``host:port``, ``http://host:port`` or ``https://...``.
        address: the same, when chosen by name (``MICRO_BROKER_ADDRESS``);
            ``proxy_address`` wins.
        proxy_token: bearer token the proxy checks.
        proxy_tls_ca: CA file of the proxy's certificate (implies https).
        proxy_tls_cert, proxy_tls_key: client certificate for mutual TLS.
        capabilities: what the proxy's broker guarantees (:data:`~micro.broker.CAPABILITIES`),
            when known here; default: what the proxy reports, else nothing.
        timeout: seconds per request (10 s).

    Raises:
        ValueError: no address, or a bad one, or an unreadable TLS file.
    """

    name = "proxy"

    def __init__(
        self,
        *,
        proxy_address: str | None = None,
        address: str | None = None,
        proxy_token: str | None = None,
        proxy_tls_ca: str | None = None,
        proxy_tls_cert: str | None = None,
        proxy_tls_key: str | None = None,
        capabilities: Iterable[str] | None = None,
        timeout: float | None = None,
    ) -> None:
        self.link = ProxyLink.of_backend(
            "broker",
            proxy_address=proxy_address,
            address=address,
            token=proxy_token,
            tls_ca=proxy_tls_ca,
            tls_cert=proxy_tls_cert,
            tls_key=proxy_tls_key,
            timeout=timeout,
        )
        self._declared = capabilities is not None
        if capabilities is not None:
            self.capabilities = _honest(capabilities)
        self._subs: set[_ProxySubscription] = set()
        self._connected = False

    def __repr__(self) -> str:
        return f"ProxyBroker({self.link.url!r})"

    @property
    def address(self) -> str:
        return self.link.url

    async def connect(self) -> None:
        if self._connected:
            return
        try:
            health = await self.link.get_json("/health")
        except (ConnectError, Timeout) as exc:
            raise broker_error(exc) from exc
        except MicroError:
            health = None  # it answered (503: its companion app is down): reachable
        if not self._declared and isinstance(health, dict):
            reported = health.get("broker")
            if isinstance(reported, dict) and isinstance(reported.get("capabilities"), list):
                self.capabilities = _honest(str(c) for c in reported["capabilities"])
        self._connected = True

    async def disconnect(self) -> None:
        self._connected = False
        for sub in list(self._subs):
            await sub.unsubscribe()
        await self.link.close()

    async def publish(self, topic: str, message: Message) -> None:
        self._check(f"publish to {topic!r}")
        await publish_frame(self.link, topic, message)

    async def subscribe(
        self,
        topic: str,
        handler: Handler,
        *,
        queue: str | None = None,
        auto_ack: bool = True,
    ) -> Subscription:
        self._check(f"subscribe to {topic!r}")
        sub = _ProxySubscription(self, topic, handler, queue, auto_ack)
        try:
            await sub.open()
        except MicroError as exc:
            raise broker_error(exc) from exc
        self._subs.add(sub)
        return sub

    def _check(self, what: str) -> None:
        if not self._connected:
            raise BrokerError(f"{what}: the proxy broker is not connected", id=ERROR_ID)


async def publish_frame(
    link: ProxyLink, topic: str, message: Message, *, timeout: float | None = None
) -> None:
    """Publish ``message`` exactly (headers and body) to ``topic`` through the proxy.

    Raises:
        BrokerError: the proxy or its broker did not accept it (or could not be reached).
        MicroError: the proxy refused it (401, 403 for a topic not allowed, 413).
    """
    body = _encode(_Frame(dict(message.header), bytes(message.body)))
    try:
        await link.request(
            "POST",
            "/broker",
            params={"topic": topic, "frame": "1"},
            body=body,
            timeout=timeout,
            what=f"publish to {topic}",
        )
    except MicroError as exc:
        raise broker_error(exc) from exc


def _honest(capabilities: Iterable[str]) -> frozenset[str]:
    """What a subscription through the proxy keeps of its broker's capabilities."""
    return frozenset(capabilities) & CAPABILITIES - {"dead_letter"}


class _ProxyEvent(BaseEvent):
    """A pushed frame; ack and nack answer on the socket it came on."""

    __slots__ = ("_frame_id", "_sub", "_ws")

    def __init__(
        self,
        sub: _ProxySubscription,
        ws: aiohttp.ClientWebSocketResponse,
        message: Message,
        frame_id: str,
    ) -> None:
        super().__init__(sub.topic, message)
        self._sub = sub
        self._ws = ws
        self._frame_id = frame_id

    async def _ack(self) -> None:
        await self._answer("Ack")

    async def _nack(self, requeue: bool) -> None:
        await self._answer("Nack" if requeue else "Ack")  # no dead-letter word: drop it

    async def _answer(self, word: str) -> None:
        if not self._frame_id:
            return  # a frame without an id is not waiting for an answer
        try:
            await self._ws.send_str(f'{{"{word}":{_encode(self._frame_id).decode()}}}')
        except (aiohttp.ClientError, OSError, RuntimeError) as exc:
            detail = (
                f"{word.lower()} of {self.id or self._frame_id} on {self.topic}: the socket to "
                f"the proxy at {self._sub.broker.link.url} is gone ({exc or type(exc).__name__}); "
                "the proxy's broker redelivers it if it redelivers"
            )
            raise BrokerError(detail, id=ERROR_ID) from exc


class _ProxySubscription(Subscription):
    """One WebSocket to ``/broker`` at a time, opened again when it ends."""

    def __init__(
        self,
        broker: ProxyBroker,
        topic: str,
        handler: Handler,
        queue: str | None,
        auto_ack: bool,
    ) -> None:
        self.broker = broker
        self.topic = topic
        self.queue = queue
        self.handler = handler
        self.auto_ack = auto_ack
        self._params = {"topic": topic, "ack": "client"}
        if queue:
            self._params["queue"] = queue
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None
        self._delivery: asyncio.Future[bool] | None = None
        self._pending: aiohttp.WSMessage | None = None
        self._stopping = False

    def __repr__(self) -> str:
        return f"<proxy subscription {self.topic} queue={self.queue!r}>"

    async def open(self) -> None:
        """Open the first socket (its failure or refusal is the subscribe's) and serve it."""
        ws = await self.broker.link.websocket("/broker", params=self._params)
        try:
            self._pending = await self._refusal(ws)
        except BaseException:
            with contextlib.suppress(Exception):
                await ws.close()
            raise
        self._ws = ws
        self._task = asyncio.create_task(self._run(), name=f"micro-proxy-sub-{self.topic}")

    async def _refusal(self, ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage | None:
        """Raise the proxy's refusal if it comes at once; a frame that came instead."""
        try:
            msg = await ws.receive(timeout=REFUSAL_WAIT)
        except TimeoutError:
            return None  # nothing to say: the subscription is in place
        if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            error = _error_of(msg.data)
            if error is None:
                return msg
            raise error
        code = ws.close_code or 0
        if 4000 <= code < 5000:
            raise self.broker.link.closed(code, str(msg.extra or ""))
        raise self.broker.link.lost(ConnectionError(_why(ws, msg)))

    async def unsubscribe(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self.broker._subs.discard(self)
        delivery = self._delivery
        if delivery is not None:  # the handler in flight finishes (and answers) first
            await asyncio.wait([delivery])
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            ws = self._ws
            if ws is None:
                ws = await self._reopen(failures)
                failures += 1
                if ws is None:
                    continue
                log.info("proxy broker: subscription to %s is back", self.topic)
                failures = 0
            why = await self._serve(ws)
            self._ws = None
            with contextlib.suppress(Exception):
                await ws.close()
            refused = ws.close_code is not None and 4400 <= ws.close_code < 4500
            if refused and ws.close_code != 4429:
                failures = max(failures, 6)  # the proxy refuses us: ask again slowly
                log.error(
                    "proxy broker: the proxy refused the subscription to %s: %s", self.topic, why
                )
            elif not self._stopping:
                log.warning(
                    "proxy broker: subscription to %s at %s lost (%s); subscribing again",
                    self.topic,
                    self.broker.link.url,
                    why,
                )

    async def _reopen(self, failures: int) -> aiohttp.ClientWebSocketResponse | None:
        delay = min(RECONNECT_MAX, RECONNECT_MIN * 2**failures) * (0.5 + random.random() / 2)
        await asyncio.sleep(delay)
        if self._stopping:
            return None
        try:
            self._ws = await self.broker.link.websocket("/broker", params=self._params)
        except MicroError as exc:
            level = logging.WARNING if failures in (0, 5) else logging.DEBUG
            log.log(
                level, "proxy broker: subscribing to %s again failed: %s", self.topic, exc.detail
            )
            return None
        return self._ws

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> str:
        """Deliver the socket's frames one by one until it ends; returns why it ended."""
        frames: asyncio.Queue[aiohttp.WSMessage] = asyncio.Queue()
        if self._pending is not None:
            frames.put_nowait(self._pending)
            self._pending = None
        reader = asyncio.create_task(_read(ws, frames))
        try:
            while True:
                msg = await frames.get()
                if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    return _why(ws, msg)
                event = self._event(ws, msg.data)
                if event is None or self._stopping:
                    continue
                self._delivery = delivery = asyncio.ensure_future(
                    deliver(self.handler, event, auto_ack=self.auto_ack)
                )
                try:
                    await asyncio.shield(delivery)
                finally:
                    self._delivery = None
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    def _event(self, ws: aiohttp.ClientWebSocketResponse, data: str | bytes) -> _ProxyEvent | None:
        try:
            frame = _decode_frame(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            error = _error_of(data)
            if error is not None:
                log.error("proxy broker: subscription to %s: %s", self.topic, error.detail)
            else:
                log.warning("proxy broker: skipped a malformed frame on %s", self.topic)
            return None
        return _ProxyEvent(self, ws, Message(frame.header or {}, frame.body), frame.id)


async def _read(ws: aiohttp.ClientWebSocketResponse, out: asyncio.Queue[aiohttp.WSMessage]) -> None:
    """Receive (answering pings) while a handler runs; the closing message ends it."""
    while True:
        msg = await ws.receive()
        out.put_nowait(msg)
        if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            return


def _why(ws: aiohttp.ClientWebSocketResponse, msg: aiohttp.WSMessage) -> str:
    code = ws.close_code
    reason = str(msg.extra) if msg.type is aiohttp.WSMsgType.CLOSE and msg.extra else ""
    if code is None:
        return f"connection lost: {ws.exception() or msg.type.name.lower()}"
    return f"closed {code}{': ' + reason if reason else ''}"


def _error_of(data: str | bytes) -> MicroError | None:
    """The error of a ``{"error": {...}}`` frame, None for anything else."""
    try:
        raw: Any = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return None
    if isinstance(raw, dict) and isinstance(raw.get("error"), dict):
        return MicroError.parse(msgspec.json.encode(raw["error"]))
    return None
