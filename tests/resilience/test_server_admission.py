"""Load shedding and rate limits on a real server over loopback HTTP; the Service options."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import micro
from micro.client.rpc import RpcClient
from micro.errors import ServiceUnavailable, TooManyRequests
from micro.registry.memory import MemoryRegistry
from micro.server.rpc import RpcServer
from micro.transport.http import HttpTransport


class Held:
    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.ran = 0

    async def hold(self, req: dict[str, Any]) -> dict[str, Any]:
        self.ran += 1
        await self.gate.wait()
        return {}

    async def hello(self, req: dict[str, Any]) -> dict[str, Any]:
        self.ran += 1
        return {}


Serve = Callable[..., Awaitable[RpcServer]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[RpcServer] = []

    async def make(handler: object, **options: Any) -> RpcServer:
        server = RpcServer(
            name="adm",
            address="127.0.0.1:0",
            transport=HttpTransport(),
            registry=MemoryRegistry(),
            **options,
        )
        server.handle(handler)
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop(grace=0)


@pytest.fixture
async def client() -> AsyncIterator[RpcClient]:
    async with RpcClient(registry="memory", transport="http", retries=0, timeout=5) as rpc:
        yield rpc


async def test_past_max_in_flight_a_call_is_refused_at_once(
    serve: Serve, client: RpcClient
) -> None:
    held = Held()
    server = await serve(held, max_in_flight=2)
    at = server.address
    calls = [asyncio.create_task(client.call("adm", "Held.Hold", {}, address=at)) for _ in "ab"]
    while held.ran < 2:
        await asyncio.sleep(0.01)
    with pytest.raises(ServiceUnavailable, match="2 calls in flight on adm, limit 2"):
        await client.call("adm", "Held.Hello", {}, address=at)
    assert held.ran == 2  # the handler never ran
    stats = await client.call("adm", "Debug.Stats", {}, address=at)  # never shed
    assert (stats["shed"], stats["in_flight"]) == (1, 2)
    held.gate.set()
    await asyncio.gather(*calls)
    await client.call("adm", "Held.Hello", {}, address=at)


async def test_a_caller_past_its_rate_gets_429(serve: Serve, client: RpcClient) -> None:
    held = Held()
    server = await serve(held, rate_limit=0.001)  # a burst of one, then hardly any
    at = server.address
    await client.call("adm", "Held.Hello", {}, address=at)
    with pytest.raises(TooManyRequests, match=r"127\.0\.0\.1 is over 0\.001 calls/s") as info:
        await client.call("adm", "Held.Hello", {}, address=at)
    assert info.value.code == 429
    assert held.ran == 1
    stats = await client.call("adm", "Debug.Stats", {}, address=at)
    assert stats["rate_limited"] == 1


async def test_no_limit_means_no_admission_check(serve: Serve) -> None:
    server = await serve(Held())
    assert server._router.admit is None
    assert server.resilience_stats() == {"shed": 0, "rate_limited": 0}


async def test_service_options_reach_its_server_and_client() -> None:
    service = micro.Service(
        "opts",
        registry="memory",
        transport="memory",
        max_in_flight=3,
        rate_limit=2.5,
        breaker=True,
        bulkhead=4,
    )
    assert service.server.shedder is not None
    assert service.server.shedder.limit == 3
    assert service.server.rate_limiter is not None
    assert service.server.rate_limiter.rate == 2.5
    guard = service.client.resilience
    assert guard is not None
    assert guard.breakers is not None
    assert guard.bulkhead is not None
    assert guard.bulkhead.policy.max_in_flight == 4
    stats = service.server.debug.resilience()
    assert stats["breakers_open"] == 0
    assert set(stats) >= {"shed", "rate_limited", "retries_denied", "ejected"}
