"""RPC over the tcp transport: a server and a client on their own TcpTransports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from msgspec import Struct

from examples.streaming.server import Counter
from micro.client.rpc import RpcClient
from micro.errors import BadRequest, MicroError, Timeout
from micro.registry.memory import MemoryRegistry
from micro.server.rpc import RpcServer
from micro.transport.tcp import TcpTransport


class Blob(Struct):
    data: bytes


class Work:
    async def echo(self, req: Blob) -> Blob:
        return req

    async def fail(self, req: Blob) -> Blob:
        raise BadRequest("no, thanks", id="tcp.work")

    async def slow(self, req: Blob) -> Blob:
        await asyncio.sleep(5)
        return req


@pytest.fixture
async def client() -> AsyncIterator[RpcClient]:
    registry = MemoryRegistry()
    limit = 32 * 1024 * 1024
    server = RpcServer(
        name="tcp.work",
        address="127.0.0.1:0",
        registry=registry,
        transport=TcpTransport(max_body=limit),
    )
    server.handle(Work())
    server.handle(Counter())
    await server.start()
    rpc = RpcClient(registry=registry, transport=TcpTransport(max_body=limit), retries=0)
    try:
        yield rpc
    finally:
        await rpc.close()
        await server.stop(grace=1.0)
        await server.transport.close()
        await rpc.transport.close()
        await registry.close()


async def test_the_node_says_tcp(client: RpcClient) -> None:
    assert client.registry is not None
    services = await client.registry.get_service("tcp.work")
    assert services[0].nodes[0].metadata["transport"] == "tcp"


async def test_unary(client: RpcClient) -> None:
    reply = await client.call("tcp.work", "Work.Echo", {"data": "aGk="})
    assert reply == {"data": "aGk="}


async def test_many_calls_in_flight_share_a_connection(client: RpcClient) -> None:
    replies = await asyncio.gather(
        *(client.call("tcp.work", "Work.Echo", {"data": ""}) for _ in range(200))
    )
    assert len(replies) == 200
    assert isinstance(client.transport, TcpTransport)
    assert len(client.transport._all) == 1


async def test_a_ten_megabyte_body(client: RpcClient) -> None:
    payload = b"\x01\x02" * (5 * 1024 * 1024)
    reply = await client.call(
        "tcp.work", "Work.Echo", Blob(data=payload), response_type=Blob, timeout=30
    )
    assert reply.data == payload


async def test_an_error_reaches_the_caller(client: RpcClient) -> None:
    with pytest.raises(BadRequest, match="no, thanks"):
        await client.call("tcp.work", "Work.Fail", {"data": ""})
    assert await client.call("tcp.work", "Work.Echo", {"data": ""}) == {"data": ""}


async def test_a_timeout(client: RpcClient) -> None:
    with pytest.raises(MicroError) as caught:
        await client.call("tcp.work", "Work.Slow", {"data": ""}, timeout=0.2)
    assert isinstance(caught.value, Timeout) or caught.value.code == 408
    assert await client.call("tcp.work", "Work.Echo", {"data": ""}) == {"data": ""}


async def test_server_stream(client: RpcClient) -> None:
    async with client.stream("tcp.work", "Counter.Count", {"to": 5, "delay": 0}) as stream:
        assert [tick["n"] async for tick in stream] == [1, 2, 3, 4, 5]


async def test_bidi_stream(client: RpcClient) -> None:
    async with client.stream("tcp.work", "Counter.Echo") as stream:
        for text in ("hello", "over", "tcp"):
            await stream.send({"text": text})
            assert (await stream.recv())["text"] == text.upper()
        await stream.close_send()
        assert [line async for line in stream] == []
