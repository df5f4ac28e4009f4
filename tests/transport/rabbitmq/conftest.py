"""Fixtures: RabbitMQ transports on the shared server (tests/servers.py) under a unique
exchange (deleted after), and an RpcServer/RpcClient pair over them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aio_pika
import pytest

from micro.client.rpc import RpcClient
from micro.registry.memory import MemoryRegistry
from micro.server.rpc import RpcServer
from micro.transport.rabbitmq import RabbitmqTransport
from tests.servers import amqp_url

ONE_LOOP = ("test_restart.py", "test_faults.py", "test_greeter.py")


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]] | None:
    """The tests that start processes or a private RabbitMQ run on asyncio's loop only (the
    others on both, as every transport test)."""
    if item.path.name in ONE_LOOP:
        return {"asyncio": asyncio.new_event_loop}
    return None


MakeTransport = Callable[..., RabbitmqTransport]
MakeServer = Callable[..., Awaitable[RpcServer]]


@pytest.fixture
async def exchange() -> AsyncIterator[str]:
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    connection = await aio_pika.connect(amqp_url())
    async with connection:
        channel = await connection.channel()
        await channel.exchange_delete(name)


@pytest.fixture
async def make_transport(exchange: str) -> AsyncIterator[MakeTransport]:
    made: list[RabbitmqTransport] = []

    def make(**options: Any) -> RabbitmqTransport:
        options.setdefault("address", amqp_url())
        options.setdefault("exchange", exchange)
        transport = RabbitmqTransport(**options)
        made.append(transport)
        return transport

    yield make
    for transport in made:
        await transport.close()


@pytest.fixture
def registry() -> MemoryRegistry:
    return MemoryRegistry()


@pytest.fixture
async def make_server(
    make_transport: MakeTransport, registry: MemoryRegistry
) -> AsyncIterator[MakeServer]:
    servers: list[RpcServer] = []

    async def make(handler: object, name: str = "rmq.test", **transport_options: Any) -> RpcServer:
        server = RpcServer(
            name=name,
            address="127.0.0.1:0",
            transport=make_transport(**transport_options),
            registry=registry,
        )
        server.handle(handler)
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop(grace=1.0)


@pytest.fixture
async def client(
    make_transport: MakeTransport, registry: MemoryRegistry
) -> AsyncIterator[RpcClient]:
    rpc = RpcClient(registry=registry, transport=make_transport(), timeout=5.0, retries=1)
    yield rpc
    await rpc.close()
