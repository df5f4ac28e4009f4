"""Redis broker: Streams with consumer groups (at-least-once) or pub/sub (at-most-once).

    broker = RedisBroker(address="redis://127.0.0.1:6379")                  # Streams
    broker = RedisBroker(address="127.0.0.1:6379", streams=False)           # pub/sub

Streams mode (the default): ``publish`` is one ``XADD <prefix><topic>`` (``MAXLEN ~`` when
``maxlen`` is set) of ``{"header": JSON, "body": bytes}``. A subscription is a consumer in a
consumer group: the group named ``queue`` (members share entries; the group persists) or a
group of its own (broadcast, removed on unsubscribe), created at the stream's end. A handler's
success XACKs; a failure leaves the entry pending and this consumer XCLAIMs it again after the
backoff delay; entries of a consumer that died are XAUTOCLAIMed by a live member after
``claim_idle`` seconds. After ``max_deliver`` deliveries (or at once, for an entry micro did not
write) the entry is moved to ``<key>:dlq`` together with the reason.

Pub/sub mode: ``PUBLISH <prefix><topic>`` of go-micro's broker message JSON
(``{"Header": {...}, "Body": "<base64>"}``); broadcast only, no queue groups, nothing stored.
See ``docs/broker-redis.md`` for the exact guarantees.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, cast

import msgspec
import redis.asyncio as aioredis
import redis.exceptions

from micro.broker import Broker, BrokerError, Handler, Message, Subscription
from micro.broker._common import AtMostOnceEvent, check_retries, deliver_at_most_once
from micro.broker._redis_streams import StreamOptions, StreamSubscription, call, encode, failing

__all__ = ["RedisBroker", "RedisPubSubEvent"]

log = logging.getLogger("micro.broker.redis")

DEFAULT_ADDRESS = "redis://127.0.0.1:6379"


class _Envelope(msgspec.Struct):
    """go-micro's ``broker.Message`` as its JSON marshaler writes it (Body base64)."""

    Header: dict[str, str] = {}
    Body: bytes = b""


_envelope_encoder = msgspec.json.Encoder()
_envelope_decoder = msgspec.json.Decoder(_Envelope)


def parse_url(address: str) -> str:
    """``host:port`` or a ``redis://`` / ``rediss://`` / ``unix://`` URL -> URL."""
    address = address.strip()
    if not address or "," in address:
        raise BrokerError(
            f"RedisBroker takes one server address, got {address!r}", id="go.micro.broker"
        )
    return address if "://" in address else f"redis://{address}"


class RedisPubSubEvent(AtMostOnceEvent):
    """A pub/sub delivery: at-most-once, so ``ack`` and ``nack`` do nothing."""

    __slots__ = ()


class PubSubSubscription(Subscription):
    """A Redis pub/sub channel subscription on its own connection."""

    queue = None

    def __init__(self, client: aioredis.Redis, channel: str, topic: str, handler: Handler):
        self.topic = topic
        self._channel = channel
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._handler = handler
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._busy = False

    async def start(self) -> None:
        """Subscribe (confirmed by the server) and start receiving."""
        await self._pubsub.subscribe(self._channel)
        await self._pubsub.get_message(timeout=1.0)  # the subscribe confirmation
        self._task = asyncio.create_task(self._run(), name=f"micro-redis-ps:{self._channel}")

    async def _run(self) -> None:
        while not self._stopping:
            try:
                raw = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                log.warning("pub/sub on %s failed, retrying: %r", self._channel, exc)
                await asyncio.sleep(0.5)
                continue
            if raw is None or raw.get("type") != "message":
                continue
            self._busy = True
            try:
                await self._deliver(raw["data"])
            finally:
                self._busy = False

    async def _deliver(self, data: bytes) -> None:
        try:
            envelope = _envelope_decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.error("dropped an undecodable message on %s: %s", self._channel, exc)
            return
        event = RedisPubSubEvent(self.topic, Message(envelope.Header, envelope.Body))
        await deliver_at_most_once(self._handler, event, engine="pub/sub", logger=log)

    async def unsubscribe(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            if not self._busy:
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        try:
            await self._pubsub.aclose()
        except Exception as exc:  # never raises
            log.debug("closing pub/sub failed: %r", exc)


class RedisBroker(Broker):
    """A broker on Redis Streams (durable, acknowledged) or Redis pub/sub.

    Args:
        address: ``host:port`` or a ``redis://`` URL (default the local server).
        streams: use Streams and consumer groups; ``False``: pub/sub (broadcast only).
        prefix: prepended to the topic to make the stream key / channel.
        maxlen: Streams: trim each stream to about this many entries (``MAXLEN ~``);
            trimming can remove entries no group has read yet. ``None`` keeps everything.
        max_deliver: Streams: deliveries before a failing entry is dead-lettered.
        backoff: Streams: retry delays in seconds, one per failed delivery (the last repeats).
        claim_idle: Streams: seconds an entry may stay unacknowledged before another member
            takes it over (the consumer is presumed dead); longer than any handler runs.
        batch: Streams: entries read per XREADGROUP.
        dlq_suffix: Streams: dead letters go to the stream ``<key><dlq_suffix>``.
        connect_timeout: seconds to wait for a connection.
    """

    name = "redis"

    def __init__(
        self,
        *,
        address: str = DEFAULT_ADDRESS,
        streams: bool = True,
        prefix: str = "",
        maxlen: int | None = None,
        max_deliver: int = 5,
        backoff: Sequence[float] = (0.5, 2.0, 10.0),
        claim_idle: float = 30.0,
        batch: int = 100,
        dlq_suffix: str = ":dlq",
        connect_timeout: float = 5.0,
    ) -> None:
        check_retries(max_deliver, backoff)
        if claim_idle <= 0 or batch < 1 or (maxlen is not None and maxlen < 1):
            raise ValueError("claim_idle, batch and maxlen must be positive")
        self._url = parse_url(address)
        self._streams = streams
        self.capabilities = frozenset(
            {"redelivers", "durable", "ordered", "dead_letter"} if streams else {"ordered"}
        )
        self._prefix = prefix
        self._maxlen = maxlen
        self._options = StreamOptions(
            max_deliver=max_deliver,
            backoff=tuple(backoff),
            claim_idle=claim_idle,
            batch=batch,
            dlq_suffix=dlq_suffix,
        )
        self._connect_timeout = connect_timeout
        self._redis: aioredis.Redis | None = None
        self._subs: set[StreamSubscription | PubSubSubscription] = set()

    @property
    def address(self) -> str:
        return self._url

    @property
    def streams(self) -> bool:
        """True when publishing to and consuming from Streams."""
        return self._streams

    def key(self, topic: str) -> str:
        """The stream key (or pub/sub channel) of ``topic``."""
        return self._prefix + topic

    async def connect(self) -> None:
        if self._redis is not None:
            return
        client = aioredis.Redis.from_url(
            self._url,
            socket_connect_timeout=self._connect_timeout,
            socket_timeout=self._options.block_ms / 1000 + 10.0,
            client_name="micro-broker",
        )
        try:
            with failing(f"cannot connect to Redis at {self._url}"):
                await call(client.ping())
        except BaseException:  # whatever ended the ping, leave no half-open client
            await client.aclose()
            raise
        self._redis = client

    async def disconnect(self) -> None:
        for sub in list(self._subs):
            await sub.unsubscribe()
        self._subs.clear()
        client, self._redis = self._redis, None
        if client is not None:
            try:
                await client.aclose()
            except Exception as exc:  # never raises
                log.debug("closing Redis failed: %r", exc)

    def _client(self) -> aioredis.Redis:
        if self._redis is None:
            raise BrokerError("Redis broker is not connected", id="go.micro.broker")
        return self._redis

    async def publish(self, topic: str, message: Message) -> None:
        client = self._client()
        with failing(f"publish to {topic!r} was not accepted"):
            if self._streams:
                fields = encode(message)
                await call(client.xadd(self.key(topic), cast(Any, fields), maxlen=self._maxlen))
            else:
                envelope = _Envelope(Header=message.header, Body=message.body)
                await call(client.publish(self.key(topic), _envelope_encoder.encode(envelope)))

    async def subscribe(
        self,
        topic: str,
        handler: Handler,
        *,
        queue: str | None = None,
        auto_ack: bool = True,
    ) -> Subscription:
        client = self._client()
        if not topic:
            raise BrokerError("empty topic", id="go.micro.broker")
        sub: StreamSubscription | PubSubSubscription
        if self._streams:
            sub = StreamSubscription(
                client,
                self.key(topic),
                topic,
                queue,
                handler,
                auto_ack=auto_ack,
                options=self._options,
            )
        elif queue is not None:
            raise BrokerError(
                "Redis pub/sub has no queue groups; use streams=True for queue=",
                id="go.micro.broker",
            )
        else:
            sub = PubSubSubscription(client, self.key(topic), topic, handler)
        with failing(f"cannot subscribe to {topic!r}"):
            await sub.start()
        self._subs.add(sub)
        return sub
