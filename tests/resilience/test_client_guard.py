"""The client's resilience mechanisms on real calls (memory transport, scripted servers)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from micro.client.resilience import (
    BreakerPolicy,
    BulkheadPolicy,
    HedgePolicy,
    RetryBudgetPolicy,
)
from micro.client.rpc import RpcClient
from micro.errors import BulkheadFull, CircuitOpen, InternalServerError
from micro.registry import Node
from micro.settings import BACKEND_GROUPS, load
from tests.client.fakes import FakeServer, RecordingSelector, RecordingTransport, fail, gated, slow

BOOM = InternalServerError("boom", id="greeter")
FAST_BREAKER = BreakerPolicy(
    failure_rate=0.5, window=10.0, min_calls=2, open_for=60.0, per_service=False
)


def no_backoff(attempt: int) -> float:
    return 0.0


@pytest.fixture
def transport() -> RecordingTransport:
    return RecordingTransport()


@pytest.fixture
async def servers(transport: RecordingTransport) -> AsyncIterator[list[FakeServer]]:
    started = [await FakeServer(transport).start() for _ in range(3)]
    yield started
    for server in started:
        await server.stop()


def selector_of(servers: list[FakeServer]) -> RecordingSelector:
    return RecordingSelector([Node(id=f"n{i}", address=s.address) for i, s in enumerate(servers)])


def client(
    transport: RecordingTransport, servers: list[FakeServer], **options: object
) -> RpcClient:
    return RpcClient(
        transport=transport,
        selector=selector_of(servers),
        backoff=no_backoff,
        **options,  # type: ignore[arg-type]
    )


async def test_an_open_node_breaker_sends_calls_to_the_other_nodes(
    transport: RecordingTransport, servers: list[FakeServer]
) -> None:
    servers[0].handlers["Greeter.Hello"] = fail(BOOM)
    failed = 0
    async with client(transport, servers, retries=0, breaker=FAST_BREAKER) as rpc:
        for _ in range(30):
            try:
                await rpc.call("greeter", "Greeter.Hello", {})
            except InternalServerError:
                failed += 1
        stats = rpc.resilience_stats()
    assert len(servers[0].requests) == 2  # min_calls, then its breaker opened
    assert failed == 2
    assert len(servers[1].requests) + len(servers[2].requests) == 28
    assert stats["breakers_open"] == 1


async def test_a_node_breaker_failure_is_retried_on_another_node(
    transport: RecordingTransport, servers: list[FakeServer]
) -> None:
    servers[0].handlers["Greeter.Hello"] = fail(BOOM)
    async with client(transport, servers, retries=1, breaker=FAST_BREAKER) as rpc:
        for _ in range(12):
            await rpc.call("greeter", "Greeter.Hello", {})  # never fails: retried elsewhere


async def test_an_open_service_breaker_fails_fast(
    transport: RecordingTransport, servers: list[FakeServer]
) -> None:
    for server in servers:
        server.handlers["Greeter.Hello"] = fail(BOOM)
    policy = BreakerPolicy(failure_rate=0.5, min_calls=4, open_for=60.0)
    async with client(transport, servers, retries=0, breaker=policy) as rpc:
        for _ in range(4):
            with pytest.raises(InternalServerError):
                await rpc.call("greeter", "Greeter.Hello", {})
        sent = sum(len(s.requests) for s in servers)
        with pytest.raises(CircuitOpen, match="circuit open: service greeter") as info:
            await rpc.call("greeter", "Greeter.Hello", {})
        assert info.value.code == 503
        assert sum(len(s.requests) for s in servers) == sent  # nothing was sent
        assert rpc.resilience_stats()["breaker_rejected"] == 1


async def test_every_node_open_is_circuit_open(
    transport: RecordingTransport, servers: list[FakeServer]
) -> None:
    for server in servers:
        server.handlers["Greeter.Hello"] = fail(BOOM)
    policy = BreakerPolicy(failure_rate=0.5, min_calls=1, open_for=60.0, per_service=False)
    async with client(transport, servers, retries=2, breaker=policy) as rpc:
        with pytest.raises(InternalServerError):
            await rpc.call("greeter", "Greeter.Hello", {})  # 3 attempts, one per node
        with pytest.raises(CircuitOpen, match=r"every node of greeter \(n0, n1, n2\)"):
            await rpc.call("greeter", "Greeter.Other", {})


async def test_bulkhead_refuses_calls_past_the_limit(
    transport: RecordingTransport, servers: list[FakeServer]
) -> None:
    gate = asyncio.Event()
    for server in servers:
        server.handlers["Greeter.Hello"] = gated(gate)
    async with client(transport, servers, bulkhead=BulkheadPolicy(max_in_flight=2)) as rpc:
        held = [asyncio.create_task(rpc.call("greeter", "Greeter.Hello", {})) for _ in range(2)]
        await asyncio.sleep(0.01)
        with pytest.raises(BulkheadFull, match="2 calls to greeter in flight, limit 2"):
            await rpc.call("greeter", "Greeter.Hello", {})
        gate.set()
        await asyncio.gather(*held)
        await rpc.call("greeter", "Greeter.Hello", {})  # slots came back
        assert rpc.resilience_stats()["bulkhead_rejected"] == 1
    assert sum(len(s.requests) for s in servers) == 3


async def test_retry_budget_stops_retries_in_an_outage(
    transport: RecordingTransport, servers: list[FakeServer]
) -> None:
    for server in servers:
        server.handlers["Greeter.Hello"] = fail(BOOM)
    budget = RetryBudgetPolicy(ratio=0.0, min_retries=2, window=60.0)
    async with client(transport, servers, retries=3, retry_budget=budget) as rpc:
        for _ in range(10):
            with pytest.raises(InternalServerError):
                await rpc.call("greeter", "Greeter.Hello", {})
        assert rpc.resilience_stats()["retries_denied"] == 10
    assert sum(len(s.requests) for s in servers) == 10 + 2  # 10 calls, the floor of retries


async def test_hedged_call_takes_the_first_answer_and_cancels_the_other(
    transport: RecordingTransport, servers: list[FakeServer]
) -> None:
    servers[0].handlers["Greeter.Read"] = slow(5.0)
    servers[0].handlers["Greeter.Write"] = slow(0.3)
    hedge = HedgePolicy(after=0.02, endpoints=frozenset({"Greeter.Read"}))
    loop = asyncio.get_running_loop()
    async with client(transport, servers[:2], hedge=hedge) as rpc:
        started = loop.time()
        assert await rpc.call("greeter", "Greeter.Read", {"n": 1}) == {"n": 1}
        assert loop.time() - started < 1.0
        assert rpc.resilience_stats()["hedges"] == 1
        assert [len(s.requests) for s in servers[:2]] == [1, 1]
        assert transport.dialed[0].closed  # the loser's connection was closed
        started = loop.time()
        await rpc.call("greeter", "Greeter.Write", {})  # not listed: never hedged
        assert loop.time() - started >= 0.25
        assert rpc.resilience_stats()["hedges"] == 1


async def test_settings_turn_mechanisms_on(monkeypatch: pytest.MonkeyPatch) -> None:
    assert RpcClient(transport="memory", settings=load(groups=BACKEND_GROUPS)).resilience is None
    monkeypatch.setenv("MICRO_RESILIENCE_BREAKER", "1")
    monkeypatch.setenv("MICRO_RESILIENCE_BREAKER_MIN_CALLS", "7")
    monkeypatch.setenv("MICRO_RESILIENCE_BULKHEAD", "9")
    monkeypatch.setenv("MICRO_RESILIENCE_HEDGE_AFTER", "30ms")
    monkeypatch.setenv("MICRO_RESILIENCE_HEDGE_ENDPOINTS", "A.B, C.D")
    rpc = RpcClient(transport="memory", settings=load(groups=BACKEND_GROUPS), retry_budget=True)
    guard = rpc.resilience
    assert guard is not None
    assert guard.breakers is not None
    assert guard.breakers.policy.min_calls == 7
    assert guard.bulkhead is not None
    assert guard.bulkhead.policy.max_in_flight == 9
    assert guard.budget is not None
    assert guard.budget.policy.ratio == 0.2
    assert guard.hedge == HedgePolicy(0.03, frozenset({"A.B", "C.D"}))
    off = RpcClient(
        transport="memory",
        settings=load(groups=BACKEND_GROUPS),
        breaker=False,
        bulkhead=0,
        hedge=None,
    )
    assert off.resilience is not None
    assert off.resilience.breakers is None
    assert off.resilience.bulkhead is None
