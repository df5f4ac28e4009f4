"""What the ``pubsub_<backend>`` benchmarks share: a receive counter, windowed publishing and
the received-messages-per-second figure."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence

__all__ = ["Counter", "main_for", "publish_windowed", "timed"]


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


def main_for(
    run: Callable[[int, str], Awaitable[dict[str, float]]],
    *,
    doc: str | None,
    address: str,
    anchor: str,
    title: Callable[[int], str],
    modes: Sequence[tuple[str, str, str]] = (("", "micro", "raw"),),
) -> None:
    """The command line of one ``pubsub_<backend>`` module: ``-n``, ``--url``, ``--json``.

    ``modes`` are ``(label, micro key, raw key)`` rows of ``run``'s result to print.
    """
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000, help="events per side (and mode)")
    parser.add_argument("--url", "--address", default=address, help=f"default {address}")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    result = asyncio.run(run(args.n, args.url))
    if args.json:
        print(json.dumps(result))
        return
    print(title(args.n))
    width = max(len(label) for label, _, _ in modes)
    for label, micro, raw in modes:
        ratio = result[micro] / result[raw]
        print(
            f"  {label:<{width}} raw {anchor}: {result[raw]:>9,.0f} msg/s   "
            f"micro: {result[micro]:>9,.0f} msg/s   ({ratio:.2f}x raw)"
        )
