"""Test helpers: run handlers in-process with no network, and backend contract suites.

    from micro.testing import serve

    async def test_greeter() -> None:
        async with serve(Greeter(), name="greeter") as client:
            rsp = await client.call("greeter", "Greeter.SayHello", {"name": "John"})
            assert rsp == {"msg": "Hello John"}

The contract suites (``check_registry``, ``check_selector``, ``check_transport``,
``check_codec``) run the same behaviour over any backend: a third-party backend passes them
to be a drop-in replacement.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from micro.registry.memory import MemoryRegistry
from micro.transport.memory import MemoryTransport

if TYPE_CHECKING:
    from micro.client.rpc import RpcClient

__all__ = [
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
    **client_options: Any,
) -> AsyncIterator[RpcClient]:
    """Serve ``handlers`` as service ``name`` on fresh memory backends; yield a client.

    The service really registers, routes, decodes and validates, exactly as over the
    network; only the registry and transport are in-process. ``client_options`` go to
    :class:`micro.Client` (``timeout``, ``retries``, ``content_type``...).
    """
    from micro.client.rpc import RpcClient
    from micro.server.rpc import RpcServer

    registry = MemoryRegistry()
    transport = MemoryTransport()
    server = RpcServer(
        name=name,
        version=version,
        address="127.0.0.1:0",
        metadata=dict(metadata or {}),
        transport=transport,
        registry=registry,
        wrappers=list(wrappers),
    )
    for handler in handlers:
        server.handle(handler)
    await server.start()
    client = RpcClient(
        registry=registry, transport=transport, wrappers=list(call_wrappers), **client_options
    )
    try:
        yield client
    finally:
        await client.close()
        await server.stop(grace=1.0)
        await registry.close()


def __getattr__(name: str) -> Any:
    # the suites import pytest-free helpers lazily so `import micro.testing` stays light
    modules = {
        "check_registry": "micro.testing.registry",
        "check_selector": "micro.testing.selector",
        "check_transport": "micro.testing.transport",
        "check_codec": "micro.testing.codec",
    }
    if name not in modules:
        raise AttributeError(f"module 'micro.testing' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(modules[name]), name)
