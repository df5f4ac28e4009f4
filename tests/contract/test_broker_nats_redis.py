"""The broker contract (micro.testing.broker) over the nats and redis backends, in each of
their modes, against the shared nats-server and redis (tests/servers.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import nats
import pytest
import redis.asyncio as aioredis

from micro.broker import Broker, Handler, Message, Subscription
from micro.broker.nats import NatsBroker
from micro.broker.redis import RedisBroker
from micro.testing.broker import CHECKS, run_check
from tests.servers import nats_url, redis_url

pytestmark = pytest.mark.integration

FAST = {"backoff": (0.05,), "max_deliver": 3}


class Topics:
    """Mixin: remembers every topic used, so the test can delete its streams/keys after."""

    used: set[str]

    async def publish(self, topic: str, message: Message) -> None:
        self.used.add(topic)
        await super().publish(topic, message)  # type: ignore[misc]

    async def subscribe(
        self, topic: str, handler: Handler, *, queue: str | None = None, auto_ack: bool = True
    ) -> Subscription:
        self.used.add(topic)
        return await super().subscribe(topic, handler, queue=queue, auto_ack=auto_ack)  # type: ignore[misc, no-any-return]


class TrackedNats(Topics, NatsBroker):
    pass


class TrackedRedis(Topics, RedisBroker):
    pass


async def _delete_streams(topics: set[str]) -> None:
    nc = await nats.connect(nats_url())
    try:
        js = nc.jetstream()
        for info in await js.streams_info():
            if set(info.config.subjects or ()) & topics:
                await js.delete_stream(info.config.name or "")
    finally:
        await nc.close()


async def _delete_keys(topics: set[str]) -> None:
    client = aioredis.Redis.from_url(redis_url())
    try:
        keys = [*topics, *(f"{t}:dlq" for t in topics)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


MODES: dict[str, Callable[[set[str]], Broker]] = {
    "nats-core": lambda used: TrackedNats(address=nats_url()),
    "nats-jetstream": lambda used: TrackedNats(address=nats_url(), jetstream=True, **FAST),  # type: ignore[arg-type]
    "redis-streams": lambda used: TrackedRedis(address=redis_url(), claim_idle=2.0, **FAST),  # type: ignore[arg-type]
    "redis-pubsub": lambda used: TrackedRedis(address=redis_url(), streams=False),
}


# Redis pub/sub has no competing consumers: a queue= subscription is refused with a
# BrokerError there (tests/broker/redis/test_redis_pubsub.py), so that check does not apply.
NOT_APPLICABLE = {("redis-pubsub", "queue_group")}
CASES = [(m, c) for m in MODES for c in CHECKS if (m, c) not in NOT_APPLICABLE]


@pytest.fixture
async def make(mode: str) -> AsyncIterator[Callable[[], Broker]]:
    used: set[str] = set()
    build = MODES[mode]

    def factory() -> Broker:
        broker = build(used)
        broker.used = used  # type: ignore[attr-defined]
        return broker

    yield factory
    if mode == "nats-jetstream":
        await _delete_streams(used)
    if mode == "redis-streams":
        await _delete_keys(used)


@pytest.mark.parametrize(("mode", "check"), CASES)
async def test_nats_redis_contract(mode: str, check: str, make: Callable[[], Broker]) -> None:
    await run_check(check, make)
