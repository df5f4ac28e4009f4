"""NatsBroker in JetStream mode (at-least-once) against the shared nats-server."""

from __future__ import annotations

import asyncio
import logging

import nats
import pytest
from nats.js.api import DiscardPolicy, StreamConfig

from micro.broker import BrokerError, Event, Message
from micro.broker._nats_js import JetStreamEvent
from micro.broker.nats import NatsBroker
from micro.testing import eventually
from tests.broker.helpers import Inbox, child_subscriber, readline
from tests.servers import nats_url

pytestmark = pytest.mark.integration


def js_broker(**options: object) -> NatsBroker:
    defaults: dict[str, object] = {"ack_wait": 2.0, "max_deliver": 3, "backoff": (0.05, 0.1)}
    return NatsBroker(address=nats_url(), jetstream=True, **{**defaults, **options})  # type: ignore[arg-type]


async def test_publish_is_stored_and_queue_members_share_it(topic: str) -> None:
    async with js_broker() as broker:
        members = [Inbox(), Inbox()]
        for inbox in members:
            await broker.subscribe(topic, inbox, queue="workers")
        for i in range(100):
            await broker.publish(topic, Message({"Micro-Id": str(i)}, str(i).encode()))
        await eventually(lambda: sum(len(m.events) for m in members) >= 100, timeout=10)
        await asyncio.sleep(0.1)
        received = sorted(int(body) for m in members for body in m.bodies)
        assert received == list(range(100))
        assert all(isinstance(e, JetStreamEvent) and e.delivery == 1 for e in members[0].events)
        stream = await broker._client()[1].stream_info(
            await broker._client()[1].find_stream_name_by_subject(topic)
        )
        assert stream.state.messages == 100


async def test_broadcast_subscribers_each_get_every_message(topic: str) -> None:
    async with js_broker() as broker:
        first, second = Inbox(), Inbox()
        await broker.subscribe(topic, first)
        await broker.subscribe(topic, second)
        for i in range(5):
            await broker.publish(topic, Message({}, bytes([i])))
        assert [e.message.body for e in await first.wait(5)] == [bytes([i]) for i in range(5)]
        assert [e.message.body for e in await second.wait(5)] == [bytes([i]) for i in range(5)]


async def test_failing_handler_is_retried_then_dead_lettered(
    topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[int] = []

    async def failing(event: Event) -> None:
        assert isinstance(event, JetStreamEvent)
        attempts.append(event.delivery)
        raise ValueError("cannot handle")

    async with js_broker() as broker:
        dead = Inbox()
        await broker.subscribe(topic + ".dlq", dead, queue="dlq-reader")
        await broker.subscribe(topic, failing, queue="workers")
        await broker.publish(topic, Message({"Micro-Id": "order-7"}, b"payload"))
        (letter,) = await dead.wait(1)
    assert attempts == [1, 2, 3]
    assert letter.message.body == b"payload"
    header = letter.message.header
    assert header["Micro-Id"] == "order-7"
    assert header["Micro-Dlq-Subject"] == topic
    assert header["Micro-Dlq-Deliveries"] == "3"
    assert "cannot handle" in header["Micro-Dlq-Reason"]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert sum("order-7" in text and "failed" in text for text in errors) == 3
    assert any("dead-lettered" in text and "order-7" in text for text in errors)


async def test_manual_ack_nack_and_reject(topic: str) -> None:
    seen: list[tuple[bytes, int]] = []

    async def manual(event: Event) -> None:
        assert isinstance(event, JetStreamEvent)
        seen.append((event.message.body, event.delivery))
        if event.message.body == b"retry" and event.delivery == 1:
            await event.nack()
        elif event.message.body == b"reject":
            await event.nack(requeue=False)
        else:
            await event.ack()
            await event.ack()  # idempotent

    async with js_broker() as broker:
        dead = Inbox()
        await broker.subscribe(topic + ".dlq", dead)
        await broker.subscribe(topic, manual, queue="m", auto_ack=False)
        for body in (b"ok", b"retry", b"reject"):
            await broker.publish(topic, Message({}, body))
        (letter,) = await dead.wait(1)
        await asyncio.sleep(0.3)
    assert letter.message.body == b"reject"
    assert letter.message.header["Micro-Dlq-Reason"] == "rejected by the handler"
    assert sorted(seen) == [(b"ok", 1), (b"reject", 1), (b"retry", 1), (b"retry", 2)]


async def test_unacked_message_comes_back_after_ack_wait(topic: str) -> None:
    seen = Inbox()
    async with js_broker(ack_wait=0.5) as broker:
        await broker.subscribe(topic, seen, queue="forgetful", auto_ack=False)
        await broker.publish(topic, Message({}, b"again"))
        events = await seen.wait(2)
        await events[1].ack()
    assert [e.delivery for e in events[:2]] == [1, 2]  # type: ignore[attr-defined]


async def test_headerless_core_publish_is_delivered(topic: str) -> None:
    async with js_broker() as broker:
        inbox = Inbox()
        await broker.subscribe(topic, inbox, queue="q")
        raw = await nats.connect(nats_url())
        try:
            await raw.publish(topic, b"raw bytes \xff")
            await raw.flush()
        finally:
            await raw.close()
        await broker.publish(topic, Message({}, b"next"))
        events = await inbox.wait(2)
    assert [e.message for e in events] == [Message({}, b"raw bytes \xff"), Message({}, b"next")]


async def test_refused_publish_raises_and_bad_topics_are_rejected(topic: str) -> None:
    async with js_broker() as broker:
        _, js = broker._client()
        config = StreamConfig(
            name=topic.replace(".", "_"), subjects=[topic], max_msgs=1, discard=DiscardPolicy.NEW
        )
        await js.add_stream(config)
        await broker.publish(topic, Message({}, b"fits"))
        with pytest.raises(BrokerError, match="not accepted"):
            await broker.publish(topic, Message({}, b"does not fit"))
        for bad in (topic + ".>", "", "has space"):
            with pytest.raises(BrokerError, match="JetStream topic"):
                await broker.subscribe(bad, Inbox())


@pytest.mark.slow
async def test_member_killed_before_ack_gets_message_redelivered(topic: str) -> None:
    options = '{"ack_wait": 1.0}'
    with child_subscriber("nats", nats_url(), topic, "crashers", options) as child:
        assert await readline(child) == "READY"
        async with js_broker(ack_wait=1.0) as broker:
            await broker.publish(topic, Message({"Micro-Id": "crash-1"}, b"survive me"))
            assert await readline(child) == "GOT survive me"
            child.kill()  # SIGKILL mid-handler: no ack, no clean shutdown
            child.wait(10)
            survivor = Inbox()
            await broker.subscribe(topic, survivor, queue="crashers")
            (event,) = await survivor.wait(1, timeout=10)
    assert event.id == "crash-1"
    assert event.message.body == b"survive me"
    assert isinstance(event, JetStreamEvent)
    assert event.delivery == 2
