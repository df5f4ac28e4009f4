"""A JetStream queue-group member that takes one message and never acks it.

    python subscriber_child.py URL TOPIC QUEUE OPTIONS_JSON

Prints ``READY`` once subscribed and ``GOT <body>`` when a message arrives, then hangs in
the handler until killed: the parent SIGKILLs it there, before any ack.
"""

from __future__ import annotations

import asyncio
import json
import sys

from micro.broker import Event
from micro.broker.nats import NatsBroker


async def main(url: str, topic: str, queue: str, options: str) -> None:
    broker = NatsBroker(address=url, jetstream=True, **json.loads(options))
    await broker.connect()

    async def hang(event: Event) -> None:
        print("GOT", event.message.body.decode(), flush=True)
        await asyncio.Event().wait()

    await broker.subscribe(topic, hang, queue=queue)
    print("READY", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
