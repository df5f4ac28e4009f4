"""JetStream side of the NATS broker: streams, pull consumers, ack/nak, dead letters."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import Awaitable
from dataclasses import dataclass

import nats.errors
import nats.js
import nats.js.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig

from micro.broker import BrokerError, Handler, Message
from micro.broker._common import CountedEvent, RetryingSubscription, RetryOptions
from micro.errors import translate

log = logging.getLogger("micro.broker.nats")

EPHEMERAL_IDLE = 60.0  # a crashed broadcast subscriber's consumer is removed after this long


def failing(what: str) -> contextlib.AbstractContextManager[None]:
    """NATS failures in the block as :class:`BrokerError` ("<what>: ...")."""
    return translate(BrokerError, what, id="go.micro.broker", driver_errors=(nats.errors.Error,))


@dataclass(frozen=True, slots=True)
class JetStreamOptions(RetryOptions):
    """What every JetStream subscription of one broker shares (``delay``: the nak delay)."""

    ack_wait: float
    max_ack_pending: int
    publish_timeout: float


def safe_name(prefix: str, text: str) -> str:
    """A stream/consumer name for ``text``: readable, no ``. * > space``, hash-suffixed."""
    digest = hashlib.sha1(text.encode()).hexdigest()[:8]
    clean = re.sub(r"[^A-Za-z0-9_-]", "_", text)[:48]
    return f"{prefix}{clean}-{digest}"


def check_topic(topic: str) -> None:
    """JetStream topics are subjects; a trailing ``>`` would also match the dead letters."""
    if not topic or topic.endswith(">") or " " in topic:
        raise BrokerError(
            f"JetStream topic {topic!r} must be a non-empty subject without spaces that does "
            "not end in '>' (use '*' wildcards)",
            id="go.micro.broker",
        )


async def ensure_stream(js: nats.js.JetStreamContext, subject: str, dlq_suffix: str) -> str:
    """The stream storing ``subject``: an existing one, else ``MICRO_<topic>`` created for
    ``[topic, topic + dlq_suffix]`` (a dead-letter subject maps to its topic's stream)."""
    try:
        return await js.find_stream_name_by_subject(subject)
    except nats.js.errors.NotFoundError:
        pass
    base = subject[: -len(dlq_suffix)] if dlq_suffix and subject.endswith(dlq_suffix) else subject
    check_topic(base)
    name = safe_name("MICRO_", base)
    subjects = [base, base + dlq_suffix] if dlq_suffix else [base]
    try:
        await js.add_stream(StreamConfig(name=name, subjects=subjects))
    except nats.js.errors.BadRequestError:  # raced with another creator, or subjects overlap
        try:
            return await js.find_stream_name_by_subject(subject)
        except nats.js.errors.NotFoundError:
            raise BrokerError(
                f"cannot create a JetStream stream for {subject!r}", id="go.micro.broker"
            ) from None
    return name


def _header_value(text: str) -> str:
    return " ".join(text.split())[:1000]  # NATS header values cannot hold CR/LF


class JetStreamEvent(CountedEvent):
    """A JetStream delivery; ``delivery`` counts this message's deliveries (1 the first)."""

    __slots__ = ("_msg", "_sub", "delivery", "message", "settled", "topic")

    def __init__(self, sub: JetStreamSubscription, msg: Msg, delivery: int) -> None:
        self.topic = msg.subject
        self.message = Message(dict(msg.headers) if msg.headers else {}, msg.data)
        self.delivery = delivery
        self.settled = False
        self._msg = msg
        self._sub = sub

    @property
    def label(self) -> str:
        """The message id for logs: ``Micro-Id``, else ``<stream>#<sequence>``."""
        meta = self._msg.metadata
        return self.id or f"{meta.stream}#{meta.sequence.stream}"

    async def ack(self) -> None:
        """Acknowledge (fire-and-forget to the server; a lost ack means a redelivery)."""
        if self.settled:
            return
        self.settled = True
        with failing(f"ack of {self.label} failed"):
            await self._msg.ack()


class JetStreamSubscription(RetryingSubscription[JetStreamEvent]):
    """A push consumer whose messages run the handler one at a time."""

    log = log  # the shared retry policy logs as micro.broker.nats
    _opts: JetStreamOptions

    def __init__(
        self,
        js: nats.js.JetStreamContext,
        topic: str,
        queue: str | None,
        handler: Handler,
        *,
        auto_ack: bool,
        options: JetStreamOptions,
    ) -> None:
        self.topic = topic
        self.queue = queue
        self._js = js
        self._handler = handler
        self._auto_ack = auto_ack
        self._opts = options
        self._stream = ""
        self._jsub: nats.js.JetStreamContext.PushSubscription | None = None
        self._name = ""
        self._stopping = False

    @property
    def consumer(self) -> str | None:
        """The durable consumer's name (``None`` for a broadcast subscription)."""
        return safe_name("", self.queue + "\0" + self.topic) if self.queue else None

    async def start(self) -> None:
        """Find or create the stream and the consumer, then start receiving."""
        check_topic(self.topic)
        self._stream = await ensure_stream(self._js, self.topic, self._opts.dlq_suffix)
        config = ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self._opts.ack_wait,
            max_deliver=-1,  # we count deliveries and dead-letter ourselves
            deliver_policy=DeliverPolicy.NEW,
            filter_subject=self.topic,
            max_ack_pending=self._opts.max_ack_pending,
            inactive_threshold=None if self.queue else EPHEMERAL_IDLE,
        )
        # a push consumer; the group's durable one (deliver group = queue) may exist already
        self._jsub = await self._js.subscribe(
            self.topic,
            queue=self.consumer,  # nats-py: the deliver group is the durable's name
            durable=self.consumer,
            stream=self._stream,
            config=config,
            manual_ack=True,
            cb=self._on_msg,
        )
        self._name = self.consumer or (await self._jsub.consumer_info()).name

    async def _on_msg(self, msg: Msg) -> None:
        if self._stopping:  # hand it back at once rather than after ack_wait
            await _quiet(msg.nak())
            return
        await self._deliver(msg)

    async def _deliver(self, msg: Msg) -> None:
        event = JetStreamEvent(self, msg, msg.metadata.num_delivered)
        if await self.handle(event):
            await _quiet(event.ack())

    async def retry(self, event: JetStreamEvent) -> None:
        """Ask the server to redeliver after the backoff delay for this delivery."""
        await _quiet(event._msg.nak(delay=self._opts.delay(event.delivery)))

    async def dead_letter(self, event: JetStreamEvent, reason: str) -> None:
        """Publish to ``<subject><dlq_suffix>`` (waiting for the PubAck), then terminate.
        If the dead letter cannot be stored the message is nak'ed instead: never lost."""
        msg = event._msg
        subject = msg.subject + self._opts.dlq_suffix
        headers = {
            **event.message.header,
            "Micro-Dlq-Reason": _header_value(reason),
            "Micro-Dlq-Subject": msg.subject,
            "Micro-Dlq-Deliveries": str(event.delivery),
            "Micro-Dlq-Consumer": self.consumer or "",
        }
        try:
            try:
                await self._js.publish(subject, msg.data, headers=headers)
            except (nats.errors.NoRespondersError, nats.js.errors.NoStreamResponseError):
                await ensure_stream(self._js, subject, self._opts.dlq_suffix)
                await self._js.publish(subject, msg.data, headers=headers)
        except Exception as exc:  # never lose it: redeliver instead
            log.error("cannot dead-letter %s to %s, redelivering: %r", event.label, subject, exc)
            await self.retry(event)
            return
        await _quiet(msg.term())
        log.error(
            "dead-lettered %s message %s to %s after %d deliveries: %s",
            msg.subject,
            event.label,
            subject,
            event.delivery,
            reason,
        )

    async def unsubscribe(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        jsub, self._jsub = self._jsub, None
        if jsub is None:
            return
        await _quiet(jsub.drain())  # type: ignore[no-untyped-call] # the running handler finishes; queued ones are nak'ed
        if self.queue is None:  # the broadcast consumer is this subscription's alone
            await _quiet(self._js.delete_consumer(self._stream, self._name))


async def _quiet(action: Awaitable[object]) -> None:
    """Await ``action``, logging instead of raising (acks, naks and clean-up)."""
    try:
        await action
    except Exception as exc:  # best effort by design
        log.debug("ignored: %r", exc)
