"""Fixtures: the simulated go-micro v1.0 greeter, micro's greeter, and a client between them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from micro.client.rpc import RpcClient
from micro.registry.memory import MemoryRegistry
from micro.server.rpc import RpcServer
from micro.transport.http import HttpTransport
from tests.interop.go_v1 import SERVICE, GoV1Server
from tests.interop.greeter import Say


@pytest.fixture
def registry() -> MemoryRegistry:
    return MemoryRegistry()


@pytest.fixture
async def go_server(registry: MemoryRegistry) -> AsyncIterator[GoV1Server]:
    """The v1.0 greeter, registered as v1.0 registers it (node metadata ``server: rpc``)."""
    server = await GoV1Server().start()
    await registry.register(server.service())
    yield server
    await server.close()


@pytest.fixture
async def transport() -> AsyncIterator[HttpTransport]:
    made = HttpTransport()
    yield made
    await made.close()


@pytest.fixture
async def client(registry: MemoryRegistry, transport: HttpTransport) -> AsyncIterator[RpcClient]:
    rpc = RpcClient(registry=registry, transport=transport, retries=0)
    yield rpc
    await rpc.close()


@pytest.fixture
def say() -> Say:
    return Say()


@pytest.fixture
async def py_server(transport: HttpTransport, say: Say) -> AsyncIterator[RpcServer]:
    """micro's greeter under go-micro's name, on a real socket (in a registry of its own)."""
    server = RpcServer(
        name=SERVICE,
        address="127.0.0.1:0",
        registry=MemoryRegistry(),
        transport=transport,
        register_interval=0,
    )
    server.handle(say)
    await server.start()
    yield server
    await server.stop(grace=0.5)
