"""A private JetStream server killed and restarted: no acknowledged publish is lost."""

from __future__ import annotations

import pytest

from micro.broker import BrokerError, Message
from micro.broker.nats import NatsBroker

from .conftest import Inbox, PrivateNats

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_acknowledged_publishes_survive_a_server_crash(private_nats: PrivateNats) -> None:
    topic = "restart.events"
    broker = NatsBroker(address=private_nats.url, jetstream=True, publish_timeout=1.0)
    async with broker:
        offline = await broker.subscribe(topic, Inbox(), queue="offline")
        await offline.unsubscribe()  # the group's durable consumer stays, with nobody reading
        live = Inbox()
        await broker.subscribe(topic, live, queue="live")  # stays subscribed across the crash
        for i in range(50):
            await broker.publish(topic, Message({"Micro-Id": str(i)}, str(i).encode()))
        await live.wait(50)
        private_nats.kill()  # SIGKILL: no clean shutdown
        with pytest.raises(BrokerError, match="not accepted"):
            await broker.publish(topic, Message({}, b"server is down"))
        await private_nats.start()  # same port, same store directory
        back = Inbox()
        await broker.subscribe(topic, back, queue="offline")
        stored = await back.wait(50, timeout=20)
        assert sorted(int(e.message.body) for e in stored) == list(range(50))
        await broker.publish(topic, Message({}, b"after"))  # the broker reconnected by itself
        assert (await live.wait(51, timeout=20))[-1].message.body == b"after"
