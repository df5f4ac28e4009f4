"""Fixtures: RabbitMQ brokers on the shared server (tests/servers.py) under a unique exchange,
cleaned up after."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest

from micro.broker import _rabbitmq_wire as wire
from micro.broker.rabbitmq import RabbitmqBroker
from tests.servers import amqp_url


class Rabbit:
    """Makes brokers on one unique exchange; remembers queue groups to delete at the end."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or amqp_url()
        self.exchange = f"test-{uuid.uuid4().hex[:10]}"
        self.brokers: list[RabbitmqBroker] = []
        self.groups: set[tuple[str, str]] = set()

    async def broker(self, **options: Any) -> RabbitmqBroker:
        options.setdefault("address", self.url)
        options.setdefault("exchange", self.exchange)
        broker = RabbitmqBroker(**options)
        self.brokers.append(broker)
        await broker.connect()
        return broker

    def group(self, topic: str, queue: str) -> str:
        """The group queue's name (and remember to delete it and its DLQ)."""
        self.groups.add((topic, queue))
        return wire.group_queue(self.exchange, topic, queue)

    async def channel(self) -> tuple[aio_pika.abc.AbstractConnection, aio_pika.abc.AbstractChannel]:
        connection = await aio_pika.connect(self.url)
        return connection, await connection.channel()

    async def cleanup(self) -> None:
        for broker in self.brokers:
            await broker.disconnect()
        connection, channel = await self.channel()
        async with connection:
            for topic, queue in self.groups:
                name = wire.group_queue(self.exchange, topic, queue)
                await channel.queue_delete(name)
                await channel.queue_delete(wire.dead_letter_queue(name))
            await channel.exchange_delete(self.exchange)
            await channel.exchange_delete(f"{self.exchange}.dlx")


@pytest.fixture
async def rabbit() -> AsyncIterator[Rabbit]:
    r = Rabbit()
    yield r
    await r.cleanup()
