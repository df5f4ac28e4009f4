"""What the ``pubsub_<backend>`` benchmarks share: a receive counter, windowed publishing and
the received-messages-per-second figure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["Counter", "publish_windowed", "timed"]


class Counter:
    """Counts received messages; ``done`` is set at ``n``."""

    def __init__(self, n: int) -> None:
        self.n, self.count, self.done = n, 0, asyncio.Event()

    def hit(self, k: int = 1) -> None:
        self.count += k
        if self.count >= self.n:
            self.done.set()


async def publish_windowed(
    n: int, window: int, publish: Callable[[int], Awaitable[object]]
) -> None:
    """``publish(i)`` for i in range(n), at most ``window`` awaiting at once."""
    slots = asyncio.Semaphore(window)
    tasks: set[asyncio.Task[None]] = set()

    async def one(i: int) -> None:
        try:
            await publish(i)
        finally:
            slots.release()

    for i in range(n):
        await slots.acquire()
        task = asyncio.create_task(one(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)


async def timed(n: int, counter: Counter, publish_all: Awaitable[None]) -> float:
    """Received msgs/s, from now (``publish_all`` runs) until ``counter`` is done (<= 120 s)."""
    start = time.perf_counter()
    await publish_all
    await asyncio.wait_for(counter.done.wait(), 120)
    return n / (time.perf_counter() - start)
