"""NATS broker: core subjects (at-most-once) or JetStream durable consumers (at-least-once).

    broker = NatsBroker(address="nats://127.0.0.1:4222")                   # core NATS
    broker = NatsBroker(address="127.0.0.1:4222", jetstream=True, max_deliver=5)

Core mode publishes to the subject named by the topic; a subscription is a NATS subscription,
with ``queue`` as the NATS queue group. Delivery is at-most-once and ``ack``/``nack`` do
nothing. JetStream mode stores every publish in a stream (the existing one whose subjects cover
the topic, or ``MICRO_<topic>`` with subjects ``[topic, topic.dlq]``, created on first use) and
waits for the server's PubAck. A subscription is a push consumer: the durable consumer named
after ``queue`` (members share its messages; it survives restarts) or an ephemeral one per
subscription (broadcast). A handler's success acks, a failure naks with a growing delay, and
after ``max_deliver`` deliveries the message goes to ``<subject>.dlq`` and is terminated.
Headers travel as NATS headers. See ``docs/broker-nats.md`` for the exact guarantees.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import nats
import nats.errors
import nats.js
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription

from micro._nats import Lease, Options, connect, parse_servers, settle
from micro.broker import Broker, BrokerError, Handler, Message, Subscription
from micro.broker._common import AtMostOnceEvent, check_retries, deliver_at_most_once
from micro.broker._nats_js import JetStreamOptions, JetStreamSubscription, ensure_stream, failing

__all__ = ["NatsBroker", "NatsEvent"]

log = logging.getLogger("micro.broker.nats")

DEFAULT_ADDRESS = "nats://127.0.0.1:4222"


class NatsEvent(AtMostOnceEvent):
    """A core NATS delivery: at-most-once, so ``ack`` and ``nack`` do nothing."""

    __slots__ = ()


class CoreSubscription(Subscription):
    """A core NATS subscription; handlers run one at a time, in arrival order."""

    def __init__(self, topic: str, queue: str | None, handler: Handler) -> None:
        self.topic = topic
        self.queue = queue
        self._handler = handler
        self._sub: NatsSubscription | None = None

    async def start(self, nc: NatsClient) -> None:
        self._sub = await nc.subscribe(self.topic, queue=self.queue or "", cb=self._on_msg)
        await settle(nc)  # in place at the server before subscribe returns

    async def _on_msg(self, msg: Msg) -> None:
        message = Message(dict(msg.headers) if msg.headers else {}, msg.data)
        event = NatsEvent(msg.subject, message)
        await deliver_at_most_once(self._handler, event, engine="core NATS", logger=log)

    async def unsubscribe(self) -> None:
        sub, self._sub = self._sub, None
        if sub is None:
            return
        try:
            # in-flight and already received messages are handled first
            await sub.drain()  # type: ignore[no-untyped-call]
        except Exception as exc:  # never raises: the connection may already be gone
            log.debug("drain of %s failed: %r", self.topic, exc)


class NatsBroker(Broker):
    """A broker on NATS (core subjects) or NATS JetStream (durable, acknowledged).

    Args:
        address: comma list of ``host:port`` or ``nats://`` URLs (default the local server).
        jetstream: store messages in JetStream streams and deliver at-least-once.
        ack_wait: JetStream: seconds a delivery may stay unacknowledged before the server
            redelivers it (to any member of the group).
        max_deliver: JetStream: deliveries before a failing message is dead-lettered.
        backoff: JetStream: nak delays in seconds, one per failed delivery (the last repeats).
        dlq_suffix: JetStream: dead letters go to ``<subject><dlq_suffix>``.
        max_ack_pending: JetStream: unacknowledged messages a consumer may have out.
        connect_timeout: seconds to wait for the first connection.
        publish_timeout: JetStream: seconds to wait for a PubAck.
        name: the client connection name shown by the server.
    """

    name = "nats"

    def __init__(
        self,
        *,
        address: str = DEFAULT_ADDRESS,
        jetstream: bool = False,
        ack_wait: float = 30.0,
        max_deliver: int = 5,
        backoff: Sequence[float] = (0.5, 2.0, 10.0),
        dlq_suffix: str = ".dlq",
        max_ack_pending: int = 1000,
        connect_timeout: float = 5.0,
        publish_timeout: float = 5.0,
        name: str = "micro",
    ) -> None:
        check_retries(max_deliver, backoff)
        try:
            self._servers = parse_servers(address)
        except ValueError as exc:
            raise BrokerError(str(exc), id="go.micro.broker") from None
        self._jetstream = jetstream
        self.capabilities = frozenset(
            {"redelivers", "durable", "ordered", "dead_letter"} if jetstream else {"ordered"}
        )
        self._options = JetStreamOptions(
            ack_wait=ack_wait,
            max_deliver=max_deliver,
            backoff=tuple(backoff),
            dlq_suffix=dlq_suffix,
            max_ack_pending=max_ack_pending,
            publish_timeout=publish_timeout,
        )
        self._connect_options = Options(
            servers=tuple(self._servers), name=name, connect_timeout=connect_timeout
        )
        self._lease: Lease | None = None
        self._nc: NatsClient | None = None
        self._js: nats.js.JetStreamContext | None = None
        self._subs: set[CoreSubscription | JetStreamSubscription] = set()
        self._lock = asyncio.Lock()
        self._closing = False

    @property
    def address(self) -> str:
        return ",".join(self._servers)

    @property
    def jetstream(self) -> bool:
        """True when publishing to and consuming from JetStream."""
        return self._jetstream

    async def connect(self) -> None:
        async with self._lock:
            if self._nc is not None and not self._nc.is_closed:
                return
            self._closing = False
            with failing(f"cannot connect to NATS at {self.address}"):
                lease = await connect(self._connect_options, self)
            self._lease, self._nc = lease, lease.nc
            self._js = lease.nc.jetstream(timeout=self._options.publish_timeout)

    async def on_disconnect(self) -> None:
        if not self._closing:
            log.warning("NATS %s: disconnected, reconnecting", self.address)

    async def on_reconnect(self) -> None:
        log.info("NATS %s: reconnected", self.address)

    async def disconnect(self) -> None:
        self._closing = True
        for sub in list(self._subs):
            await sub.unsubscribe()
        self._subs.clear()
        nc, self._nc, self._js = self._nc, None, None
        lease, self._lease = self._lease, None
        if nc is not None and nc.is_connected:
            try:  # what this broker published is at the server before it lets go
                await settle(nc)
            except Exception as exc:  # never raises
                log.debug("NATS flush failed: %r", exc)
        if lease is not None:
            await lease.release()

    def _client(self) -> tuple[NatsClient, nats.js.JetStreamContext]:
        if self._nc is None or self._js is None or self._nc.is_closed:
            raise BrokerError("NATS broker is not connected", id="go.micro.broker")
        return self._nc, self._js

    async def publish(self, topic: str, message: Message) -> None:
        nc, js = self._client()
        headers = message.header or None
        with failing(f"publish to {topic!r} was not accepted"):
            if not self._jetstream:
                await nc.publish(topic, message.body, headers=headers)
                return
            try:
                await js.publish(topic, message.body, headers=headers)
            except (
                nats.errors.NoRespondersError,
                nats.js.errors.NoStreamResponseError,
            ):  # no stream yet: create it, publish again
                await ensure_stream(js, topic, self._options.dlq_suffix)
                await js.publish(topic, message.body, headers=headers)

    async def subscribe(
        self,
        topic: str,
        handler: Handler,
        *,
        queue: str | None = None,
        auto_ack: bool = True,
    ) -> Subscription:
        nc, js = self._client()
        sub: CoreSubscription | JetStreamSubscription
        with failing(f"cannot subscribe to {topic!r}"):
            if self._jetstream:
                sub = JetStreamSubscription(
                    js, topic, queue, handler, auto_ack=auto_ack, options=self._options
                )
                await sub.start()
            else:
                sub = CoreSubscription(topic, queue, handler)
                await sub.start(nc)
        self._subs.add(sub)
        return sub
