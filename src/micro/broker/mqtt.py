"""MQTT v5 broker (aiomqtt): QoS 0 or 1, shared subscriptions, headers as user properties.

    async with MqttBroker(address="127.0.0.1:1883", qos=1, client_id="mailer-1") as broker:
        await broker.subscribe("user/created", handle, queue="mailer")
        await broker.publish("user/created", Message({"Micro-Id": "1"}, b"{}"))

- **Topics** are passed through unchanged: ``user.created`` is one MQTT level, ``user/created``
  two; MQTT wildcards (``+``, ``#``) work in subscribe topics and are refused in publishes.
- **Queue groups** are shared subscriptions ``$share/<queue>/<topic>``.
- **Headers** travel as v5 user properties (``Content-Type`` also as the ContentType property).
- **QoS 1** (``qos=1``): publish waits for the PUBACK; a subscription acknowledges a message
  (in arrival order) only when its handler has finished, so a subscriber that crashes gets it
  again when its session resumes. With ``client_id`` set, each subscription has a stable
  session (``<client_id>-<hash of topic and queue>[-n]``, ``n`` for the n-th one to the same
  topic and queue in this process) kept ``session_expiry`` seconds by the server: messages
  published while it is away are delivered when it comes back.
- MQTT has **no negative acknowledgement**: a failing handler's message is logged with its id
  and acknowledged (dropped); ``nack()`` does the same.

See docs/broker-mqtt.md for the guarantees and mosquitto's limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from micro.broker import Broker, BrokerError, Handler, Message, Subscription
from micro.broker import _mqtt_wire as wire
from micro.broker._common import BaseEvent, deliver
from micro.errors import translate

__all__ = ["MqttBroker", "MqttEvent", "MqttSubscription"]

log = logging.getLogger("micro.broker.mqtt")

_V5 = aiomqtt.ProtocolVersion.V5
_RETRY_MAX = 2.0  # seconds between reconnect attempts, at most


def _failing(what: str) -> contextlib.AbstractContextManager[None]:
    """MQTT failures in the block as :class:`BrokerError` ("mqtt: <what>: ...")."""
    return translate(BrokerError, f"mqtt: {what}", driver_errors=(aiomqtt.MqttError,))


class MqttBroker(Broker):
    """A broker on an MQTT v5 server; one connection to publish, one per subscription.

    Args:
        address: ``host:port`` or ``mqtt://host:port``.
        qos: 0 (at-most-once) or 1 (at-least-once) for publishes and subscriptions.
        client_id: a stable name for this process; with ``qos=1`` it makes subscription
            sessions persistent across reconnects and restarts. Empty: random ids, sessions
            live only as long as this broker object.
        session_expiry: seconds the server keeps a QoS 1 session (and queues its messages)
            while its subscriber is away.
        concurrency: handler calls in flight per subscription.
        username, password: credentials, if the server wants them.
        keepalive: MQTT keepalive in seconds.
        timeout: seconds for connect, subscribe and a QoS 1 publish acknowledgement.
    """

    name = "mqtt"

    def __init__(
        self,
        *,
        address: str = wire.DEFAULT_ADDRESS,
        qos: int = 0,
        client_id: str = "",
        session_expiry: int = 600,
        concurrency: int = 16,
        username: str | None = None,
        password: str | None = None,
        keepalive: int = 30,
        timeout: float = 10.0,
    ) -> None:
        if qos not in (0, 1):
            raise BrokerError(f"mqtt: qos must be 0 or 1, not {qos!r}")
        if concurrency < 1 or session_expiry < 0:
            raise BrokerError("mqtt: concurrency must be >= 1 and session_expiry >= 0")
        self.host, self.port = wire.parse_address(address)
        self.qos = qos
        self.client_id = client_id
        self.session_expiry = session_expiry
        self.concurrency = concurrency
        self.timeout = timeout
        self._auth = {"username": username, "password": password}
        self.keepalive = keepalive
        # durable: QoS 1 sessions outlive the subscriber; never "redelivers" (no MQTT nack)
        self.capabilities = frozenset({"ordered", "durable"} if self.durable else {"ordered"})
        self._publisher: aiomqtt.Client | None = None
        self._subs: set[MqttSubscription] = set()
        self._lock = asyncio.Lock()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def durable(self) -> bool:
        """Whether subscriptions keep their server session when this process goes away."""
        return self.qos == 1 and bool(self.client_id) and self.session_expiry > 0

    def new_client(
        self, identifier: str, *, expiry: int = 0, clean: bool | int = True
    ) -> aiomqtt.Client:
        """An (unconnected) aiomqtt v5 client with this broker's settings.

        ``clean`` is MQTT's clean start: True, False (resume the session) or paho's
        ``MQTT_CLEAN_START_FIRST_ONLY`` (fresh at first, resumed on reconnects).
        """
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = expiry
        return aiomqtt.Client(
            self.host,
            self.port,
            identifier=identifier,
            protocol=_V5,
            clean_start=clean,  # type: ignore[arg-type]
            properties=props,
            keepalive=self.keepalive,
            timeout=self.timeout,
            **self._auth,  # type: ignore[arg-type]
        )

    async def connect(self) -> None:
        async with self._lock:
            if self._publisher is None:
                self._publisher = await self._connect_publisher()

    async def _connect_publisher(self) -> aiomqtt.Client:
        ident = f"{self.client_id or 'micro'}-pub-{uuid.uuid4().hex[:8]}"
        client = self.new_client(ident)
        with _failing(f"cannot connect to {self.address}"):
            async with asyncio.timeout(self.timeout):
                await client.__aenter__()
        return client

    async def disconnect(self) -> None:
        for sub in list(self._subs):
            await sub.stop(unsubscribe=not self.durable)
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            await _close(publisher)

    async def publish(self, topic: str, message: Message) -> None:
        if self._publisher is None:
            raise BrokerError("mqtt: publish before connect")
        wire.check_topic(topic)
        props = wire.publish_properties(message.header)
        for attempt in (1, 2):
            publisher = self._publisher
            try:
                await publisher.publish(
                    topic, message.body, qos=self.qos, properties=props, timeout=self.timeout
                )
                return
            except (aiomqtt.MqttError, OSError) as exc:
                if attempt == 2:
                    raise BrokerError(f"mqtt: publish to {topic!r} failed: {exc}") from exc
                await self._reconnect_publisher(publisher)

    async def _reconnect_publisher(self, broken: aiomqtt.Client) -> None:
        async with self._lock:
            if self._publisher is broken:  # not already replaced by a concurrent publish
                await _close(broken)
                self._publisher = await self._connect_publisher()

    async def subscribe(
        self,
        topic: str,
        handler: Handler,
        *,
        queue: str | None = None,
        auto_ack: bool = True,
    ) -> Subscription:
        if self._publisher is None:
            raise BrokerError("mqtt: subscribe before connect")
        taken = {s.index for s in self._subs if s.topic == topic and s.queue == queue}
        index = min(set(range(len(taken) + 1)) - taken)
        sub = MqttSubscription(self, topic, handler, queue=queue, auto_ack=auto_ack, index=index)
        await sub.start()
        self._subs.add(sub)
        return sub

    def _forget(self, sub: MqttSubscription) -> None:
        self._subs.discard(sub)


class MqttSubscription(Subscription):
    """One MQTT connection and session, reading one topic filter; reconnects on loss."""

    def __init__(
        self,
        broker: MqttBroker,
        topic: str,
        handler: Handler,
        *,
        queue: str | None,
        auto_ack: bool,
        index: int = 0,
    ) -> None:
        self.topic = topic
        self.queue = queue
        self.index = index
        self.filter = wire.subscription_filter(topic, queue)
        self.broker = broker
        self.handler = handler
        self.auto_ack = auto_ack
        self.qos = broker.qos
        if broker.durable:
            self.session = wire.session_id(broker.client_id, topic, queue, index)
        else:
            self.session = f"{broker.client_id or 'micro'}-{uuid.uuid4().hex[:12]}"
        expiry = broker.session_expiry if self.qos == 1 else 0
        clean = False if broker.durable else paho.MQTT_CLEAN_START_FIRST_ONLY
        self._client = broker.new_client(self.session, expiry=expiry, clean=clean)
        if self.qos == 1:
            self._client._client.manual_ack_set(True)  # PUBACK after the handler, not before
        self._acks = wire.AckOrder(self._send_ack)
        self._slots = asyncio.Semaphore(broker.concurrency)
        self._inflight: set[asyncio.Task[None]] = set()
        self._reader: asyncio.Task[None] | None = None
        self._stopped = False

    async def start(self) -> None:
        """Connect and subscribe once (errors raise), then read in the background."""
        try:
            with _failing(f"cannot subscribe to {self.filter!r}"):
                await self._connect()
        except BaseException:  # whatever ended the subscribe, leave no half-open client
            await _close(self._client)
            raise
        self._reader = asyncio.create_task(self._read_forever(), name=f"mqtt-sub {self.filter}")

    async def _connect(self) -> None:
        async with asyncio.timeout(self.broker.timeout):
            await self._client.__aenter__()
            try:
                result = await self._client.subscribe(self.filter, qos=self.qos)
            except BaseException:
                await _close(self._client)
                raise
        codes = [getattr(code, "value", code) for code in result]
        if any(code >= 0x80 for code in codes):
            await _close(self._client)
            raise aiomqtt.MqttError(f"subscription refused with reason {codes}")

    async def _read_forever(self) -> None:
        delay = 0.1
        while True:
            try:
                async for incoming in self._client.messages:
                    delay = 0.1
                    await self._slots.acquire()
                    self._spawn(incoming)
            except aiomqtt.MqttError as exc:
                log.warning("mqtt: subscription %s lost its connection: %s", self.filter, exc)
            self._acks.clear()  # the session redelivers whatever was not acknowledged
            await _close(self._client)
            while True:
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
                try:
                    await self._connect()
                    break
                except (aiomqtt.MqttError, TimeoutError, OSError) as exc:
                    log.debug("mqtt: reconnect of %s failed: %s", self.filter, exc)

    def _spawn(self, incoming: aiomqtt.Message) -> None:
        if incoming.qos > 0:
            self._acks.add(incoming.mid)
        task = asyncio.create_task(self._deliver(incoming))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _deliver(self, incoming: aiomqtt.Message) -> None:
        try:
            await deliver(self.handler, MqttEvent(self, incoming), auto_ack=self.auto_ack)
        finally:
            self._slots.release()

    def _send_ack(self, mid: int) -> None:
        self._client._client.ack(mid, 1)

    async def stop(self, *, unsubscribe: bool) -> None:
        """Stop reading, let in-flight handlers finish, then leave (or keep) the session."""
        if self._stopped:
            return
        self._stopped = True
        self.broker._forget(self)
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        current = asyncio.current_task()
        await asyncio.gather(*(t for t in self._inflight if t is not current))
        if unsubscribe:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError, OSError):
                await self._client.unsubscribe(self.filter, timeout=self.broker.timeout)
        await _close(self._client)

    async def unsubscribe(self) -> None:
        """Stop delivery. A durable session (stable ``client_id``, QoS 1) is kept, not ended."""
        await self.stop(unsubscribe=not self.broker.durable)


class MqttEvent(BaseEvent):
    """A delivered MQTT message. ``ack`` and ``nack`` both send the PUBACK (QoS 1)."""

    def __init__(self, sub: MqttSubscription, incoming: aiomqtt.Message) -> None:
        header = wire.header_from(incoming.properties)
        super().__init__(incoming.topic.value, Message(header, bytes(incoming.payload)))
        self.qos = incoming.qos
        self.retain = bool(incoming.retain)
        self._sub = sub
        self._mid = incoming.mid

    async def _ack(self) -> None:
        if self.qos > 0:
            self._sub._acks.done(self._mid)

    async def _nack(self, requeue: bool) -> None:
        """MQTT has no negative acknowledgement: the message is logged and dropped."""
        log.warning(
            "mqtt: message %s on %s nacked; MQTT cannot redeliver it, dropped",
            self.id or f"mid={self._mid}",
            self.topic,
        )
        await self._ack()


async def _close(client: aiomqtt.Client) -> None:
    """Disconnect, ignoring a connection that is already gone."""
    with contextlib.suppress(Exception):  # close never raises
        await asyncio.wait_for(client.__aexit__(None, None, None), 5)
