"""A private persistent redis-server killed and restarted: no acknowledged publish is lost."""

from __future__ import annotations

import pytest

from micro.broker.redis import RedisBroker
from tests.broker.helpers import check_publishes_survive_a_crash

from .conftest import PrivateRedis

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_acknowledged_publishes_survive_a_server_crash(private_redis: PrivateRedis) -> None:
    broker = RedisBroker(address=private_redis.url, claim_idle=1.0)
    await check_publishes_survive_a_crash(broker, private_redis, "restart:events")
