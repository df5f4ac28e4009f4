"""Retries: which errors, how many attempts, the backoff schedule, one deadline for all."""

from __future__ import annotations

import asyncio

import pytest

from micro.client.retries import (
    ExponentialBackoff,
    exponential_backoff,
    retry_always,
    retry_never,
    retry_on_connect_error,
    retry_on_error,
)
from micro.client.rpc import RpcClient
from micro.errors import (
    BadRequest,
    ConnectError,
    ConnectionClosed,
    Forbidden,
    InternalServerError,
    MicroError,
    NotFound,
    Timeout,
)
from micro.registry.memory import MemoryRegistry
from tests.client.fakes import (
    FakeServer,
    RecordingTransport,
    echo,
    fail,
    hang_up,
    sequence,
    slow,
)


class Waits:
    """An injected backoff that records the attempts it was asked about."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.attempts: list[int] = []

    def __call__(self, attempt: int) -> float:
        self.attempts.append(attempt)
        return self.seconds


def test_backoff_schedule_without_jitter() -> None:
    backoff = ExponentialBackoff(random=lambda: 0.5)  # the middle of the jitter range
    assert [backoff(n) for n in range(6)] == [0.0, 0.01, 0.1, 1.0, 5.0, 5.0]


def test_backoff_jitter_bounds() -> None:
    low = ExponentialBackoff(random=lambda: 0.0)
    high = ExponentialBackoff(random=lambda: 0.999999)
    assert [low(n) for n in (1, 2, 3, 4)] == pytest.approx([0.005, 0.05, 0.5, 2.5])
    assert [high(n) for n in (1, 2, 3)] == pytest.approx([0.015, 0.15, 1.5], rel=1e-5)
    assert high(4) == 5.0  # capped after jitter too
    assert high(1000) == 5.0  # no overflow on absurd attempt numbers


def test_default_backoff_spreads() -> None:
    waits = {exponential_backoff(1) for _ in range(50)}
    assert len(waits) > 1
    assert all(0.005 <= w < 0.015 for w in waits)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ConnectError("refused"), True),
        (ConnectionClosed("closed"), True),
        (Timeout("slow"), True),
        (InternalServerError("boom"), True),
        (MicroError("odd", code=500), True),
        (BadRequest("bad"), False),
        (NotFound("missing"), False),
        (Forbidden("no"), False),
        (MicroError("plain text", code=0), False),
        (MicroError("unavailable", code=503), False),
        (ValueError("not a micro error"), False),
    ],
)
def test_retry_on_error(error: BaseException, expected: bool) -> None:
    assert retry_on_error(error) is expected


def test_other_predicates() -> None:
    assert retry_on_connect_error(ConnectError("refused"))
    assert not retry_on_connect_error(ConnectionClosed("mid-exchange"))
    assert not retry_on_connect_error(InternalServerError("boom"))
    assert retry_always(BadRequest("bad"))
    assert not retry_always(ValueError())
    assert not retry_never(ConnectError("refused"))


@pytest.mark.parametrize(
    ("error", "attempts"),
    [
        (InternalServerError("boom", id="greeter"), 3),
        (Timeout("slow", id="greeter"), 3),
        (BadRequest("bad", id="greeter"), 1),
        (NotFound("missing", id="greeter"), 1),
        (MicroError("busy", id="greeter", code=503), 1),
    ],
)
async def test_retries_only_408_and_500(
    transport: RecordingTransport,
    registry: MemoryRegistry,
    server: FakeServer,
    error: MicroError,
    attempts: int,
) -> None:
    server.handlers["Greeter.Fail"] = fail(error)
    waits = Waits()
    async with RpcClient(transport=transport, registry=registry, backoff=waits) as client:
        with pytest.raises(type(error)):
            await client.call("greeter", "Greeter.Fail", {}, retries=2)
    assert len(server.requests) == attempts
    assert waits.attempts == list(range(1, attempts))


async def test_default_is_one_retry(
    transport: RecordingTransport, registry: MemoryRegistry, server: FakeServer
) -> None:
    server.handlers["Greeter.Fail"] = fail(InternalServerError("boom", id="greeter"))
    async with RpcClient(transport=transport, registry=registry, backoff=Waits()) as client:
        with pytest.raises(InternalServerError):
            await client.call("greeter", "Greeter.Fail", {})
        assert len(server.requests) == 2
        with pytest.raises(InternalServerError):
            await client.call("greeter", "Greeter.Fail", {}, retries=0)
        assert len(server.requests) == 3


async def test_client_wide_retries_and_predicate(
    transport: RecordingTransport, registry: MemoryRegistry, server: FakeServer
) -> None:
    server.handlers["Greeter.Fail"] = fail(BadRequest("bad", id="greeter"))
    client = RpcClient(
        transport=transport, registry=registry, retries=3, retry_on=retry_always, backoff=Waits()
    )
    async with client:
        with pytest.raises(BadRequest):
            await client.call("greeter", "Greeter.Fail", {})
    assert len(server.requests) == 4


async def test_a_retry_that_succeeds(
    transport: RecordingTransport, registry: MemoryRegistry, server: FakeServer
) -> None:
    server.handlers["Greeter.Flaky"] = sequence(
        fail(InternalServerError("boom", id="greeter")), echo
    )
    async with RpcClient(transport=transport, registry=registry, backoff=Waits()) as client:
        assert await client.call("greeter", "Greeter.Flaky", {"ok": True}) == {"ok": True}
    assert len(server.requests) == 2


async def test_connection_errors_are_retried(
    transport: RecordingTransport, server: FakeServer
) -> None:
    waits = Waits()
    async with RpcClient(transport=transport, backoff=waits) as client:
        rsp = await client.call("greeter", "G.H", {"a": 1}, address=["127.0.0.1:1", server.address])
        assert rsp == {"a": 1}
        assert waits.attempts == [1]
        with pytest.raises(ConnectError, match=r"127\.0\.0\.1:1"):
            await client.call("greeter", "G.H", {}, address="127.0.0.1:1", retries=2)
        assert waits.attempts == [1, 1, 2]


async def test_peer_closing_mid_call_is_retried_on_a_new_connection(
    transport: RecordingTransport, registry: MemoryRegistry, server: FakeServer
) -> None:
    server.handlers["Greeter.Drop"] = sequence(hang_up, echo)
    async with RpcClient(transport=transport, registry=registry, backoff=Waits()) as client:
        assert await client.call("greeter", "Greeter.Drop", {"n": 1}) == {"n": 1}
    assert len(transport.dialed) == 2
    assert transport.dialed[0].closed


async def test_retries_stay_on_a_one_node_service(
    transport: RecordingTransport, registry: MemoryRegistry, server: FakeServer
) -> None:
    """The default selector offers each node once per select; retries still happen."""
    server.handlers["Greeter.Fail"] = fail(InternalServerError("boom", id="greeter"))
    async with RpcClient(transport=transport, registry=registry, backoff=Waits()) as client:
        with pytest.raises(InternalServerError):
            await client.call("greeter", "Greeter.Fail", {}, retries=3)
    assert len(server.requests) == 4


async def test_one_deadline_covers_all_attempts(
    transport: RecordingTransport, registry: MemoryRegistry, server: FakeServer
) -> None:
    server.handlers["Greeter.Slow"] = slow(0.25, fail(InternalServerError("boom", id="greeter")))
    loop = asyncio.get_running_loop()
    async with RpcClient(transport=transport, registry=registry, backoff=Waits()) as client:
        started = loop.time()
        with pytest.raises(Timeout, match="call timeout"):
            await client.call("greeter", "Greeter.Slow", {}, timeout=1.0, retries=10)
        elapsed = loop.time() - started
    assert 0.99 <= elapsed < 1.25
    assert len(server.requests) == 4  # at 0, 0.25, 0.5 and 0.75 s; the 5th would be at 1.0
    left = [int(r.header["Timeout"]) / 1e9 for r in server.requests]
    for n, seconds in enumerate(left):
        assert 1.0 - 0.25 * n - 0.1 < seconds <= 1.0 - 0.25 * n


async def test_backoff_that_would_outlive_the_deadline(
    transport: RecordingTransport, registry: MemoryRegistry, server: FakeServer
) -> None:
    server.handlers["Greeter.Fail"] = fail(InternalServerError("boom", id="greeter"))
    loop = asyncio.get_running_loop()
    async with RpcClient(transport=transport, registry=registry, backoff=Waits(10.0)) as client:
        started = loop.time()
        with pytest.raises(Timeout) as info:
            await client.call("greeter", "Greeter.Fail", {}, timeout=2.0)
    assert loop.time() - started < 1.0  # gave up at once: the 10 s backoff outlives 2 s
    assert "last error: boom" in info.value.detail
    assert isinstance(info.value.__cause__, InternalServerError)
    assert len(server.requests) == 1


async def test_backoff_waits_between_attempts(
    transport: RecordingTransport, registry: MemoryRegistry, server: FakeServer
) -> None:
    server.handlers["Greeter.Fail"] = fail(InternalServerError("boom", id="greeter"))
    loop = asyncio.get_running_loop()
    async with RpcClient(transport=transport, registry=registry, backoff=Waits(0.1)) as client:
        started = loop.time()
        with pytest.raises(InternalServerError):
            await client.call("greeter", "Greeter.Fail", {}, retries=2)
    assert 0.2 <= loop.time() - started < 0.6
