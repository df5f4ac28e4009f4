"""The broker contract (micro.testing.broker) over the rabbitmq and mqtt backends, against the
shared RabbitMQ and mosquitto (tests/servers.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import aio_pika
import pytest

from micro.broker import Broker, Handler, Subscription
from micro.broker import _rabbitmq_wire as wire
from micro.broker.mqtt import MqttBroker
from micro.broker.rabbitmq import RabbitmqBroker, RabbitmqSubscription
from micro.testing.broker import CHECKS, run_check
from tests.servers import amqp_url, mqtt_address

pytestmark = pytest.mark.integration


class TrackedRabbit(RabbitmqBroker):
    """Remembers every queue group it declared, so the test can delete them afterwards."""

    declared: set[str]

    async def subscribe(
        self, topic: str, handler: Handler, *, queue: str | None = None, auto_ack: bool = True
    ) -> Subscription:
        sub = await super().subscribe(topic, handler, queue=queue, auto_ack=auto_ack)
        if queue is not None:
            assert isinstance(sub, RabbitmqSubscription)
            self.declared.add(sub.queue_name)
        return sub


@pytest.fixture
async def rabbit_make() -> AsyncIterator[Callable[[], Broker]]:
    exchange = f"contract-{uuid.uuid4().hex[:10]}"
    declared: set[str] = set()

    def make() -> Broker:
        broker = TrackedRabbit(address=amqp_url(), exchange=exchange)
        broker.declared = declared
        return broker

    yield make
    connection = await aio_pika.connect(amqp_url())
    async with connection:
        channel = await connection.channel()
        for name in declared:
            await channel.queue_delete(name)
            await channel.queue_delete(wire.dead_letter_queue(name))
        await channel.exchange_delete(exchange)
        await channel.exchange_delete(f"{exchange}.dlx")


@pytest.mark.parametrize("check", list(CHECKS))
async def test_rabbitmq_contract(check: str, rabbit_make: Callable[[], Broker]) -> None:
    await run_check(check, rabbit_make)


@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("mode", ["qos0", "qos1", "durable"])
async def test_mqtt_contract(check: str, mode: str) -> None:
    address = mqtt_address()
    if mode == "durable":  # stable sessions, forgotten by the server 5 s after the test
        client_id = f"contract-{uuid.uuid4().hex[:8]}"
        await run_check(
            check,
            lambda: MqttBroker(address=address, qos=1, client_id=client_id, session_expiry=5),
        )
    else:
        await run_check(check, lambda: MqttBroker(address=address, qos=int(mode[-1])))
