"""hedged(): the first success wins, the loser is cancelled, errors when both fail."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from micro.client._hedge import HedgePolicy, hedged
from micro.errors import InternalServerError
from micro.registry import Node

A, B = Node(id="a", address="a:1"), Node(id="b", address="b:1")


class Script:
    """Per node: seconds before answering, and whether it fails."""

    def __init__(self, **plan: tuple[float, bool]) -> None:
        self.plan = plan
        self.cancelled: list[str] = []

    async def __call__(self, node: Node) -> Any:
        seconds, fails = self.plan[node.id]
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self.cancelled.append(node.id)
            raise
        if fails:
            raise InternalServerError(f"{node.id} failed")
        return node.id


async def test_a_fast_first_attempt_sends_no_hedge() -> None:
    script = Script(a=(0.0, False), b=(0.0, False))
    assert await hedged(script, A, 0.05, lambda: B) == ("a", False)


async def test_the_hedge_wins_and_the_slow_attempt_is_cancelled() -> None:
    script = Script(a=(5.0, False), b=(0.0, False))
    assert await asyncio.wait_for(hedged(script, A, 0.01, lambda: B), 2) == ("b", True)
    assert script.cancelled == ["a"]


async def test_a_failed_hedge_still_waits_for_the_first() -> None:
    script = Script(a=(0.1, False), b=(0.0, True))
    assert await hedged(script, A, 0.01, lambda: B) == ("a", True)


async def test_both_failing_raise_the_first_attempts_error() -> None:
    script = Script(a=(0.05, True), b=(0.0, True))
    with pytest.raises(InternalServerError, match="a failed"):
        await hedged(script, A, 0.01, lambda: B)


async def test_no_other_node_means_no_hedge() -> None:
    script = Script(a=(0.05, False))
    assert await hedged(script, A, 0.01, lambda: None) == ("a", False)


async def test_cancelling_the_caller_cancels_both() -> None:
    script = Script(a=(5.0, False), b=(5.0, False))
    task = asyncio.create_task(hedged(script, A, 0.01, lambda: B))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(script.cancelled) == ["a", "b"]


def test_policy() -> None:
    policy = HedgePolicy(0.02, frozenset({"A.Get"}))
    assert policy.applies("A.Get")
    assert not policy.applies("A.Put")
    assert HedgePolicy(0.02, frozenset({"*"})).applies("A.Put")
    with pytest.raises(ValueError, match="after"):
        HedgePolicy(0.0)
