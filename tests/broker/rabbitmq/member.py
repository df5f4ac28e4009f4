"""A queue-group member in its own process; prints ``got <id>`` and hangs in the handler.

    python -m tests.broker.rabbitmq.member URL EXCHANGE TOPIC QUEUE

The test SIGKILLs it while the handler holds a message it has not acknowledged.
"""

from __future__ import annotations

import asyncio
import sys

from micro.broker import Event
from micro.broker.rabbitmq import RabbitmqBroker


async def main(url: str, exchange: str, topic: str, queue: str) -> None:
    async def hang(event: Event) -> None:
        print("got", event.id, flush=True)
        await asyncio.Event().wait()

    async with RabbitmqBroker(address=url, exchange=exchange, prefetch=1) as broker:
        await broker.subscribe(topic, hang, queue=queue)
        print("ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
