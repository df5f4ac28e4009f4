"""The real RpcServer and RpcClient over the nats transport (the shared NATS server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from micro.client.rpc import RpcClient
from micro.errors import InternalServerError, NotFound, PayloadTooLarge, Timeout
from micro.registry.memory import MemoryRegistry
from micro.server.rpc import RpcServer
from micro.transport.nats import NatsTransport
from tests.client.handlers import CountRequest, Greeter, Item
from tests.servers import nats_url

pytestmark = pytest.mark.integration

BIG = 16 * 1024 * 1024


class Blob:
    async def echo(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"data": req["data"], "size": len(req["data"])}


class Stack:
    def __init__(self, server: RpcServer, client: RpcClient, handler: Greeter) -> None:
        self.server, self.client, self.handler = server, client, handler


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    registry = MemoryRegistry()
    server_transport = NatsTransport(address=nats_url(), max_body=BIG)
    handler = Greeter()
    server = RpcServer(
        name="greeter",
        address=":0",
        transport=server_transport,
        registry=registry,
        register_interval=0,
    )
    server.handle(handler)
    server.handle(Blob())
    await server.start()
    client_transport = NatsTransport(address=nats_url(), max_body=BIG)
    client = RpcClient(registry=registry, transport=client_transport)
    try:
        async with client:
            yield Stack(server, client, handler)
    finally:
        await server.stop(grace=1)
        await server_transport.close()
        await client_transport.close()


async def test_the_node_registers_its_subject(stack: Stack) -> None:
    (service,) = await stack.client.registry.get_service("greeter")  # type: ignore[union-attr]
    (node,) = service.nodes
    assert stack.server.address == f"nats://{node.address}"
    assert node.address.startswith("_INBOX.")
    assert node.metadata["transport"] == "nats"


async def test_unary_calls(stack: Stack) -> None:
    names = [f"n{i}" for i in range(32)]
    calls = [stack.client.call("greeter", "Greeter.SayHello", {"name": n}) for n in names]
    assert await asyncio.gather(*calls) == [{"msg": f"Hello {n}"} for n in names]


async def test_errors_arrive_as_their_classes(stack: Stack) -> None:
    with pytest.raises(NotFound, match=r"unknown endpoint Greeter\.Nope"):
        await stack.client.call("greeter", "Greeter.Nope", {})
    with pytest.raises(InternalServerError, match="ValueError: boom"):
        await stack.client.call("greeter", "Greeter.Boom", {}, retries=0)


async def test_client_deadline(stack: Stack) -> None:
    with pytest.raises(Timeout, match="call timeout"):
        await stack.client.call("greeter", "Greeter.Slow", {}, timeout=0.3)
    async with asyncio.timeout(5):
        await stack.handler.cancelled.wait()  # the server stopped working on it


async def test_server_stream(stack: Stack) -> None:
    stream = stack.client.stream("greeter", "Greeter.Count", CountRequest(5), response_type=Item)
    async with stream:
        assert [item async for item in stream] == [Item(i) for i in range(5)]


async def test_bidirectional_stream(stack: Stack) -> None:
    async with stack.client.stream("greeter", "Greeter.Chat", response_type=Item) as stream:
        for n in (1, 2, 3):
            await stream.send(Item(n))
            assert await stream.recv() == Item(n * 10)
        await stream.close_send()
        assert [item async for item in stream] == []
    assert await stack.client.call("greeter", "Greeter.SayHello", {"name": "x"}) == {
        "msg": "Hello x"
    }


async def test_a_10_mb_body_both_ways(stack: Stack) -> None:
    data = "0123456789" * (1024 * 1024)  # 10 MiB, ten times the server's max_payload
    rsp = await stack.client.call("greeter", "Blob.Echo", {"data": data}, timeout=30)
    assert rsp["size"] == len(data)
    assert rsp["data"] == data


async def test_a_body_over_max_body_is_refused(stack: Stack) -> None:
    data = "x" * (BIG + 1)
    with pytest.raises(PayloadTooLarge, match="max_body"):
        await stack.client.call("greeter", "Blob.Echo", {"data": data}, retries=0)
