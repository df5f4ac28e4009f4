"""Faults against real node processes, with counted outcomes (``pytest -s`` prints them).

Each test runs a few seconds of load on loopback against ``tests/faults/node.py``
processes and asserts a bound on what it counted; docs/resilience.md quotes the figures.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from micro.client import CallFunc, CallOptions, Request
from micro.client.resilience import BreakerPolicy, RetryBudgetPolicy
from micro.client.rpc import RpcClient
from micro.errors import MicroError, ServiceUnavailable
from micro.registry import Node
from micro.selector.cache import RegistrySelector
from tests.faults.conftest import NAME, Nodes, percentile, registry_of, run_load

pytestmark = pytest.mark.timeout(60)


def quick_backoff(attempt: int) -> float:
    return 0.005


async def test_sigkill_one_of_three_nodes_under_load_fails_no_idempotent_call(
    nodes: Nodes,
) -> None:
    registry = await registry_of(await nodes.start(3))
    counts: Counter[str] = Counter()
    async with RpcClient(
        registry=registry,
        transport="http",
        retries=3,
        timeout=3.0,
        backoff=quick_backoff,
        breaker=BreakerPolicy(min_calls=10),
        retry_budget=RetryBudgetPolicy(),
    ) as client:

        async def worker() -> None:
            try:
                await client.call(NAME, "Fault.Hello", {})
                counts["ok"] += 1
            except MicroError as exc:
                counts["failed"] += 1
                counts[type(exc).__name__] += 1

        async def kill_node_0() -> None:
            await asyncio.sleep(1.0)
            await nodes.kill(0)
            counts["killed"] = 1

        await asyncio.gather(run_load(64, 3.0, worker), kill_node_0())
        stats = client.resilience_stats()
    print(f"\n[faults] SIGKILL 1 of 3 nodes, 64 in flight, 3 s: {dict(counts)}; {stats}")
    assert counts["killed"] == 1
    assert counts["ok"] > 500
    assert counts["failed"] == 0


async def test_a_slow_node_opens_its_breaker_and_p99_recovers(nodes: Nodes) -> None:
    addresses = await nodes.start(3)
    registry = await registry_of(addresses)
    # the selector's blacklist is set out of the way: the breaker alone must find the node
    selector = RegistrySelector(registry, failures=1_000_000)
    # the window sets how fast it reacts: the node's earlier successes must roll out of it
    breaker = BreakerPolicy(failure_rate=0.5, window=0.5, min_calls=5, open_for=30.0)
    samples: list[tuple[float, float, bool]] = []  # (started, seconds, ok)
    slow_at, run_for, bucket = 1.0, 4.0, 0.25
    async with RpcClient(
        selector=selector, transport="http", retries=0, timeout=0.3, breaker=breaker
    ) as client:
        loop = asyncio.get_running_loop()
        begin = loop.time()

        async def worker() -> None:
            started = loop.time()
            try:
                await client.call(NAME, "Fault.Hello", {})
                ok = True
            except MicroError:
                ok = False
            samples.append((started - begin, loop.time() - started, ok))

        async def slow_node_0() -> None:
            await asyncio.sleep(slow_at)
            await client.call(NAME, "Fault.SetDelay", {"seconds": 5}, address=addresses[0])

        await asyncio.gather(run_load(32, run_for, worker), slow_node_0())
        stats = client.resilience_stats()
        await selector.close()
    p99s = []
    for i in range(int((run_for - bucket) / bucket)):
        window = [s for t, s, _ in samples if i * bucket <= t < (i + 1) * bucket]
        p99s.append((i * bucket, percentile(window, 0.99), len(window)))
    healthy = percentile([s for t, s, _ in samples if bucket <= t < slow_at], 0.99)
    # under the 0.3 s call timeout the slow node's calls run into, with room for a loaded
    # machine's own tail
    bound = min(0.25, max(0.1, 3 * healthy))
    recovered = next(
        (t for t, _, _ in p99s if t >= slow_at and all(p < bound for u, p, _ in p99s if u >= t)),
        float("inf"),
    )
    failed = sum(not ok for _, _, ok in samples)
    shown = ", ".join(f"{t:.2f}s:{p * 1000:.0f}ms" for t, p, _ in p99s)
    print(
        f"\n[faults] slow node (1 of 3) at {slow_at}s: p99 per {bucket}s: {shown}; "
        f"healthy p99 {healthy * 1000:.0f} ms; recovered {recovered - slow_at:.2f}s after "
        f"(p99 < {bound * 1000:.0f} ms from then on); "
        f"{failed} of {len(samples)} calls failed; {stats}"
    )
    assert stats["breakers_open"] >= 1
    assert recovered - slow_at <= 1.5


async def _outage_attempts(addresses: list[str], budget: RetryBudgetPolicy | None) -> int:
    attempts = 0

    def counting(call: CallFunc) -> CallFunc:
        async def counted(node: Node, req: Request, opts: CallOptions) -> Any:
            nonlocal attempts
            attempts += 1
            return await call(node, req, opts)

        return counted

    registry = await registry_of(addresses)
    async with RpcClient(
        registry=registry,
        transport="http",
        retries=3,
        backoff=quick_backoff,
        wrappers=[counting],
        retry_budget=budget if budget is not None else False,
    ) as client:
        calls = iter(range(CALLS))

        async def caller() -> None:
            for _ in calls:
                with pytest.raises(MicroError):
                    await client.call(NAME, "Fault.Hello", {})

        await asyncio.gather(*(caller() for _ in range(16)))
    return attempts


CALLS = 400


async def test_retry_budget_bounds_attempts_in_a_full_outage(nodes: Nodes) -> None:
    addresses = await nodes.start(3)
    for i in range(3):
        await nodes.kill(i)
    budget = RetryBudgetPolicy(ratio=0.2, min_retries=10, window=10.0)
    unbounded = await _outage_attempts(addresses, None)
    bounded = await _outage_attempts(addresses, budget)
    limit = CALLS * (1 + budget.ratio) + budget.min_retries
    print(
        f"\n[faults] full outage, {CALLS} calls with retries=3: {unbounded} attempts without "
        f"a budget, {bounded} with one (bound {limit:.0f})"
    )
    assert unbounded == CALLS * 4
    assert CALLS < bounded <= limit


async def _shed_run(address: str, seconds: float) -> tuple[list[float], list[float]]:
    """32 callers in a loop on one node: latencies of admitted calls and of refusals."""
    admitted: list[float] = []
    refused: list[float] = []
    async with RpcClient(registry="memory", transport="http", retries=0, timeout=5.0) as client:
        loop = asyncio.get_running_loop()

        async def worker() -> None:
            started = loop.time()
            try:
                await client.call(NAME, "Fault.Work", {}, address=address)
                admitted.append(loop.time() - started)
            except ServiceUnavailable:
                refused.append(loop.time() - started)
                await asyncio.sleep(0.05)  # a refused caller backs off before trying again

        await run_load(32, seconds, worker)
    return admitted, refused


async def test_load_shedding_keeps_admitted_p99_bounded_at_4x_capacity(nodes: Nodes) -> None:
    work, slots = 0.1, 8  # capacity: 8 slots of 100 ms, 80 calls/s; 32 callers: 4x
    env = {"FAULT_WORK": str(work), "FAULT_SLOTS": str(slots)}
    (shedding,) = await nodes.start(1, MICRO_RESILIENCE_MAX_IN_FLIGHT=str(slots), **env)
    (plain,) = await nodes.start(1, **env)
    admitted, refused = await _shed_run(shedding, 2.0)
    queued, _ = await _shed_run(plain, 2.0)
    async with RpcClient(registry="memory", transport="http") as client:
        stats = await client.call(NAME, "Debug.Stats", {}, address=shedding)
    shed_p99, plain_p99 = percentile(admitted, 0.99), percentile(queued, 0.99)
    refused_p99 = percentile(refused, 0.99)
    print(
        f"\n[faults] 32 callers on 8 slots of {work * 1000:.0f} ms (4x capacity), 2 s each: "
        f"with shedding {len(admitted)} admitted p99 {shed_p99 * 1000:.0f} ms, "
        f"{len(refused)} refused p99 {refused_p99 * 1000:.1f} ms (server shed={stats['shed']}); "
        f"without: {len(queued)} calls p99 {plain_p99 * 1000:.0f} ms"
    )
    assert stats["shed"] == len(refused) > 0
    assert shed_p99 <= 2.5 * work  # the work itself, plus a loaded machine's overhead
    assert shed_p99 < plain_p99 / 2
    assert plain_p99 >= 3 * work
    assert refused_p99 < work
