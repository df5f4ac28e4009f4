"""Client options: env vars, Go durations, backends by name, lazy start, who closes what."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from micro import plugins
from micro.client.options import parse_duration, timeout_header
from micro.client.rpc import RpcClient
from micro.registry import Node, Result, Service
from micro.registry.memory import MemoryRegistry
from micro.selector import Filter, Next
from micro.selector.cache import RegistrySelector
from micro.settings import BACKEND_GROUPS, SettingsError, load
from micro.transport.memory import MemoryTransport
from tests.client.fakes import FakeServer, RecordingSelector, RecordingTransport


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5", 5.0),
        ("2.5", 2.5),
        (" 3 ", 3.0),
        ("0", 0.0),
        ("5s", 5.0),
        ("500ms", 0.5),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        ("250us", 0.00025),
        ("250\u00b5s", 0.00025),
        ("100ns", 1e-7),
        ("1h2m3s4ms", 3723.004),
        ("-1s", -1.0),
        ("+2s", 2.0),
        (".5s", 0.5),
        (7, 7.0),
        (0.25, 0.25),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "5x", "5 s", "1d", "ms5", "-", "5s3"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_timeout_header() -> None:
    assert timeout_header(5.0) == "5000000000"
    assert timeout_header(0.0015) == "1500000"
    assert timeout_header(0) == "1"  # never 0, which would mean "no deadline"
    assert timeout_header(-3) == "1"


def client_settings(environ: dict[str, str]) -> tuple[Any, ...]:
    s = load(groups=BACKEND_GROUPS, environ=environ)
    names = ("client_request_timeout", "client_retries", "client_pool_size", "client_pool_ttl")
    return (*(s[n] for n in names), s["client_dial_timeout"], s["content_type"])


def test_settings_defaults() -> None:
    assert client_settings({}) == (5.0, 1, 100, 60.0, 5.0, "application/json")


def test_settings_from_env() -> None:
    environ = {
        "MICRO_CLIENT_REQUEST_TIMEOUT": "500ms",
        "MICRO_CLIENT_RETRIES": "3",
        "MICRO_CLIENT_POOL_SIZE": "7",
        "MICRO_CLIENT_POOL_TTL": "2m",
        "MICRO_CLIENT_DIAL_TIMEOUT": "1.5",
        "MICRO_CONTENT_TYPE": "application/msgpack",
    }
    assert client_settings(environ) == (0.5, 3, 7, 120.0, 1.5, "application/msgpack")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MICRO_CLIENT_REQUEST_TIMEOUT", "soon", "MICRO_CLIENT_REQUEST_TIMEOUT: invalid duration"),
        ("MICRO_CLIENT_REQUEST_TIMEOUT", "-1s", "negative"),
        ("MICRO_CLIENT_RETRIES", "two", "whole number"),
        ("MICRO_CLIENT_RETRIES", "-1", "negative"),
        ("MICRO_CLIENT_POOL_SIZE", "1.5", "whole number"),
    ],
)
def test_settings_reject_bad_env(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        client_settings({name: value})


async def test_client_reads_env(
    monkeypatch: pytest.MonkeyPatch, transport: RecordingTransport, server: FakeServer
) -> None:
    monkeypatch.setenv("MICRO_CLIENT_REQUEST_TIMEOUT", "1500ms")
    monkeypatch.setenv("MICRO_CLIENT_RETRIES", "0")
    monkeypatch.setenv("MICRO_CLIENT_POOL_SIZE", "3")
    monkeypatch.setenv("MICRO_CONTENT_TYPE", "application/msgpack")
    client = RpcClient(transport=transport)
    assert (client.timeout, client.retries, client.content_type) == (1.5, 0, "application/msgpack")
    assert client._pool.size == 3
    async with client:
        assert await client.call("greeter", "G.H", {"a": 1}, address=server.address) == {"a": 1}
    header = server.requests[0].header
    assert header["Content-Type"] == "application/msgpack"
    assert 1.4e9 < int(header["Timeout"]) <= 1.5e9


def test_code_beats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICRO_CLIENT_REQUEST_TIMEOUT", "9s")
    monkeypatch.setenv("MICRO_CLIENT_RETRIES", "9")
    client = RpcClient(transport=MemoryTransport(), timeout="250ms", retries=2, pool_size=4)
    assert (client.timeout, client.retries, client._pool.size) == (0.25, 2, 4)


def test_unknown_backend_name_fails_with_the_known_ones() -> None:
    with pytest.raises(plugins.PluginNotFound, match=r"known: .*memory"):
        RpcClient(transport="carrier-pigeon")


class TrackedRegistry(MemoryRegistry):
    def __init__(self) -> None:
        super().__init__()
        self.started = 0
        self.closed = 0

    async def start(self) -> None:
        self.started += 1

    async def close(self) -> None:
        self.closed += 1
        await super().close()


class TrackedSelector(RecordingSelector):
    built: list[TrackedSelector] = []

    def __init__(self, registry: Any) -> None:
        super().__init__([])
        self.registry = registry
        TrackedSelector.built.append(self)

    async def select(
        self, service: str, *, filters: Sequence[Filter] = (), metadata: Any = None
    ) -> Next:
        services = await self.registry.get_service(service)
        self.nodes = [node for s in services for node in s.nodes]
        return await super().select(service, filters=filters, metadata=metadata)


@pytest.fixture
def tracked(monkeypatch: pytest.MonkeyPatch) -> None:
    here = "tests.client.test_options"
    monkeypatch.setitem(plugins.TABLE["selector"], "tracked", (f"{here}:TrackedSelector", ""))
    monkeypatch.setitem(plugins.TABLE["registry"], "tracked", (f"{here}:TrackedRegistry", ""))
    TrackedSelector.built.clear()


async def test_nothing_starts_in_the_constructor(
    transport: RecordingTransport, server: FakeServer
) -> None:
    registry = TrackedRegistry()
    await registry.register(Service("greeter", nodes=[server.node]))  # type: ignore[list-item]
    client = RpcClient(transport=transport, registry=registry)
    assert registry.started == 0
    assert client.selector is None
    await client.call("greeter", "G.H", {}, address=server.address)
    assert client.selector is None  # a direct call needs no selector
    assert await client.call("greeter", "G.H", {"x": 1}) == {"x": 1}
    assert registry.started == 1
    assert isinstance(client.selector, RegistrySelector)
    await client.close()
    assert registry.closed == 0  # passed in: the caller's to close


async def test_what_the_client_builds_it_closes(
    tracked: None, transport: RecordingTransport
) -> None:
    client = RpcClient(transport=transport, registry="tracked", selector="tracked")
    async with client:
        (selector,) = TrackedSelector.built
        registry = selector.registry
        assert isinstance(registry, TrackedRegistry)
        assert (registry.started, selector.started) == (1, 1)
        await registry.register(Service("greeter", nodes=[]))
    assert (registry.closed, selector.closed) == (1, 1)


async def test_env_picks_the_backends(
    tracked: None, monkeypatch: pytest.MonkeyPatch, transport: RecordingTransport
) -> None:
    monkeypatch.setenv("MICRO_REGISTRY", "tracked")
    monkeypatch.setenv("MICRO_SELECTOR", "tracked")
    async with RpcClient(transport=transport) as client:
        assert isinstance(client.selector, TrackedSelector)
        assert isinstance(client.registry, TrackedRegistry)


async def test_passed_selector_is_started_not_closed(transport: RecordingTransport) -> None:
    selector = RecordingSelector([])
    async with RpcClient(transport=transport, selector=selector):
        pass
    assert (selector.started, selector.closed) == (1, 0)


async def test_shared_memory_backends_are_not_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(plugins, "_shared_memory", {})
    async with RpcClient(registry="memory", transport="memory") as client:
        registry = client.registry
        assert isinstance(registry, MemoryRegistry)
        watch = registry.watch()
        next_change = asyncio.ensure_future(anext(watch))
        await asyncio.sleep(0)  # the watcher subscribes
        async with RpcClient(registry="memory", transport="memory") as other:
            assert other.registry is registry
        # the shared registry still serves its watchers after that client closed
        await registry.register(Service("svc", nodes=[Node(id="a", address="x:1")]))
        async with asyncio.timeout(2):
            result = await next_change
        assert isinstance(result, Result)
        assert result.action == "create"
        await watch.aclose()
