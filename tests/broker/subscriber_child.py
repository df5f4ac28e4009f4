"""A queue-group member (JetStream or Redis Streams) that takes one message and never acks it.

    python -m tests.broker.subscriber_child nats|redis URL TOPIC QUEUE OPTIONS_JSON

Prints ``READY`` once subscribed and ``GOT <body>`` when a message arrives, then hangs in
the handler until killed: the parent SIGKILLs it there, before any ack (XACK).
"""

from __future__ import annotations

import asyncio
import json
import sys

from micro.broker import Broker, Event
from micro.broker.nats import NatsBroker
from micro.broker.redis import RedisBroker


def make_broker(backend: str, url: str, options: str) -> Broker:
    if backend == "nats":
        return NatsBroker(address=url, jetstream=True, **json.loads(options))
    return RedisBroker(address=url, **json.loads(options))


async def main(backend: str, url: str, topic: str, queue: str, options: str) -> None:
    broker = make_broker(backend, url, options)
    await broker.connect()

    async def hang(event: Event) -> None:
        print("GOT", event.message.body.decode(), flush=True)
        await asyncio.Event().wait()

    await broker.subscribe(topic, hang, queue=queue)
    print("READY", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
