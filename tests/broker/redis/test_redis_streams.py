"""RedisBroker on Streams (at-least-once) against the shared redis-server."""

from __future__ import annotations

import asyncio
import logging

import pytest
import redis.asyncio as aioredis

from micro import plugins
from micro.broker import BrokerError, Event, Message
from micro.broker._redis_streams import RedisEvent
from micro.broker.redis import RedisBroker, parse_url
from micro.testing import eventually
from tests.broker.helpers import Inbox, child_subscriber, free_port, readline
from tests.servers import redis_url

pytestmark = pytest.mark.integration


def streams_broker(**options: object) -> RedisBroker:
    defaults: dict[str, object] = {"max_deliver": 3, "backoff": (0.05, 0.1), "claim_idle": 1.0}
    return RedisBroker(address=redis_url(), **{**defaults, **options})  # type: ignore[arg-type]


async def test_queue_members_share_and_broadcast_groups_get_all(topic: str) -> None:
    header = {"Content-Type": "application/json", "Micro-Id": "x", "X-User": "J\u00f6rg \u2713"}
    async with streams_broker() as broker:
        members, watchers = [Inbox(), Inbox()], [Inbox(), Inbox()]
        for inbox in members:
            await broker.subscribe(topic, inbox, queue="workers")
        for inbox in watchers:
            await broker.subscribe(topic, inbox)
        for i in range(100):
            await broker.publish(topic, Message(header, str(i).encode()))
        for inbox in watchers:
            await inbox.wait(100)
            assert [int(b) for b in inbox.bodies] == list(range(100))
        await eventually(lambda: sum(len(m.events) for m in members) >= 100, timeout=10)
        await asyncio.sleep(0.1)
        assert sorted(int(body) for m in members for body in m.bodies) == list(range(100))
        assert members[0].events[0].message.header == header
        groups = {g["name"] for g in await broker._client().xinfo_groups(topic)}
    client = aioredis.Redis.from_url(redis_url())
    try:
        after = {g["name"] for g in await client.xinfo_groups(topic)}
        pending = await client.xpending(topic, "workers")
    finally:
        await client.aclose()
    assert len(groups) == 3
    assert after == {b"workers"}  # broadcast groups are removed, the queue group persists
    assert pending["pending"] == 0


async def test_failing_handler_is_retried_then_dead_lettered(
    topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[int] = []

    async def failing(event: Event) -> None:
        assert isinstance(event, RedisEvent)
        attempts.append(event.delivery)
        raise ValueError("cannot handle")

    async with streams_broker() as broker:
        dead = Inbox()
        await broker.subscribe(topic + ":dlq", dead, queue="dlq-reader")
        await broker.subscribe(topic, failing, queue="workers")
        await broker.publish(topic, Message({"Micro-Id": "order-7"}, b"payload"))
        (letter,) = await dead.wait(1)
        pending = await broker._client().xpending(broker.key(topic), "workers")
    assert attempts == [1, 2, 3]
    assert letter.message == Message({"Micro-Id": "order-7"}, b"payload")
    assert isinstance(letter, RedisEvent)
    assert letter.fields[b"dlq_deliveries"] == b"3"
    assert b"cannot handle" in letter.fields[b"dlq_reason"]
    assert letter.fields[b"dlq_group"] == b"workers"
    assert pending["pending"] == 0
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert sum("order-7" in text and "failed" in text for text in errors) == 3
    assert any("dead-lettered" in text and "order-7" in text for text in errors)


async def test_foreign_entries_are_dead_lettered_and_the_loop_goes_on(topic: str) -> None:
    async with streams_broker() as broker:
        inbox, dead = Inbox(), Inbox()
        await broker.subscribe(topic, inbox, queue="q")
        await broker.subscribe(topic + ":dlq", dead, queue="d")
        client = broker._client()
        await client.xadd(topic, {"foo": "bar"})
        await client.xadd(topic, {"header": b"{not json", "body": b"x"})
        await client.xadd(topic, {"body": b"bare body"})  # no header field: a valid message
        await broker.publish(topic, Message({}, b"after"))
        events = await inbox.wait(2)
        await asyncio.sleep(0.3)
        entries = await client.xrange(topic + ":dlq")
    assert entries is not None  # redis-py types every reply as optional
    assert [e.message for e in events] == [Message({}, b"bare body"), Message({}, b"after")]
    assert len(entries) == 2  # both foreign entries kept, with the reason
    assert all(fields and b"dlq_reason" in fields for _, fields in entries)
    assert dead.events == []  # undecodable dead letters are skipped, not nested


async def test_manual_ack_nack_and_unacked_reclaim(topic: str) -> None:
    seen: list[tuple[bytes, int]] = []

    async def manual(event: Event) -> None:
        assert isinstance(event, RedisEvent)
        seen.append((event.message.body, event.delivery))
        if event.message.body == b"retry" and event.delivery == 1:
            await event.nack()
        elif event.message.body == b"reject":
            await event.nack(requeue=False)
        elif event.message.body == b"forget" and event.delivery == 1:
            return  # neither acked nor nacked: reclaimed after claim_idle
        else:
            await event.ack()

    async with streams_broker(claim_idle=0.5) as broker:
        dead = Inbox()
        await broker.subscribe(topic + ":dlq", dead)
        await broker.subscribe(topic, manual, queue="m", auto_ack=False)
        for body in (b"ok", b"retry", b"reject", b"forget"):
            await broker.publish(topic, Message({}, body))
        (letter,) = await dead.wait(1)
        await eventually(lambda: (b"forget", 2) in seen, timeout=10)
    assert letter.message.body == b"reject"
    expected = [(b"forget", 1), (b"forget", 2), (b"ok", 1), (b"reject", 1)]
    assert sorted(seen) == [*expected, (b"retry", 1), (b"retry", 2)]


async def test_maxlen_bounds_the_stream(topic: str) -> None:
    async with streams_broker(maxlen=100) as broker:
        for i in range(1000):
            await broker.publish(topic, Message({}, str(i).encode()))
        length = await broker._client().xlen(topic)
    assert 100 <= length < 1000


async def test_bad_address_and_unconnected_use_raise_broker_error() -> None:
    broker = RedisBroker(address=f"127.0.0.1:{free_port()}", connect_timeout=1.0)
    with pytest.raises(BrokerError, match="cannot connect"):
        await broker.connect()
    with pytest.raises(BrokerError, match="not connected"):
        await broker.publish("x", Message())
    await broker.disconnect()
    with pytest.raises(BrokerError, match="one server"):
        parse_url("a:1,b:2")
    assert parse_url("127.0.0.1:6379") == "redis://127.0.0.1:6379"
    created = plugins.create("broker", "redis", address="127.0.0.1:6379")
    assert isinstance(created, RedisBroker)
    assert created.address == "redis://127.0.0.1:6379"
    with pytest.raises(ValueError, match="claim_idle"):
        RedisBroker(claim_idle=0)


@pytest.mark.slow
async def test_member_killed_before_ack_gets_message_redelivered(topic: str) -> None:
    with child_subscriber("redis", redis_url(), topic, "crashers") as child:
        assert await readline(child) == "READY"
        async with streams_broker(claim_idle=1.0) as broker:
            await broker.publish(topic, Message({"Micro-Id": "crash-1"}, b"survive me"))
            assert await readline(child) == "GOT survive me"
            child.kill()  # SIGKILL mid-handler: no XACK, no clean shutdown
            child.wait(10)
            survivor = Inbox()
            await broker.subscribe(topic, survivor, queue="crashers")
            (event,) = await survivor.wait(1, timeout=10)
    assert event.id == "crash-1"
    assert event.message.body == b"survive me"
    assert isinstance(event, RedisEvent)
    assert event.delivery == 2


async def test_pending_count_is_zero_after_success(topic: str) -> None:
    async with streams_broker() as broker:
        inbox = Inbox()
        await broker.subscribe(topic, inbox, queue="g")
        for i in range(10):
            await broker.publish(topic, Message({}, bytes([i])))
        await inbox.wait(10)

        async def all_acked() -> None:
            info = await broker._client().xpending(topic, "g")
            assert info["pending"] == 0

        await eventually(all_acked)
