"""RabbitMQ pub/sub throughput: micro's RabbitmqBroker next to raw aio-pika, in one run.

    .venv/bin/python -m benchmarks.pubsub_rabbitmq [-n 100000] [--url amqp://...]

Both sides do the same work on the same server: ``n`` small persistent messages published
through a confirming channel (up to ``WINDOW`` publishes awaiting their confirm at once) to a
topic exchange, received on one subscriber's own queue with manual acks and prefetch 64. The
figure is received messages per second, from the first publish to the last message handled.
Each side uses its own unique exchange, deleted afterwards.
"""

from __future__ import annotations

import uuid

import aio_pika

from benchmarks._pubsub_common import Counter, main_for, publish_windowed, timed
from micro.broker import Event, Message
from micro.broker.rabbitmq import RabbitmqBroker

URL = "amqp://guest:guest@127.0.0.1:5672/"
WINDOW = 256  # publishes in flight
PREFETCH = 64
BODY = b'{"id": 1, "name": "John"}'


async def run_micro(n: int, url: str = URL) -> float:
    """Received msgs/s through RabbitmqBroker (broadcast subscriber, auto-ack)."""
    exchange = f"bench-micro-{uuid.uuid4().hex[:8]}"
    counter = Counter(n)

    async def handler(event: Event) -> None:
        counter.hit()

    broker = RabbitmqBroker(address=url, exchange=exchange, prefetch=PREFETCH)
    async with broker:
        await broker.subscribe("bench.event", handler)
        header = {"Content-Type": "application/json", "Micro-Topic": "bench.event"}
        publish_all = publish_windowed(
            n,
            WINDOW,
            lambda i: broker.publish("bench.event", Message({**header, "Micro-Id": str(i)}, BODY)),
        )
        rate = await timed(n, counter, publish_all)
    await _delete_exchanges(url, exchange, f"{exchange}.dlx")
    return rate


async def run_raw(n: int, url: str = URL) -> float:
    """Received msgs/s through plain aio-pika doing the same work."""
    exchange_name = f"bench-raw-{uuid.uuid4().hex[:8]}"
    counter = Counter(n)

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await message.ack()
        counter.hit()

    connection = await aio_pika.connect_robust(url)
    async with connection:
        publisher = await connection.channel(publisher_confirms=True)
        exchange = await publisher.declare_exchange(
            exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        consumer = await connection.channel()
        await consumer.set_qos(prefetch_count=PREFETCH)
        queue = await consumer.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange_name, "bench.event")
        await queue.consume(on_message)

        async def publish(i: int) -> object:
            message = aio_pika.Message(
                BODY,
                headers={"Content-Type": "application/json", "Micro-Id": str(i)},
                content_type="application/json",
                message_id=str(i),
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            return await exchange.publish(message, "bench.event", mandatory=False)

        rate = await timed(n, counter, publish_windowed(n, WINDOW, publish))
        await publisher.exchange_delete(exchange_name)
    return rate


async def _delete_exchanges(url: str, *names: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for name in names:
            await channel.exchange_delete(name)


async def run(n: int, url: str = URL) -> dict[str, float]:
    """{"micro": msgs/s, "raw": msgs/s} for ``n`` events each (raw first, then micro)."""
    raw = await run_raw(n, url)
    micro = await run_micro(n, url)
    return {"micro": micro, "raw": raw}


def main() -> None:
    main_for(
        run,
        doc=__doc__,
        address=URL,
        anchor="aio-pika",
        title=lambda n: f"rabbitmq pub/sub, {n} events, {len(BODY)}-byte body",
    )


if __name__ == "__main__":
    main()
