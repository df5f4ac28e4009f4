"""A subscriber process for the cross-process tests: HttpBroker over the mDNS registry.

    python tests/broker/sub_proc.py <topic> <queue or -> [delay seconds per message]

Prints ``READY`` once subscribed, then ``GOT <X-Seq>`` per message (flushed), until killed.
"""

from __future__ import annotations

import asyncio
import sys

from micro.broker import Event
from micro.broker.http import HttpBroker
from micro.registry.mdns import MdnsRegistry


async def main(topic: str, queue: str | None, delay: float) -> None:
    async def handler(event: Event) -> None:
        if delay:
            await asyncio.sleep(delay)
        print("GOT", event.message.header.get("X-Seq", ""), flush=True)

    async with MdnsRegistry() as registry, HttpBroker(registry=registry) as broker:
        await broker.subscribe(topic, handler, queue=queue)
        print("READY", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    queue = None if sys.argv[2] == "-" else sys.argv[2]
    asyncio.run(main(sys.argv[1], queue, float(sys.argv[3]) if len(sys.argv) > 3 else 0.0))
