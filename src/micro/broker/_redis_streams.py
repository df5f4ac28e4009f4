"""Redis Streams side of the Redis broker: consumer groups, acks, retries, reclaim, DLQ.

An entry is ``{"header": <JSON object of str>, "body": <bytes>}`` ("header" may be missing).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import msgspec
import redis.asyncio as aioredis
import redis.exceptions

from micro.broker import BrokerError, Handler, Message
from micro.broker._common import CountedEvent, RetryingSubscription, RetryOptions
from micro.errors import translate

log = logging.getLogger("micro.broker.redis")

RETRY_PAUSE = 0.5  # after a failed read (connection lost)
Fields = dict[bytes, bytes]

_header_encoder = msgspec.json.Encoder()
_header_decoder = msgspec.json.Decoder(dict[str, str])


def failing(what: str) -> contextlib.AbstractContextManager[None]:
    """Redis failures in the block as :class:`BrokerError` ("<what>: ...")."""
    return translate(
        BrokerError, what, id="go.micro.broker", driver_errors=(redis.exceptions.RedisError,)
    )


async def call(result: Any) -> Any:
    """Await a redis-py asyncio call (its stubs type results as ``X | Awaitable[X]``)."""
    return await result


@dataclass(frozen=True, slots=True)
class StreamOptions(RetryOptions):
    """What every stream subscription of one broker shares."""

    claim_idle: float
    batch: int

    @property
    def block_ms(self) -> int:
        """How long one XREADGROUP waits: short enough to reclaim on time."""
        return max(10, int(min(self.claim_idle / 2, 2.0) * 1000))


def encode(message: Message) -> dict[str, bytes]:
    """The stream entry fields for ``message``."""
    if not message.header:
        return {"body": message.body}
    return {"header": _header_encoder.encode(message.header), "body": message.body}


def decode(fields: Fields) -> Message:
    """The message in an entry; ``ValueError`` for an entry micro did not write."""
    body = fields.get(b"body")
    if body is None:
        raise ValueError("not a micro entry: no 'body' field")
    raw = fields.get(b"header")
    try:
        header = _header_decoder.decode(raw) if raw else {}
    except msgspec.DecodeError as exc:
        raise ValueError(f"bad 'header' field: {exc}") from None
    return Message(header, body)


def consumer_name() -> str:
    """A consumer name unique to this subscription: ``<host>-<pid>-<random>``."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class RedisEvent(CountedEvent):
    """A stream delivery; ``delivery`` counts this entry's deliveries (1 the first)."""

    __slots__ = ("_sub", "delivery", "entry_id", "fields", "message", "settled", "topic")

    _sub: StreamSubscription

    def __init__(
        self, sub: StreamSubscription, entry_id: bytes, fields: Fields, delivery: int
    ) -> None:
        self.topic = sub.topic
        self.entry_id = entry_id
        self.fields = fields
        self.delivery = delivery
        self.settled = False
        self.message = Message()
        self._sub = sub

    @property
    def label(self) -> str:
        """The message id for logs: ``Micro-Id``, else the stream entry id."""
        return self.id or self.entry_id.decode()

    async def ack(self) -> None:
        """XACK the entry now."""
        if not self.settled:
            self.settled = True
            await self._sub.ack_now(self.entry_id)


class StreamSubscription(RetryingSubscription[RedisEvent]):
    """A consumer in a consumer group, and the task that reads and runs the handler."""

    log = log  # the shared retry policy logs as micro.broker.redis
    _opts: StreamOptions

    def __init__(
        self,
        client: aioredis.Redis,
        key: str,
        topic: str,
        queue: str | None,
        handler: Handler,
        *,
        auto_ack: bool,
        options: StreamOptions,
    ) -> None:
        self.topic = topic
        self.queue = queue
        self.key = key
        self.group = queue or f"micro-broadcast-{uuid.uuid4().hex}"
        self.consumer = consumer_name()
        self._redis = client
        self._handler = handler
        self._auto_ack = auto_ack
        self._opts = options
        self._acks: list[bytes] = []
        self._task: asyncio.Task[None] | None = None
        self._retries: dict[asyncio.Task[None], bool] = {}  # task -> still sleeping
        self._cursor = b"0-0"
        self._next_claim = 0.0
        self._stopping = False
        self._busy = False

    async def start(self) -> None:
        """Create the group (at the stream's end) unless it exists, then start reading."""
        await self._create_group()
        self._task = asyncio.create_task(self._run(), name=f"micro-redis:{self.key}")

    async def _create_group(self) -> None:
        try:
            await call(self._redis.xgroup_create(self.key, self.group, id="$", mkstream=True))
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            try:
                if loop.time() >= self._next_claim:
                    self._next_claim = loop.time() + self._opts.claim_idle / 2
                    await self._guarded(self._claim)
                reply = await call(
                    self._redis.xreadgroup(
                        self.group,
                        self.consumer,
                        {self.key: ">"},
                        count=self._opts.batch,
                        block=self._opts.block_ms,
                    )
                )
            except redis.exceptions.ResponseError as exc:
                await self._recover(exc)
                continue
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                log.warning("reading %s failed, retrying: %r", self.key, exc)
                await asyncio.sleep(RETRY_PAUSE)
                continue
            for _key, entries in reply or ():
                await self._guarded(functools.partial(self._deliver_all, entries, None))

    async def _guarded(self, work: Callable[[], Awaitable[None]]) -> None:
        self._busy = True
        try:
            await work()
        finally:
            self._busy = False

    async def _recover(self, exc: redis.exceptions.ResponseError) -> None:
        if "NOGROUP" in str(exc):  # the stream or group was deleted (or lost): start again
            log.warning("group %s of %s is gone, creating it again", self.group, self.key)
            await _logged(self._create_group())
        else:
            log.warning("reading %s failed, retrying: %r", self.key, exc)
            await asyncio.sleep(RETRY_PAUSE)

    async def _claim(self) -> None:
        """XAUTOCLAIM entries idle longer than ``claim_idle`` (dead or stuck consumers)."""
        idle_ms = int(self._opts.claim_idle * 1000)
        reply = await call(
            self._redis.xautoclaim(
                self.key, self.group, self.consumer, idle_ms, self._cursor, self._opts.batch
            )
        )
        self._cursor = reply[0]
        entries = [(i, f) for i, f in reply[1] if f is not None]
        if len(reply) > 2 and reply[2]:
            log.error("%d pending entries of %s were trimmed away", len(reply[2]), self.key)
        if entries:
            await self._deliver_all(entries, await self._counts([i for i, _ in entries]))

    async def _counts(self, ids: list[bytes]) -> dict[bytes, int]:
        rows = await call(
            self._redis.xpending_range(
                self.key, self.group, min(ids), max(ids), len(ids) + 1000, self.consumer
            )
        )
        return {row["message_id"]: int(row["times_delivered"]) for row in rows}

    async def _deliver_all(
        self, entries: list[tuple[bytes, Fields]], counts: dict[bytes, int] | None
    ) -> None:
        for entry_id, fields in entries:
            if self._stopping:
                break  # left pending: another member reclaims it after claim_idle
            delivery = 1 if counts is None else counts.get(entry_id, 2)
            await self._deliver(RedisEvent(self, entry_id, fields, delivery))
        await self._flush_acks()

    async def _deliver(self, event: RedisEvent) -> None:
        try:
            event.message = decode(event.fields)
        except ValueError as exc:
            if self._opts.dlq_suffix and self.key.endswith(self._opts.dlq_suffix):
                # already a dead letter: skip it (it stays in the stream) rather than nest
                log.error(
                    "skipped undecodable dead letter %s in %s: %s", event.label, self.key, exc
                )
                await _logged(self.ack_now(event.entry_id))
                return
            log.error("undecodable entry %s in %s: %s", event.label, self.key, exc)
            await self.dead_letter(event, str(exc))
            return
        if await self.handle(event):
            event.settled = True
            self._acks.append(event.entry_id)

    async def _flush_acks(self) -> None:
        acks, self._acks = self._acks, []
        if acks:
            await _logged(call(self._redis.xack(self.key, self.group, *acks)))

    async def ack_now(self, entry_id: bytes) -> None:
        """XACK one entry (manual ack)."""
        with failing(f"ack of {entry_id!r} failed"):
            await call(self._redis.xack(self.key, self.group, entry_id))

    async def retry(self, event: RedisEvent) -> None:
        """Deliver the entry again to this consumer after the backoff delay (XCLAIM)."""
        task = asyncio.create_task(self._retry(event))
        self._retries[task] = True
        task.add_done_callback(self._retries.pop)

    async def _retry(self, event: RedisEvent) -> None:
        delay = self._opts.delay(event.delivery)
        await asyncio.sleep(delay)
        current = asyncio.current_task()
        if current is not None:
            self._retries[current] = False
        try:
            claimed: Any = await call(
                self._redis.xclaim(
                    self.key, self.group, self.consumer, int(delay * 1000), [event.entry_id]
                )
            )
        except redis.exceptions.RedisError as exc:  # stays pending: reclaimed after claim_idle
            log.warning("retry of %s failed: %r", event.label, exc)
            return
        entries = [(i, f) for i, f in claimed if f is not None]  # empty: someone else has it
        if entries:
            await self._deliver_all(entries, {entries[0][0]: event.delivery + 1})

    async def dead_letter(self, event: RedisEvent, reason: str) -> None:
        """XADD the entry to ``<key><dlq_suffix>`` and XACK it, in one transaction.
        If that fails the entry stays pending and is retried: never lost."""
        dlq = self.key + self._opts.dlq_suffix
        extra = {
            b"dlq_reason": reason.encode(),
            b"dlq_topic": self.topic.encode(),
            b"dlq_group": self.group.encode(),
            b"dlq_entry": event.entry_id,
            b"dlq_deliveries": str(event.delivery).encode(),
        }
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xadd(dlq, cast(Any, {**event.fields, **extra}))
                pipe.xack(self.key, self.group, event.entry_id)
                await pipe.execute()
        except redis.exceptions.RedisError as exc:
            log.error("cannot dead-letter %s to %s, it stays pending: %r", event.label, dlq, exc)
            return
        log.error(
            "dead-lettered %s message %s to %s after %d deliveries: %s",
            self.topic,
            event.label,
            dlq,
            event.delivery,
            reason,
        )

    async def unsubscribe(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            if not self._busy:  # blocked in XREADGROUP: stop waiting
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for retry, sleeping in list(self._retries.items()):
            if sleeping:
                retry.cancel()  # the entry stays pending; a member reclaims it
        await asyncio.gather(*self._retries, return_exceptions=True)
        await self._flush_acks()
        await _logged(self._leave())

    async def _leave(self) -> None:
        if self.queue is None:  # a broadcast group belongs to this subscription alone
            await call(self._redis.xgroup_destroy(self.key, self.group))
            return
        mine = await call(
            self._redis.xpending_range(self.key, self.group, "-", "+", 1, self.consumer)
        )
        if not mine:  # deleting a consumer drops its pending entries: only when it has none
            await call(self._redis.xgroup_delconsumer(self.key, self.group, self.consumer))


async def _logged(action: Awaitable[object]) -> None:
    try:
        await action
    except Exception as exc:  # best effort by design
        log.warning("ignored: %r", exc)
