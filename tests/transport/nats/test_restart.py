"""A private NATS server killed and started again: calls fail fast while it is down (no hang
until the call timeout) and work again once both sides have reconnected."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from micro.client.rpc import RpcClient
from micro.errors import ConnectError
from micro.registry.memory import MemoryRegistry
from micro.server.rpc import RpcServer
from micro.transport.nats import NatsTransport
from tests.broker.helpers import PrivateNats
from tests.client.handlers import Greeter

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
async def private_nats(tmp_path: Path) -> AsyncIterator[PrivateNats]:
    async with PrivateNats(tmp_path) as server:
        yield server


async def test_calls_fail_fast_while_nats_is_down_and_recover(private_nats: PrivateNats) -> None:
    server_transport = NatsTransport(address=private_nats.url)
    client_transport = NatsTransport(address=private_nats.url)
    server = RpcServer(
        name="greeter", address=":0", transport=server_transport, registry=MemoryRegistry()
    )
    server.handle(Greeter())
    await server.start()
    address = server.address
    client = RpcClient(registry=MemoryRegistry(), transport=client_transport)
    try:
        async with client:
            hello = {"name": "x"}
            assert await client.call("greeter", "Greeter.SayHello", hello, address=address) == {
                "msg": "Hello x"
            }
            slow = asyncio.create_task(
                client.call("greeter", "Greeter.Slow", {}, address=address, timeout=60, retries=0)
            )
            await asyncio.sleep(0.2)
            private_nats.kill()
            async with asyncio.timeout(10):  # a call in flight ends with the connection
                with pytest.raises(ConnectError, match="NATS connection"):
                    await slow
                with pytest.raises(ConnectError, match="NATS connection is down"):
                    await client.call(
                        "greeter", "Greeter.SayHello", hello, address=address, timeout=30
                    )
            await private_nats.start()
            async with asyncio.timeout(20):
                while True:  # both connections come back by themselves
                    try:
                        rsp = await client.call(
                            "greeter", "Greeter.SayHello", hello, address=address
                        )
                    except ConnectError:
                        await asyncio.sleep(0.2)
                        continue
                    break
            assert rsp == {"msg": "Hello x"}
    finally:
        await server.stop(grace=1)
        await server_transport.close()
        await client_transport.close()
