"""A RabbitMQ restart (a private node, tests/broker/rabbitmq/private_node.py): calls fail at
once while it is down, and work again once the transports have reconnected."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from micro.client.rpc import RpcClient
from micro.errors import ConnectError
from micro.registry.memory import MemoryRegistry
from micro.server.rpc import RpcServer
from micro.transport.rabbitmq import RabbitmqTransport
from tests.broker.rabbitmq.private_node import PrivateRabbit

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Echo:
    async def echo(self, req: dict[str, str]) -> dict[str, str]:
        return req


@pytest.fixture
async def private_rabbit() -> AsyncIterator[PrivateRabbit]:
    node = PrivateRabbit()
    try:
        await node.start()
        yield node
    finally:
        await asyncio.to_thread(node.close)


async def _call(rpc: RpcClient, text: str) -> object:
    return await rpc.call("rmq.restart", "Echo.Echo", {"text": text}, timeout=30.0)


async def test_calls_fail_fast_while_rabbitmq_is_down_and_work_after(
    private_rabbit: PrivateRabbit,
) -> None:
    registry = MemoryRegistry()
    server = RpcServer(
        name="rmq.restart",
        address=":0",
        transport=RabbitmqTransport(address=private_rabbit.url, reconnect_interval=0.5),
        registry=registry,
    )
    server.handle(Echo())
    client_transport = RabbitmqTransport(address=private_rabbit.url, reconnect_interval=0.5)
    rpc = RpcClient(registry=registry, transport=client_transport, retries=0)
    await server.start()
    try:
        assert await _call(rpc, "before") == {"text": "before"}
        await private_rabbit.stop_app()
        async with asyncio.timeout(10):  # the call's own timeout is 30 s
            with pytest.raises(ConnectError):
                await _call(rpc, "while down")
        await private_rabbit.start_app()
        async with asyncio.timeout(30):
            while True:
                try:
                    answer = await _call(rpc, "after")
                except ConnectError:
                    await asyncio.sleep(0.2)
                    continue
                break
        assert answer == {"text": "after"}
        assert await _call(rpc, "again") == {"text": "again"}
    finally:
        await rpc.close()
        await client_transport.close()
        await server.stop(grace=1.0)
