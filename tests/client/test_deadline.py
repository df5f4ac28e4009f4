"""TaskDeadline: a timeout on the current task that tells its own cancel from anyone else's."""

from __future__ import annotations

import asyncio

import pytest

from micro.client.deadline import TaskDeadline


async def _guarded(delay: float, timeout: float) -> str:
    deadline = TaskDeadline(asyncio.get_running_loop().time() + timeout)
    try:
        await asyncio.sleep(delay)
        return "done"
    except asyncio.CancelledError:
        if deadline.expired():
            return "expired"
        raise
    finally:
        deadline.cancel()


async def test_work_that_ends_in_time_is_not_touched() -> None:
    assert await _guarded(0.0, 0.5) == "done"
    await asyncio.sleep(0.6)  # the disarmed timer never fires into a later await
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_overdue_work_is_cancelled_and_reported_as_expired() -> None:
    assert await _guarded(5.0, 0.05) == "expired"
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_cancel_from_outside_is_not_mistaken_for_the_deadline() -> None:
    task = asyncio.create_task(_guarded(5.0, 5.0))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_nested_deadlines_each_claim_only_their_own_cancel() -> None:
    async def outer() -> str:
        deadline = TaskDeadline(asyncio.get_running_loop().time() + 0.05)
        try:
            return await _guarded(5.0, 5.0)  # the inner deadline is later: not its cancel
        except asyncio.CancelledError:
            return "outer expired" if deadline.expired() else "lost"
        finally:
            deadline.cancel()

    assert await outer() == "outer expired"


async def test_outside_a_task_is_an_error() -> None:
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[BaseException] = loop.create_future()

    def callback() -> None:  # runs on the loop, but in no task
        try:
            TaskDeadline(loop.time() + 1, loop)
        except RuntimeError as exc:
            outcome.set_result(exc)

    loop.call_soon(callback)
    assert "inside an asyncio task" in str(await outcome)
