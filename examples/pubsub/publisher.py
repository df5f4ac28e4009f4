"""The users service: publishes ``UserCreated`` events and reads the ``Welcomed`` replies.

    python examples/pubsub/publisher.py 5          # publish 5 users, wait for 5 welcomes
    MICRO_BROKER=redis python examples/pubsub/publisher.py 5

Run it against ``subscriber.py`` on the same backend (``MICRO_BROKER``, default http).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(__file__))))

import micro
from examples.pubsub.events import TOPIC, WELCOMED, UserCreated, Welcomed


async def run(count: int, timeout: float = 20.0) -> int:
    """Publish ``count`` users; return how many welcomes came back within ``timeout``."""
    service = micro.Service("example.pubsub.users", handle_signals=False)
    welcomed: asyncio.Queue[Welcomed] = asyncio.Queue()

    @service.subscribe(WELCOMED)
    async def on_welcomed(event: Welcomed) -> None:
        await welcomed.put(event)

    async with service:
        for n in range(1, count + 1):
            await service.client.publish(TOPIC, UserCreated(id=n, email=f"user{n}@example.com"))
        got = 0
        try:
            async with asyncio.timeout(timeout):
                while got < count:
                    event = await welcomed.get()
                    print(f"welcomed {event.user_id} by {event.by}", flush=True)
                    got += 1
        except TimeoutError:
            print(f"only {got} of {count} welcomed", flush=True)
    return got


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    got = asyncio.run(run(count))
    sys.exit(0 if got == count else 1)


if __name__ == "__main__":
    main()
