"""The retry budget and the bulkhead."""

from __future__ import annotations

import asyncio

import pytest

from micro.client._budget import RetryBudget, RetryBudgetPolicy
from micro.client._bulkhead import Bulkhead, BulkheadPolicy
from micro.client.retries import retry_on_refusal
from micro.errors import (
    BadRequest,
    BulkheadFull,
    CircuitOpen,
    ConnectError,
    MicroError,
    ServiceUnavailable,
    TooManyRequests,
)
from tests.selector.helpers import FakeClock


def test_budget_allows_the_floor_then_a_share_of_the_calls() -> None:
    clock = FakeClock()
    budget = RetryBudget(RetryBudgetPolicy(ratio=0.1, min_retries=2, window=10.0), clock)
    assert budget.retry()
    assert budget.retry()
    assert not budget.retry()
    for _ in range(20):
        budget.call()  # 10 % of 20 calls: two more retries
    assert budget.retry()
    assert budget.retry()
    assert not budget.retry()
    assert budget.denied == 2


def test_budget_refills_as_the_window_moves() -> None:
    clock = FakeClock()
    budget = RetryBudget(RetryBudgetPolicy(ratio=0.0, min_retries=1, window=10.0), clock)
    assert budget.retry()
    assert not budget.retry()
    clock.advance(10.5)
    assert budget.retry()


def test_budget_bounds_attempts_in_an_outage() -> None:
    """Every call fails and wants 3 retries: attempts stay near calls * (1 + ratio)."""
    clock = FakeClock()
    budget = RetryBudget(RetryBudgetPolicy(ratio=0.2, min_retries=10, window=10.0), clock)
    attempts = 0
    for _ in range(1000):
        budget.call()
        attempts += 1
        for _ in range(3):
            if not budget.retry():
                break
            attempts += 1
        clock.advance(0.001)
    assert attempts <= 1000 * 1.2 + 10


async def test_bulkhead_fails_fast_past_the_limit() -> None:
    bulkhead = Bulkhead(BulkheadPolicy(max_in_flight=2))
    deadline = asyncio.get_running_loop().time() + 5
    await bulkhead.acquire("svc", deadline)
    await bulkhead.acquire("svc", deadline)
    await bulkhead.acquire("other", deadline)  # another service has its own slots
    with pytest.raises(BulkheadFull, match=r"2 calls to svc in flight, limit 2") as info:
        await bulkhead.acquire("svc", deadline)
    assert info.value.code == 503
    assert bulkhead.rejected == 1
    bulkhead.release("svc")
    await bulkhead.acquire("svc", deadline)
    assert bulkhead.in_flight("svc") == 2


async def test_bulkhead_waits_a_bounded_time_for_a_slot() -> None:
    bulkhead = Bulkhead(BulkheadPolicy(max_in_flight=1, wait=1.0))
    loop = asyncio.get_running_loop()
    await bulkhead.acquire("svc", loop.time() + 5)
    waiter = asyncio.create_task(bulkhead.acquire("svc", loop.time() + 5))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    bulkhead.release("svc")  # handed to the waiter
    await asyncio.wait_for(waiter, 1)
    assert bulkhead.in_flight("svc") == 1
    started = loop.time()
    with pytest.raises(BulkheadFull):
        await bulkhead.acquire("svc", loop.time() + 0.05)  # the deadline bounds the wait
    assert loop.time() - started < 0.5
    bulkhead.release("svc")
    assert bulkhead.in_flight("svc") == 0


async def test_a_cancelled_waiter_gives_no_slot_away() -> None:
    bulkhead = Bulkhead(BulkheadPolicy(max_in_flight=1, wait=5.0))
    loop = asyncio.get_running_loop()
    await bulkhead.acquire("svc", loop.time() + 5)
    waiter = asyncio.create_task(bulkhead.acquire("svc", loop.time() + 5))
    await asyncio.sleep(0.01)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    bulkhead.release("svc")
    assert bulkhead.in_flight("svc") == 0
    await bulkhead.acquire("svc", loop.time() + 5)


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (ServiceUnavailable("shed"), True),
        (MicroError.parse('{"code":503,"detail":"server is shutting down"}'), True),
        (ConnectError("refused"), True),
        (CircuitOpen("open"), False),
        (BulkheadFull("full"), False),
        (TooManyRequests("slow down"), False),
        (BadRequest("bad"), False),
    ],
)
def test_retry_on_refusal(error: BaseException, retried: bool) -> None:
    assert retry_on_refusal(error) is retried
