"""Hedged requests: when an idempotent call is slow, ask a second node too; first answer wins.

A tail of slow answers (a node pausing for a collection, a cold cache, a noisy neighbour)
sets a service's p99. Hedging sends the same request to another node after ``after``
seconds without an answer; whichever succeeds first is returned and the other attempt is
cancelled (its connection is closed, so its server sees the caller go away). If one fails,
the other is still awaited. Only endpoints listed in ``endpoints`` are hedged: a request is
sent twice, which is only safe for idempotent handlers. Off by default.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from micro.registry import Node

__all__ = ["HedgePolicy", "hedged"]


@dataclass(frozen=True)
class HedgePolicy:
    """Attributes:
    after: seconds without an answer before the second attempt is sent.
    endpoints: the idempotent endpoints hedged (``Handler.Method``; ``"*"``: every one).
    """

    after: float = 0.05
    endpoints: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.after <= 0:
            raise ValueError("after must be > 0")

    def applies(self, endpoint: str) -> bool:
        return endpoint in self.endpoints or "*" in self.endpoints


Attempt = Callable[[Node], Awaitable[Any]]


async def hedged(
    attempt: Attempt, node: Node, after: float, second: Callable[[], Node | None]
) -> tuple[Any, bool]:
    """Run ``attempt(node)``; past ``after`` seconds, also ``attempt(second())``.

    Returns the first success and whether a hedge was sent. Raises the first attempt's
    error when every attempt failed. Cancelling the caller cancels both attempts.
    """
    first = asyncio.ensure_future(attempt(node))
    pending: set[asyncio.Future[Any]] = {first}
    try:
        done, _ = await asyncio.wait(pending, timeout=after)
        if done:
            return first.result(), False
        other = second()
        if other is None:
            return await first, False
        pending.add(asyncio.ensure_future(attempt(other)))
        failures: list[BaseException] = []
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                error = task.exception()
                if error is None:
                    return task.result(), True
                failures.append(error)
        first_error = first.exception()
        raise first_error if first_error is not None else failures[0]
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
