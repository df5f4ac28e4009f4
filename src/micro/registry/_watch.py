"""What the polling backends (consul, kubernetes) share to serve ``watch``.

A backend runs one ``follow`` task per watch that puts results on the watch's queue and
resolves ``ready`` once it has its baseline; ``close()`` ends every watch by putting
``None`` on each queue in ``watchers``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Coroutine, Mapping
from typing import Any, TypeVar

from micro.registry import Result, Service

K = TypeVar("K")

WatchQueue = asyncio.Queue[Result | None]
Follow = Callable[[WatchQueue, asyncio.Future[None]], Coroutine[Any, Any, None]]


async def watch_queue(
    watchers: set[WatchQueue],
    follow: Follow,
    tasks: set[asyncio.Task[None]] | None = None,
) -> AsyncGenerator[Result, None]:
    """Start ``follow``, wait for its baseline (or its end), then yield what it reports.

    ``tasks``, when given, holds the follow task while it runs (for ``close()`` to cancel).
    """
    queue: WatchQueue = asyncio.Queue()
    watchers.add(queue)
    ready = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(follow(queue, ready))
    if tasks is not None:
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    try:
        await asyncio.wait([ready, task], return_when=asyncio.FIRST_COMPLETED)
        while (result := await queue.get()) is not None:
            yield result
    finally:
        watchers.discard(queue)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def diff(old: Mapping[K, Service], new: Mapping[K, Service]) -> list[Result]:
    """The results that turn ``old`` into ``new``: deletes first, then creates and updates."""
    results = [Result("delete", svc) for key, svc in old.items() if key not in new]
    for key, svc in new.items():
        if key not in old:
            results.append(Result("create", svc))
        elif old[key] != svc:
            results.append(Result("update", svc))
    return results
