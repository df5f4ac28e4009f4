"""The dashboard's task helpers."""

from __future__ import annotations

import asyncio
import time

from micro.toolkit.web._context import stop


async def test_stop_waits_for_a_task_that_ends_when_cancelled() -> None:
    ended = asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            ended.set()

    task = asyncio.create_task(work())
    await asyncio.sleep(0)
    await stop(task)
    assert task.cancelled()
    assert ended.is_set()


async def test_stop_leaves_behind_a_task_that_does_not_end_when_cancelled() -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue  # as a watch that swallows its cancellation

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    started = time.monotonic()
    await stop(task, wait=0.2)  # before: waited for ever
    assert time.monotonic() - started < 2
    assert not task.done()
    release.set()
    task.cancel()
    await asyncio.wait({task}, timeout=1)
    assert task.done()
