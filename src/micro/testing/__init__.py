"""Test helpers: run handlers in-process with no network, and backend contract suites.

    from micro.testing import serve

    async def test_greeter() -> None:
        async with serve(Greeter(), name="greeter") as client:
            rsp = await client.call("greeter", "Greeter.SayHello", {"name": "John"})
            assert rsp == {"msg": "Hello John"}

    async def test_events() -> None:
        seen = asyncio.Queue()
        async with serve(subscribers={"user.created": seen.put}) as client:
            await client.publish("user.created", {"id": 1})
            assert await seen.get() == {"id": 1}

The contract suites (``check_registry``, ``check_selector``, ``check_transport``,
``check_codec``, ``check_broker``) run the same behaviour over any backend: a third-party
backend passes them to be a drop-in replacement.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from micro.broker.memory import MemoryBroker
from micro.registry.memory import MemoryRegistry
from micro.transport.memory import MemoryTransport

if TYPE_CHECKING:
    from micro.client.rpc import RpcClient

__all__ = [
    "check_broker",
    "check_codec",
    "check_registry",
    "check_selector",
    "check_transport",
    "serve",
]


@asynccontextmanager
async def serve(
    *handlers: object,
    name: str = "test",
    version: str = "latest",
    metadata: Mapping[str, str] | None = None,
    wrappers: Sequence[Any] = (),
    call_wrappers: Sequence[Any] = (),
    subscribers: Mapping[str, object] | Sequence[tuple[str, object]] = (),
    subscriber_wrappers: Sequence[Any] = (),
    **client_options: Any,
) -> AsyncIterator[RpcClient]:
    """Serve ``handlers`` as service ``name`` on fresh memory backends; yield a client.

    The service really registers, routes, decodes and validates, exactly as over the
    network; only the registry, transport and broker are in-process. ``subscribers`` maps
    topics to subscribers (functions or objects, as ``Service.subscribe`` takes); the
    client's ``publish`` reaches them through a :class:`~micro.broker.memory.MemoryBroker`
    (``client.broker``; it delivers asynchronously, so wait for the effect you test).
    ``client_options`` go to :class:`micro.Client` (``timeout``, ``retries``...).
    """
    from micro.client.rpc import RpcClient
    from micro.server.rpc import RpcServer

    registry = MemoryRegistry()
    transport = MemoryTransport()
    broker = MemoryBroker()
    server = RpcServer(
        name=name,
        version=version,
        address="127.0.0.1:0",
        metadata=dict(metadata or {}),
        transport=transport,
        registry=registry,
        broker=broker,
        wrappers=list(wrappers),
        subscriber_wrappers=list(subscriber_wrappers),
    )
    for handler in handlers:
        server.handle(handler)
    pairs = subscribers.items() if isinstance(subscribers, Mapping) else subscribers
    for topic, subscriber in pairs:
        server.subscribe(topic, subscriber)
    await broker.connect()
    await server.start()
    client = RpcClient(
        registry=registry,
        transport=transport,
        broker=broker,
        wrappers=list(call_wrappers),
        **client_options,
    )
    try:
        yield client
    finally:
        await client.close()
        await server.stop(grace=1.0)
        await broker.disconnect()
        await registry.close()


def __getattr__(name: str) -> Any:
    # the suites import pytest-free helpers lazily so `import micro.testing` stays light
    modules = {
        "check_registry": "micro.testing.registry",
        "check_selector": "micro.testing.selector",
        "check_transport": "micro.testing.transport",
        "check_codec": "micro.testing.codec",
        "check_broker": "micro.testing.broker",
    }
    if name not in modules:
        raise AttributeError(f"module 'micro.testing' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(modules[name]), name)
