"""MqttBroker against the shared mosquitto (tests/servers.py), unique topics per test."""

from __future__ import annotations

import asyncio
import logging
import socket

import aiomqtt
import pytest

from micro.broker import Event, Message
from micro.broker.mqtt import MqttBroker, MqttEvent
from micro.errors import BrokerError
from micro.testing import eventually
from tests.broker.helpers import Inbox, msg
from tests.broker.mqtt.conftest import Mqtt
from tests.servers import host_port

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("qos", [0, 1])
async def test_headers_and_body_round_trip(mqtt: Mqtt, qos: int) -> None:
    broker = await mqtt.broker(qos=qos)
    topic = mqtt.topic("user.created")
    inbox = Inbox()
    await broker.subscribe(topic, inbox)
    sent = Message({"Micro-Id": "m1", "Content-Type": "application/json", "X-A": "1"}, b"\x00{}")
    await broker.publish(topic, sent)
    (event,) = await inbox.wait(1)
    assert event.message == sent
    assert event.topic == topic
    assert isinstance(event, MqttEvent)
    assert event.qos == qos


async def test_shared_subscription_splits_and_broadcast_copies(mqtt: Mqtt) -> None:
    broker = await mqtt.broker(qos=1)
    topic = mqtt.topic("jobs/run")
    a, b, c, d = Inbox(), Inbox(), Inbox(), Inbox()
    await broker.subscribe(topic, a, queue="workers")
    await broker.subscribe(topic, b, queue="workers")
    await broker.subscribe(topic, c)
    await broker.subscribe(mqtt.topic("jobs/+"), d)  # MQTT wildcards in filters
    for i in range(20):
        await broker.publish(topic, msg(i))
    await c.wait(20)
    await d.wait(20)
    await eventually(lambda: len(a.events) + len(b.events) >= 20, timeout=10)
    await asyncio.sleep(0.2)
    everything = [str(i).encode() for i in range(20)]
    assert sorted(a.bodies + b.bodies, key=int) == everything
    assert a.events
    assert b.events
    assert c.bodies == everything  # one publisher, one subscriber: in order
    assert d.bodies == everything


async def test_durable_session_gets_what_was_published_while_away(mqtt: Mqtt) -> None:
    topic = mqtt.topic("orders")
    mqtt.session("svc-a", topic)
    first = await mqtt.broker(qos=1, client_id="svc-a")
    await first.subscribe(topic, Inbox())
    await first.disconnect()  # the session stays on the server
    publisher = await mqtt.broker(qos=1)
    for i in range(5):
        await publisher.publish(topic, msg(i))
    again = await mqtt.broker(qos=1, client_id="svc-a")
    inbox = Inbox()
    await again.subscribe(topic, inbox)
    await inbox.wait(5)
    assert inbox.bodies == [b"0", b"1", b"2", b"3", b"4"]
    mqtt.session("svc-a", topic, index=1)
    second = Inbox()  # a second member here gets its own session, not svc-a's
    await again.subscribe(topic, second)
    await publisher.publish(topic, msg(5))
    await inbox.wait(6)
    await second.wait(1)


async def test_unsubscribe_of_a_plain_session_stops_delivery(mqtt: Mqtt) -> None:
    broker = await mqtt.broker(qos=1)
    topic = mqtt.topic("gone")
    inbox = Inbox()
    sub = await broker.subscribe(topic, inbox)
    await broker.publish(topic, msg(1))
    await inbox.wait(1)
    await sub.unsubscribe()
    await sub.unsubscribe()  # idempotent
    await broker.publish(topic, msg(2))
    await asyncio.sleep(0.3)
    assert inbox.bodies == [b"1"]


async def test_failing_handler_is_logged_and_does_not_stop_the_loop(
    mqtt: Mqtt, caplog: pytest.LogCaptureFixture
) -> None:
    broker = await mqtt.broker(qos=1)
    topic = mqtt.topic("fail")
    inbox = Inbox(fail=lambda e: e.id == "id-bad")
    await broker.subscribe(topic, inbox)
    with caplog.at_level(logging.WARNING):
        await broker.publish(topic, msg("bad"))
        await broker.publish(topic, msg("good"))
        await inbox.wait(2)
        await asyncio.sleep(0.3)
    assert inbox.bodies == [b"bad", b"good"]  # no redelivery: MQTT has no nack
    assert "id-bad" in caplog.text
    assert "cannot redeliver" in caplog.text


async def test_manual_ack_and_foreign_messages(mqtt: Mqtt) -> None:
    broker = await mqtt.broker(qos=1)
    topic = mqtt.topic("manual")
    seen: list[Event] = []

    async def handler(event: Event) -> None:
        seen.append(event)
        await event.ack()
        await event.nack()  # already settled: no-op

    await broker.subscribe(topic, handler, auto_ack=False)
    # a v3.1.1 client: no properties at all
    host, port = host_port("mqtt")
    async with aiomqtt.Client(host, port, protocol=aiomqtt.ProtocolVersion.V311) as raw:
        await raw.publish(topic, b"from v3", qos=1)
    await broker.publish(topic, msg(1))
    await eventually(lambda: len(seen) >= 2, timeout=10)
    assert seen[0].message == Message({}, b"from v3")
    assert seen[1].id == "id-1"


async def test_misuse_and_unreachable_server(mqtt: Mqtt) -> None:
    idle = MqttBroker()
    with pytest.raises(BrokerError, match="before connect"):
        await idle.publish("t", msg(1))
    with pytest.raises(BrokerError, match="before connect"):
        await idle.subscribe("t", Inbox())
    await idle.disconnect()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with asyncio.timeout(15):
        with pytest.raises(BrokerError, match="cannot connect"):
            await MqttBroker(address=f"127.0.0.1:{port}", timeout=2).connect()
    broker = await mqtt.broker()
    await broker.connect()  # idempotent
    with pytest.raises(BrokerError, match="wildcard"):
        await broker.publish("a/#", msg(1))
    with pytest.raises(BrokerError, match="queue name"):
        await broker.subscribe("a", Inbox(), queue="a/b")


async def test_unsubscribe_waits_for_in_flight_handlers(mqtt: Mqtt) -> None:
    broker = await mqtt.broker(qos=1)
    topic = mqtt.topic("slow")
    started, finished = asyncio.Event(), asyncio.Event()

    async def slow(event: Event) -> None:
        started.set()
        await asyncio.sleep(0.3)
        finished.set()

    sub = await broker.subscribe(topic, slow)
    await broker.publish(topic, msg(1))
    await asyncio.wait_for(started.wait(), 5)
    await sub.unsubscribe()
    assert finished.is_set()
