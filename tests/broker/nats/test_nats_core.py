"""NatsBroker in core mode (at-most-once) against the shared nats-server."""

from __future__ import annotations

import asyncio
import logging

import nats
import pytest

from micro import plugins
from micro._nats import parse_servers
from micro.broker import BrokerError, Event, Message
from micro.broker.nats import NatsBroker
from micro.testing import eventually
from tests.broker.helpers import Inbox, free_port
from tests.servers import nats_url

pytestmark = pytest.mark.integration


async def test_broadcast_reaches_every_subscriber_with_headers(topic: str) -> None:
    header = {"Content-Type": "application/json", "Micro-Id": "m1", "X-User": "J\u00f6rg \u2713"}
    async with NatsBroker(address=nats_url()) as broker:
        first, second = Inbox(), Inbox()
        await broker.subscribe(topic, first)
        await broker.subscribe(topic, second)
        await broker.publish(topic, Message(header, b"\x00\xff body"))
        for inbox in (first, second):
            (event,) = await inbox.wait(1)
            assert event.message == Message(header, b"\x00\xff body")
            assert event.topic == topic
            assert event.id == "m1"


async def test_a_publish_from_elsewhere_right_after_subscribe_arrives(topic: str) -> None:
    """subscribe returns once the server has the subscription, not merely queued it."""
    async with NatsBroker(address=nats_url()) as publisher:
        for i in range(50):
            async with NatsBroker(address=nats_url()) as subscriber:  # a fresh connection each time
                inbox = Inbox()
                await subscriber.subscribe(f"{topic}.{i}", inbox)
                await publisher.publish(f"{topic}.{i}", Message({}, b"now"))
                (event,) = await inbox.wait(1)
                assert event.message.body == b"now"


async def test_queue_group_members_share_without_duplicates(topic: str) -> None:
    async with NatsBroker(address=nats_url()) as broker:
        members = [Inbox(), Inbox()]
        for inbox in members:
            await broker.subscribe(topic, inbox, queue="workers")
        for i in range(200):
            await broker.publish(topic, Message({}, str(i).encode()))
        await eventually(lambda: sum(len(m.events) for m in members) >= 200, timeout=10)
        received = sorted(int(body) for m in members for body in m.bodies)
        assert received == list(range(200))
        assert all(m.events for m in members), "both members should get a share"


async def test_foreign_message_and_failing_handler_do_not_stop_delivery(
    topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    seen = Inbox()

    async def flaky(event: Event) -> None:
        await seen(event)
        if event.message.body == b"boom":
            raise RuntimeError("handler bug")

    async with NatsBroker(address=nats_url()) as broker:
        await broker.subscribe(topic, flaky)
        raw = await nats.connect(nats_url())
        try:
            await raw.publish(topic, b"no headers at all")
            await raw.flush()
        finally:
            await raw.close()
        await broker.publish(topic, Message({"Micro-Id": "bad-1"}, b"boom"))
        await broker.publish(topic, Message({}, b"after"))
        events = await seen.wait(3)
    assert events[0].message == Message({}, b"no headers at all")
    assert [e.message.body for e in events[1:]] == [b"boom", b"after"]
    assert any("bad-1" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)


async def test_unsubscribe_stops_delivery(topic: str) -> None:
    async with NatsBroker(address=nats_url()) as broker:
        inbox = Inbox()
        sub = await broker.subscribe(topic, inbox)
        await broker.publish(topic, Message({}, b"1"))
        await inbox.wait(1)
        await sub.unsubscribe()
        await sub.unsubscribe()  # idempotent
        await broker.publish(topic, Message({}, b"2"))
        await asyncio.sleep(0.2)
        assert inbox.bodies == [b"1"]


async def test_unreachable_server_and_unconnected_use_raise_broker_error() -> None:
    broker = NatsBroker(address=f"127.0.0.1:{free_port()}", connect_timeout=1.0)
    with pytest.raises(BrokerError, match="cannot connect"):
        await broker.connect()
    with pytest.raises(BrokerError, match="not connected"):
        await broker.publish("x", Message({}, b""))
    with pytest.raises(BrokerError, match="not connected"):
        await broker.subscribe("x", Inbox())
    await broker.disconnect()  # never raises


def test_address_parsing_and_plugin_table() -> None:
    assert parse_servers("a:1, nats://b:2") == ["nats://a:1", "nats://b:2"]
    with pytest.raises(ValueError, match="no NATS server"):
        parse_servers(" , ")
    with pytest.raises(BrokerError, match="no NATS server"):
        NatsBroker(address=" , ")
    broker = plugins.create("broker", "nats", address="127.0.0.1:4222")
    assert isinstance(broker, NatsBroker)
    assert broker.address == "nats://127.0.0.1:4222"
    with pytest.raises(ValueError, match="max_deliver"):
        NatsBroker(max_deliver=0)
