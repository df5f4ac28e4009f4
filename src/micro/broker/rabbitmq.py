"""RabbitMQ broker (aio-pika): durable queue groups, confirms, ack/nack, dead letters.

    async with RabbitmqBroker(address="amqp://guest:guest@127.0.0.1:5672/") as broker:
        await broker.subscribe("user.created", handle, queue="mailer")
        await broker.publish("user.created", Message({"Micro-Id": "1"}, b"{}"))

Layout on the server (``exchange`` defaults to ``micro``):

- a durable **topic exchange** ``<exchange>``; the micro topic is the routing key, so AMQP
  wildcards (``*`` one word, ``#`` any words) work in subscribe topics;
- a queue group ``q`` on topic ``t`` is the durable **quorum queue** ``<exchange>.<t>.<q>``
  (it outlives its members: messages wait for the next one) with ``x-delivery-limit`` and a
  dead-letter queue ``<exchange>.<t>.<q>.dlq`` reached through the direct exchange
  ``<exchange>.dlx``;
- a broadcast subscriber has its own exclusive, auto-delete classic queue.

Publishing waits for the publisher confirm and sends persistent messages. A message that no
queue is bound for is dropped by RabbitMQ (there is nobody to broadcast to); with
``mandatory=True`` such a publish raises :class:`BrokerError` instead. See
docs/broker-rabbitmq.md for the guarantees.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from typing import Any

import aio_pika
import aio_pika.abc
import aiormq.exceptions
from aio_pika.exceptions import AMQPException

from micro.broker import Broker, BrokerError, Handler, Message, Subscription
from micro.broker import _rabbitmq_wire as wire
from micro.broker._common import BaseEvent, deliver
from micro.errors import translate

__all__ = ["RabbitmqBroker", "RabbitmqEvent", "RabbitmqSubscription"]

log = logging.getLogger("micro.broker.rabbitmq")

# What aio-pika/aiormq raise for a lost connection, a closed channel or a refused command.
_DRIVER_ERRORS = (AMQPException, aiormq.exceptions.AMQPError, ConnectionError, OSError)


def _failing(what: str) -> contextlib.AbstractContextManager[None]:
    """RabbitMQ failures in the block as :class:`BrokerError` ("rabbitmq: <what>: ...")."""
    return translate(BrokerError, f"rabbitmq: {what}", driver_errors=_DRIVER_ERRORS)


class RabbitmqBroker(Broker):
    """A broker on RabbitMQ through aio-pika's robust (self-reconnecting) connection.

    Args:
        address: ``amqp://user:pass@host:port/vhost`` or ``host:port`` (guest/guest).
        exchange: the topic exchange's name; queue names are prefixed with it.
        prefetch: unacknowledged messages in flight per subscription (AMQP QoS).
        max_deliveries: deliveries of one message to a queue group before it is
            dead-lettered (a failed handler and a crashed member both count); ``0`` means
            unlimited. Broadcast subscribers drop (and log) the message instead.
        dead_letter: give each queue group a dead-letter queue (``<queue>.dlq``).
        mandatory: an unroutable publish (no queue bound to the topic) raises.
        publish_timeout: seconds to wait for the publisher confirm.
        connect_timeout: seconds to wait for the first connection.
        reconnect_interval: seconds between attempts after the connection is lost; channels,
            queues, bindings and consumers are restored when it is back.
    """

    name = "rabbitmq"
    capabilities = frozenset({"redelivers", "durable", "ordered", "dead_letter"})

    def __init__(
        self,
        *,
        address: str = wire.DEFAULT_ADDRESS,
        exchange: str = "micro",
        prefetch: int = 64,
        max_deliveries: int = 5,
        dead_letter: bool = True,
        mandatory: bool = False,
        publish_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        reconnect_interval: float = 1.0,
    ) -> None:
        if prefetch < 1 or max_deliveries < 0:
            raise BrokerError("rabbitmq: prefetch must be >= 1 and max_deliveries >= 0")
        self._url = wire.amqp_url(address)
        self.exchange_name = wire.check_exchange(exchange)
        self.prefetch = prefetch
        self.max_deliveries = max_deliveries
        self.dead_letter = dead_letter
        self.mandatory = mandatory
        self.publish_timeout = publish_timeout
        self.connect_timeout = connect_timeout
        self.reconnect_interval = reconnect_interval
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._subs: set[RabbitmqSubscription] = set()
        self._lock = asyncio.Lock()

    @property
    def address(self) -> str:
        return self._url

    @property
    def dlx_name(self) -> str:
        """The direct exchange dead letters are routed through."""
        return f"{self.exchange_name}.dlx"

    async def connect(self) -> None:
        async with self._lock:
            if self._connection is not None:
                return
            with _failing(f"cannot connect to {self._safe_url}"):
                connection = await aio_pika.connect_robust(self._url, timeout=self.connect_timeout)
            try:
                self._exchange = await self._declare_exchanges(connection)
            except BaseException:
                await connection.close()
                raise
            self._connection = connection

    async def _declare_exchanges(
        self, connection: aio_pika.abc.AbstractRobustConnection
    ) -> aio_pika.abc.AbstractExchange:
        with _failing("cannot declare exchange"):
            channel = await connection.channel(
                publisher_confirms=True, on_return_raises=self.mandatory
            )
            exchange = await channel.declare_exchange(
                self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
            )
            if self.dead_letter:
                await channel.declare_exchange(
                    self.dlx_name, aio_pika.ExchangeType.DIRECT, durable=True
                )
        return exchange

    @property
    def _safe_url(self) -> str:
        """The URL without its password, for messages."""
        head, _, tail = self._url.rpartition("@")
        return f"{head.partition('://')[0]}://***@{tail}" if head else self._url

    async def disconnect(self) -> None:
        for sub in list(self._subs):
            await sub.unsubscribe()
        connection, self._connection, self._exchange = self._connection, None, None
        if connection is not None:
            with contextlib.suppress(Exception):  # disconnect never raises
                await connection.close()

    async def publish(self, topic: str, message: Message) -> None:
        exchange = self._exchange
        if exchange is None:
            raise BrokerError("rabbitmq: publish before connect")
        wire.check_name("topic", topic)
        outgoing = aio_pika.Message(
            message.body,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            **wire.to_amqp(message.header),
        )
        try:
            await exchange.publish(
                outgoing, topic, mandatory=self.mandatory, timeout=self.publish_timeout
            )
        except aiormq.exceptions.PublishError as exc:
            raise BrokerError(f"rabbitmq: publish to {topic!r}: no queue is bound") from exc
        except aiormq.exceptions.DeliveryError as exc:
            raise BrokerError(f"rabbitmq: publish to {topic!r} was nacked") from exc
        except TimeoutError as exc:
            raise BrokerError(f"rabbitmq: no confirm for {topic!r} in time") from exc
        except (*_DRIVER_ERRORS, RuntimeError) as exc:
            raise BrokerError(f"rabbitmq: publish to {topic!r} failed: {exc!r}") from exc

    async def subscribe(
        self,
        topic: str,
        handler: Handler,
        *,
        queue: str | None = None,
        auto_ack: bool = True,
    ) -> Subscription:
        connection = self._connection
        if connection is None:
            raise BrokerError("rabbitmq: subscribe before connect")
        wire.check_name("topic", topic)
        sub = RabbitmqSubscription(self, topic, handler, queue=queue, auto_ack=auto_ack)
        await sub.start(connection)
        self._subs.add(sub)
        return sub

    def _forget(self, sub: RabbitmqSubscription) -> None:
        self._subs.discard(sub)


class RabbitmqSubscription(Subscription):
    """A consumer on its own channel; the queue depends on ``queue`` (see the module doc)."""

    def __init__(
        self,
        broker: RabbitmqBroker,
        topic: str,
        handler: Handler,
        *,
        queue: str | None,
        auto_ack: bool,
    ) -> None:
        self.topic = topic
        self.queue = queue
        self.broker = broker
        self.handler = handler
        self.auto_ack = auto_ack
        if queue is not None:
            self.queue_name = wire.group_queue(broker.exchange_name, topic, queue)
        else:
            token = uuid.uuid4().hex[:12]
            self.queue_name = wire.broadcast_queue(broker.exchange_name, topic, token)
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._queue: aio_pika.abc.AbstractQueue | None = None
        self._tag: str | None = None
        self._inflight: set[asyncio.Task[Any]] = set()
        self._failures: dict[str, int] = {}  # broadcast only: failed deliveries per message
        self._closing = False

    async def start(self, connection: aio_pika.abc.AbstractRobustConnection) -> None:
        """Open the channel, declare and bind the queue, start consuming."""
        try:
            self._channel = await connection.channel()
            await self._channel.set_qos(prefetch_count=self.broker.prefetch)
            self._queue = await self._declare(self._channel)
            await self._queue.bind(self.broker.exchange_name, routing_key=self.topic)
            self._tag = await self._queue.consume(self._on_message, no_ack=False)
        except (*_DRIVER_ERRORS, ValueError) as exc:
            await self._close_channel()
            raise BrokerError(f"rabbitmq: cannot subscribe to {self.topic!r}: {exc}") from exc

    async def _declare(self, channel: aio_pika.abc.AbstractChannel) -> aio_pika.abc.AbstractQueue:
        broker = self.broker
        if self.queue is None:
            return await channel.declare_queue(self.queue_name, exclusive=True, auto_delete=True)
        arguments: dict[str, Any] = {"x-queue-type": "quorum"}
        if broker.max_deliveries:
            # a quorum queue allows limit + 1 deliveries before dead-lettering
            arguments["x-delivery-limit"] = broker.max_deliveries - 1
        if broker.dead_letter:
            dlq_name = wire.dead_letter_queue(self.queue_name)
            dlq = await channel.declare_queue(dlq_name, durable=True)
            await dlq.bind(broker.dlx_name, routing_key=self.queue_name)
            arguments["x-dead-letter-exchange"] = broker.dlx_name
            arguments["x-dead-letter-routing-key"] = self.queue_name
        return await channel.declare_queue(self.queue_name, durable=True, arguments=arguments)

    async def _on_message(self, incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
        if self._closing:  # delivered before the cancel took effect: give it back unseen
            await _settle(incoming.nack(requeue=True))
            return
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            await self._deliver(incoming)
        finally:
            if task is not None:
                self._inflight.discard(task)

    async def _deliver(self, incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
        try:
            header = wire.from_amqp(incoming.headers, incoming.content_type, incoming.message_id)
        except ValueError as exc:
            log.error(
                "rabbitmq: undecodable message %s on %s dead-lettered: %s",
                incoming.message_id or "-",
                incoming.routing_key,
                exc,
            )
            await _settle(incoming.reject(requeue=False))
            return
        await deliver(self.handler, RabbitmqEvent(self, incoming, header), auto_ack=self.auto_ack)

    @staticmethod
    def _failure_key(event: RabbitmqEvent) -> str:
        return event.id or hashlib.sha1(event.message.body).hexdigest()

    def succeeded(self, event: RabbitmqEvent) -> None:
        """Forget the failures of a message that finally went through."""
        if self._failures:
            self._failures.pop(self._failure_key(event), None)

    def retry_allowed(self, event: RabbitmqEvent) -> bool:
        """Broadcast queues count failures here (a quorum queue counts them itself)."""
        limit = self.broker.max_deliveries
        if self.queue is not None or not limit:
            return True
        key = self._failure_key(event)
        failures = self._failures.get(key, 0) + 1
        if failures >= limit:
            self._failures.pop(key, None)
            log.error(
                "rabbitmq: message %s on %s dropped after %d failed deliveries",
                event.id or "-",
                event.topic,
                failures,
            )
            return False
        self._failures[key] = failures
        return True

    async def unsubscribe(self) -> None:
        self.broker._forget(self)
        self._closing = True
        queue, tag, self._tag = self._queue, self._tag, None
        if queue is not None and tag is not None:
            with contextlib.suppress(Exception):  # unsubscribe never raises
                await queue.cancel(tag)
        await asyncio.sleep(0)  # let already-created delivery tasks start (and see _closing)
        current = asyncio.current_task()
        while running := [t for t in self._inflight if t is not current]:
            await asyncio.gather(*running, return_exceptions=True)
        await self._close_channel()

    async def _close_channel(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            with contextlib.suppress(Exception):  # close never raises
                await channel.close()


class RabbitmqEvent(BaseEvent):
    """A delivered AMQP message; the first ack/nack settles it (later calls are no-ops).

    ``deliveries`` counts this delivery (1 the first time; from the quorum queue's
    ``x-delivery-count``), ``redelivered`` is AMQP's flag.
    """

    def __init__(
        self,
        sub: RabbitmqSubscription,
        incoming: aio_pika.abc.AbstractIncomingMessage,
        header: dict[str, str],
    ) -> None:
        count = header.pop("x-delivery-count", "")
        super().__init__(incoming.routing_key or sub.topic, Message(header, incoming.body))
        self.redelivered = bool(incoming.redelivered)
        self.deliveries = int(count) + 1 if count.isdigit() else 1 + self.redelivered
        self._sub = sub
        self._incoming = incoming

    async def _ack(self) -> None:
        self._sub.succeeded(self)
        await _settle(self._incoming.ack())

    async def _nack(self, requeue: bool) -> None:
        """Requeue (counted against ``max_deliveries``) or dead-letter now."""
        if requeue and self._sub.retry_allowed(self):
            await _settle(self._incoming.nack(requeue=True))
        else:
            await _settle(self._incoming.reject(requeue=False))


async def _settle(call: Any) -> None:
    """Await an ack/nack/reject; a closed channel means RabbitMQ will redeliver anyway."""
    try:
        await call
    except (*_DRIVER_ERRORS, RuntimeError) as exc:
        log.warning("rabbitmq: could not settle a message (it will be redelivered): %r", exc)
