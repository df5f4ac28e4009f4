"""The transport contract (micro.testing.transport) over the rabbitmq backend, against the
shared RabbitMQ (tests/servers.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import aio_pika
import pytest

from micro.testing.transport import CHECKS
from micro.transport import Transport
from micro.transport.rabbitmq import RabbitmqTransport
from tests.servers import amqp_url

pytestmark = pytest.mark.integration

MAX_BODY = 10 * 1024 * 1024 + 4096  # the large-bodies check sends max_body - 4096: 10 MiB


@pytest.fixture
async def make() -> AsyncIterator[Callable[[], Transport]]:
    exchange = f"contract-{uuid.uuid4().hex[:10]}"
    yield lambda: RabbitmqTransport(address=amqp_url(), exchange=exchange, max_body=MAX_BODY)
    connection = await aio_pika.connect(amqp_url())
    async with connection:
        channel = await connection.channel()
        await channel.exchange_delete(exchange)


@pytest.mark.parametrize("check", sorted(CHECKS))
async def test_rabbitmq_transport_contract(make: Callable[[], Transport], check: str) -> None:
    await CHECKS[check](make, MAX_BODY)
