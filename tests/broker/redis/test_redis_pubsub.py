"""RedisBroker in pub/sub mode (at-most-once broadcast) against the shared redis-server."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
import redis.asyncio as aioredis

from micro.broker import BrokerError, Event, Message
from micro.broker.redis import RedisBroker
from tests.broker.helpers import Inbox
from tests.servers import redis_url

pytestmark = pytest.mark.integration


async def test_broadcast_with_go_micro_envelope(topic: str) -> None:
    header = {"Micro-Id": "p1", "X-User": "J\u00f6rg"}
    async with RedisBroker(address=redis_url(), streams=False) as broker:
        first, second = Inbox(), Inbox()
        await broker.subscribe(topic, first)
        await broker.subscribe(topic, second)
        client = aioredis.Redis.from_url(redis_url())
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(topic)
            await pubsub.get_message(timeout=1.0)
            await broker.publish(topic, Message(header, b"\x00\xff"))
            wire = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
        finally:
            await pubsub.aclose()
            await client.aclose()
        for inbox in (first, second):
            (event,) = await inbox.wait(1)
            assert event.message == Message(header, b"\x00\xff")
    assert wire is not None
    # go-micro's broker.Message JSON: Go field names, base64 body
    assert json.loads(wire["data"]) == {"Header": header, "Body": "AP8="}


async def test_garbage_and_failing_handler_do_not_stop_the_loop(
    topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    seen = Inbox()

    async def flaky(event: Event) -> None:
        await seen(event)
        if event.message.body == b"boom":
            raise RuntimeError("handler bug")

    async with RedisBroker(address=redis_url(), streams=False) as broker:
        await broker.subscribe(topic, flaky)
        await broker._client().publish(topic, b"not json at all")
        await broker.publish(topic, Message({"Micro-Id": "bad-1"}, b"boom"))
        await broker.publish(topic, Message({}, b"after"))
        events = await seen.wait(2)
    assert [e.message.body for e in events] == [b"boom", b"after"]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("undecodable" in text for text in errors)
    assert any("bad-1" in text for text in errors)


async def test_queue_groups_are_refused_and_unsubscribe_stops(topic: str) -> None:
    async with RedisBroker(address=redis_url(), streams=False) as broker:
        with pytest.raises(BrokerError, match="no queue groups"):
            await broker.subscribe(topic, Inbox(), queue="workers")
        inbox = Inbox()
        sub = await broker.subscribe(topic, inbox)
        await broker.publish(topic, Message({}, b"1"))
        await inbox.wait(1)
        await sub.unsubscribe()
        await broker.publish(topic, Message({}, b"2"))
        await asyncio.sleep(0.2)
    assert inbox.bodies == [b"1"]
