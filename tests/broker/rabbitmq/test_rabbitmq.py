"""RabbitmqBroker against the shared RabbitMQ (tests/servers.py), one unique exchange per test."""

from __future__ import annotations

import asyncio
import logging
import socket

import aio_pika
import pytest

from micro.broker import Event, Message
from micro.broker.rabbitmq import RabbitmqBroker, RabbitmqEvent
from micro.errors import BrokerError
from micro.testing import eventually
from tests.broker.helpers import Inbox, msg
from tests.broker.rabbitmq.conftest import Rabbit
from tests.broker.rabbitmq.helpers import read_queue

pytestmark = pytest.mark.integration


async def test_headers_and_body_round_trip(rabbit: Rabbit) -> None:
    broker = await rabbit.broker()
    inbox = Inbox()
    await broker.subscribe("user.created", inbox)
    sent = Message({"Micro-Id": "m1", "Content-Type": "application/json", "X-A": "1"}, b"\x00{}")
    await broker.publish("user.created", sent)
    (event,) = await inbox.wait(1)
    assert event.message == sent
    assert event.topic == "user.created"
    assert event.id == "m1"
    assert isinstance(event, RabbitmqEvent)
    assert event.deliveries == 1


async def test_amqp_properties_seen_by_a_plain_consumer(rabbit: Rabbit) -> None:
    broker = await rabbit.broker()
    connection, channel = await rabbit.channel()
    async with connection:
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(rabbit.exchange, "raw.peek")
        await broker.publish("raw.peek", msg(1, **{"X-B": "b"}))
        got = await queue.get(timeout=5)
        await got.ack()
    assert got.content_type == "text/plain"
    assert got.message_id == "id-1"
    assert got.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert got.headers["X-B"] == "b"


async def test_queue_group_shares_and_broadcast_copies(rabbit: Rabbit) -> None:
    broker = await rabbit.broker(prefetch=1)
    a, b, c, d = Inbox(), Inbox(), Inbox(), Inbox()
    rabbit.group("jobs.run", "workers")
    await broker.subscribe("jobs.run", a, queue="workers")
    await broker.subscribe("jobs.run", b, queue="workers")
    await broker.subscribe("jobs.run", c)
    await broker.subscribe("jobs.#", d)  # AMQP wildcards pass through
    for i in range(20):
        await broker.publish("jobs.run", msg(i))
    await c.wait(20)
    await d.wait(20)
    await eventually(lambda: len(a.events) + len(b.events) >= 20, timeout=10)
    await asyncio.sleep(0.2)  # nothing more may arrive
    shared = sorted(a.bodies + b.bodies, key=int)
    assert shared == [str(i).encode() for i in range(20)]
    assert a.events
    assert b.events
    assert sorted(c.bodies, key=int) == shared
    assert sorted(d.bodies, key=int) == shared


async def test_group_queue_keeps_messages_while_no_member_is_there(rabbit: Rabbit) -> None:
    broker = await rabbit.broker()
    rabbit.group("orders.new", "billing")
    sub = await broker.subscribe("orders.new", Inbox(), queue="billing")
    await sub.unsubscribe()
    await sub.unsubscribe()  # idempotent
    for i in range(3):
        await broker.publish("orders.new", msg(i))
    later = Inbox()
    await broker.subscribe("orders.new", later, queue="billing")
    await later.wait(3)
    assert later.bodies == [b"0", b"1", b"2"]  # in publish order


async def test_failing_handler_is_retried_then_dead_lettered(
    rabbit: Rabbit, caplog: pytest.LogCaptureFixture
) -> None:
    broker = await rabbit.broker(max_deliveries=3)
    queue = rabbit.group("mail.send", "mailer")
    inbox = Inbox(fail=lambda e: e.message.body == b"poison")
    await broker.subscribe("mail.send", inbox, queue="mailer")
    with caplog.at_level(logging.ERROR):
        await broker.publish("mail.send", Message({"Micro-Id": "bad-1"}, b"poison"))
        await broker.publish("mail.send", msg("ok"))
        await inbox.wait(4)
        await asyncio.sleep(0.5)
    poisoned = [e for e in inbox.events if e.message.body == b"poison"]
    assert len(poisoned) == 3  # max_deliveries, no more
    assert [e.deliveries for e in poisoned] == [1, 2, 3]  # type: ignore[attr-defined]
    assert b"ok" in inbox.bodies
    assert "bad-1" in caplog.text
    connection, channel = await rabbit.channel()
    async with connection:
        (dead,) = await read_queue(channel, f"{queue}.dlq")
    assert dead.body == b"poison"
    assert dead.headers["Micro-Id"] == "bad-1"
    assert dead.headers["x-first-death-reason"] == "delivery_limit"


async def test_manual_nack_without_requeue_dead_letters_at_once(rabbit: Rabbit) -> None:
    broker = await rabbit.broker()
    queue = rabbit.group("manual.t", "m")
    seen: list[Event] = []

    async def handler(event: Event) -> None:
        seen.append(event)
        await event.nack(requeue=False)
        await event.ack()  # the first settlement wins

    await broker.subscribe("manual.t", handler, queue="m", auto_ack=False)
    await broker.publish("manual.t", msg(1))
    connection, channel = await rabbit.channel()
    async with connection, asyncio.timeout(10):
        dead: list[aio_pika.abc.AbstractMessage] = []
        while not dead:
            dead = await read_queue(channel, f"{queue}.dlq")
            await asyncio.sleep(0.05)
    assert len(seen) == 1
    assert dead[0].headers["x-first-death-reason"] == "rejected"


async def test_undecodable_and_foreign_messages_do_not_stop_the_loop(
    rabbit: Rabbit, caplog: pytest.LogCaptureFixture
) -> None:
    broker = await rabbit.broker()
    queue = rabbit.group("foreign.t", "g")
    inbox = Inbox()
    await broker.subscribe("foreign.t", inbox, queue="g")
    connection, channel = await rabbit.channel()
    async with connection:
        exchange = await channel.get_exchange(rabbit.exchange)
        bad = aio_pika.Message(b"x", headers={"h": bytearray(b"\xff\xfe")}, message_id="bad-utf8")
        await exchange.publish(bad, "foreign.t")
        await exchange.publish(aio_pika.Message(b"plain"), "foreign.t")  # no headers at all
        await broker.publish("foreign.t", msg(2))
        with caplog.at_level(logging.ERROR):
            await inbox.wait(2)
        async with asyncio.timeout(10):
            dead: list[aio_pika.abc.AbstractMessage] = []
            while not dead:
                dead = await read_queue(channel, f"{queue}.dlq")
                await asyncio.sleep(0.05)
    assert inbox.bodies == [b"plain", b"2"]
    assert set(inbox.events[0].message.header) <= {"Micro-Id"}  # aio-pika sets message_id
    assert dead[0].message_id == "bad-utf8"
    assert "bad-utf8" in caplog.text


async def test_broadcast_failures_are_bounded_and_dropped(
    rabbit: Rabbit, caplog: pytest.LogCaptureFixture
) -> None:
    broker = await rabbit.broker(max_deliveries=2)
    inbox = Inbox(fail=lambda e: e.id == "id-bad")
    await broker.subscribe("bcast.fail", inbox)
    with caplog.at_level(logging.ERROR):
        await broker.publish("bcast.fail", msg("bad"))
        await broker.publish("bcast.fail", msg("good"))
        await inbox.wait(3)
        await asyncio.sleep(0.5)
    assert sorted(inbox.bodies) == [b"bad", b"bad", b"good"]
    assert "dropped after 2 failed deliveries" in caplog.text


async def test_unroutable_publish(rabbit: Rabbit) -> None:
    relaxed = await rabbit.broker()
    await relaxed.publish("nobody.listens", msg(1))  # broadcast to nobody: accepted
    strict = await rabbit.broker(mandatory=True)
    with pytest.raises(BrokerError, match="no queue is bound"):
        await strict.publish("nobody.listens", msg(2))
    await strict.subscribe("somebody.listens", Inbox())
    await strict.publish("somebody.listens", msg(3))


async def test_misuse_and_unreachable_server(rabbit: Rabbit) -> None:
    idle = RabbitmqBroker(exchange=rabbit.exchange)
    with pytest.raises(BrokerError, match="before connect"):
        await idle.publish("t", msg(1))
    with pytest.raises(BrokerError, match="before connect"):
        await idle.subscribe("t", Inbox())
    await idle.disconnect()  # never connected: still fine
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    refused = RabbitmqBroker(address=f"127.0.0.1:{port}", connect_timeout=2)
    async with asyncio.timeout(10):
        with pytest.raises(BrokerError, match="cannot connect"):
            await refused.connect()
    broker = await rabbit.broker()
    await broker.connect()  # idempotent
    with pytest.raises(BrokerError, match="over 255"):
        await broker.publish("t" * 300, msg(1))


async def test_conflicting_queue_is_a_clear_error(rabbit: Rabbit) -> None:
    name = rabbit.group("clash.t", "q")
    connection, channel = await rabbit.channel()
    async with connection:
        await channel.declare_queue(name, durable=True)  # a classic queue already there
    broker = await rabbit.broker()
    with pytest.raises(BrokerError, match="cannot subscribe"):
        await broker.subscribe("clash.t", Inbox(), queue="q")
    await broker.publish("clash.t", msg(1))  # the broker still works


async def test_unsubscribe_waits_for_in_flight_handlers(rabbit: Rabbit) -> None:
    broker = await rabbit.broker()
    started, finished = asyncio.Event(), asyncio.Event()

    async def slow(event: Event) -> None:
        started.set()
        await asyncio.sleep(0.3)
        finished.set()

    sub = await broker.subscribe("slow.t", slow)
    await broker.publish("slow.t", msg(1))
    await asyncio.wait_for(started.wait(), 5)
    await sub.unsubscribe()
    assert finished.is_set()
