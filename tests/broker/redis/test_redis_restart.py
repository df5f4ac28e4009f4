"""A private persistent redis-server killed and restarted: no acknowledged publish is lost."""

from __future__ import annotations

import pytest

from micro.broker import BrokerError, Message
from micro.broker.redis import RedisBroker

from .conftest import Inbox, PrivateRedis

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_acknowledged_publishes_survive_a_server_crash(private_redis: PrivateRedis) -> None:
    topic = "restart:events"
    async with RedisBroker(address=private_redis.url, claim_idle=1.0) as broker:
        offline = await broker.subscribe(topic, Inbox(), queue="offline")
        await offline.unsubscribe()  # the group stays, with nobody reading
        live = Inbox()
        await broker.subscribe(topic, live, queue="live")  # stays subscribed across the crash
        for i in range(50):
            await broker.publish(topic, Message({"Micro-Id": str(i)}, str(i).encode()))
        await live.wait(50)
        private_redis.kill()  # SIGKILL: no clean shutdown
        with pytest.raises(BrokerError, match="not accepted"):
            await broker.publish(topic, Message({}, b"server is down"))
        await private_redis.start()  # same port, same directory: the AOF is replayed
        back = Inbox()
        await broker.subscribe(topic, back, queue="offline")
        stored = await back.wait(50, timeout=20)
        assert sorted(int(e.message.body) for e in stored) == list(range(50))
        await broker.publish(topic, Message({}, b"after"))  # the broker reconnected by itself
        assert (await live.wait(51, timeout=20))[-1].message.body == b"after"
