"""A private JetStream server killed and restarted: no acknowledged publish is lost."""

from __future__ import annotations

import pytest

from micro.broker.nats import NatsBroker
from tests.broker.helpers import check_publishes_survive_a_crash

from .conftest import PrivateNats

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_acknowledged_publishes_survive_a_server_crash(private_nats: PrivateNats) -> None:
    broker = NatsBroker(address=private_nats.url, jetstream=True, publish_timeout=1.0)
    await check_publishes_survive_a_crash(broker, private_nats, "restart.events")
