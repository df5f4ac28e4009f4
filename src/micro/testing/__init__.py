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

``eventually`` waits for what happens asynchronously, instead of sleeping a guessed time::

    async def test_users_are_stored() -> None:
        stored: list[dict[str, int]] = []

        async def store(user: dict[str, int]) -> None:
            stored.append(user)

        async with serve(subscribers={"user.created": store}) as client:
            await client.publish("user.created", {"id": 1})
            await eventually(lambda: stored == [{"id": 1}])

The contract suites (``check_registry``, ``check_selector``, ``check_transport``,
``check_codec``, ``check_broker``) run the same behaviour over any backend: a third-party
backend passes them to be a drop-in replacement.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from micro.broker.memory import MemoryBroker
from micro.registry.memory import MemoryRegistry
from micro.transport.memory import MemoryTransport

if TYPE_CHECKING:
    from micro.client import CallWrapper
    from micro.client.rpc import RpcClient
    from micro.server import HandlerWrapper, SubscriberWrapper

__all__ = [
    "check_broker",
    "check_codec",
    "check_registry",
    "check_selector",
    "check_transport",
    "eventually",
    "serve",
]


async def eventually(
    check: Callable[[], Any],
    *,
    timeout: float = 5.0,
    interval: float = 0.01,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = AssertionError,
) -> Any:
    """Call ``check`` every ``interval`` seconds until it holds; return what it returned.

    ``check`` is a predicate or an assertion, plain or ``async``: it holds when it returns a
    true value, or ``None`` (an assertion-style check that did not raise). A check that
    raises ``retry_on`` (default ``AssertionError``; add e.g. ``ServiceNotFound`` to wait for
    a lookup) is tried again; any other exception propagates at once. A predicate must return
    a truth value: ``lambda: key in mapping``, not ``lambda: mapping.get(key)``.

    Raises:
        AssertionError: ``check`` did not hold within ``timeout`` seconds; the message and
            the chained exception give its last result or error.
    """
    last: object = "nothing (the check never finished)"
    failure: BaseException | None = None
    try:
        async with asyncio.timeout(timeout) as scope:
            while True:
                try:
                    result = check()
                    if inspect.isawaitable(result):
                        result = await result
                except retry_on as exc:
                    failure, last = exc, exc
                else:
                    if result is None or result:
                        return result
                    failure, last = None, result
                await asyncio.sleep(interval)
    except TimeoutError as exc:
        if not scope.expired():
            raise  # the check's own TimeoutError, not ours
        raise AssertionError(f"not within {timeout:g} s; last: {last!r}") from failure or exc


@asynccontextmanager
async def serve(
    *handlers: object,
    name: str = "test",
    version: str = "latest",
    metadata: Mapping[str, str] | None = None,
    wrappers: Sequence[HandlerWrapper] = (),
    call_wrappers: Sequence[CallWrapper] = (),
    subscribers: Mapping[str, object] | Sequence[tuple[str, object]] = (),
    subscriber_wrappers: Sequence[SubscriberWrapper] = (),
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
