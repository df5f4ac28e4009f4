"""End to end: RpcClient against the real RpcServer, over every transport."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from micro import metadata
from micro.client import CallFunc, CallOptions, Request
from micro.client.rpc import RpcClient
from micro.errors import BadRequest, InternalServerError, NotFound, Timeout
from micro.registry import Node
from micro.registry.memory import MemoryRegistry
from micro.selector.filters import filter_version
from micro.server.rpc import RpcServer
from tests.client.handlers import CountRequest, Greeter, HelloRequest, HelloResponse, Item
from tests.transport.backends import ALL, make_transport


class Stack:
    def __init__(self, server: RpcServer, client: RpcClient, handler: Greeter) -> None:
        self.server = server
        self.client = client
        self.handler = handler


@pytest.fixture(params=ALL)
async def stack(request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    registry = MemoryRegistry()
    transport = make_transport(request.param)
    handler = Greeter()
    server = RpcServer(
        name="greeter",
        version="1.0.0",
        address="127.0.0.1:0",
        transport=transport,
        registry=registry,
        register_interval=0,
    )
    server.handle(handler)
    await server.start()
    client_transport = transport if request.param == "memory" else make_transport(request.param)
    client = RpcClient(registry=registry, transport=client_transport, from_service="caller")
    async with client:
        yield Stack(server, client, handler)
    await server.stop(grace=1)
    await transport.close()
    if client_transport is not transport:
        await client_transport.close()


async def test_typed_call_through_the_registry(stack: Stack) -> None:
    rsp = await stack.client.call(
        "greeter", "Greeter.SayHello", HelloRequest("John"), response_type=HelloResponse
    )
    assert rsp == HelloResponse("Hello John")
    assert await stack.client.call("greeter", "Greeter.SayHello", {"name": "Ann"}) == {
        "msg": "Hello Ann"
    }


async def test_filters_and_address(stack: Stack) -> None:
    client = stack.client
    rsp = await client.call(
        "greeter", "Greeter.SayHello", {"name": "v"}, filters=[filter_version("1.0.0")]
    )
    assert rsp == {"msg": "Hello v"}
    rsp = await client.call(
        "greeter", "Greeter.SayHello", {"name": "a"}, address=stack.server.address
    )
    assert rsp == {"msg": "Hello a"}


async def test_server_errors_arrive_as_their_classes(stack: Stack) -> None:
    with pytest.raises(NotFound, match=r"unknown endpoint Greeter\.Nope"):
        await stack.client.call("greeter", "Greeter.Nope", {})
    with pytest.raises(BadRequest, match=r"\$\.name"):
        await stack.client.call("greeter", "Greeter.SayHello", {"name": 5})


async def test_handler_500_is_retried_as_in_go_micro(stack: Stack) -> None:
    with pytest.raises(InternalServerError, match="ValueError: boom"):
        await stack.client.call("greeter", "Greeter.Boom", {})
    assert stack.handler.boom_calls == 2  # default: one retry, even for a non-idempotent 500
    with pytest.raises(InternalServerError):
        await stack.client.call("greeter", "Greeter.Boom", {}, retries=0)
    assert stack.handler.boom_calls == 3


async def test_client_deadline(stack: Stack) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(Timeout, match="call timeout"):
        await stack.client.call("greeter", "Greeter.Slow", {}, timeout=0.2)
    assert loop.time() - started < 1.0
    async with asyncio.timeout(2):
        await stack.handler.cancelled.wait()  # the server did not keep working on it


async def test_server_honours_the_timeout_header(stack: Stack) -> None:
    """A wrapper sends a shorter Timeout than the client waits: the server answers 408."""

    def short_deadline(next_call: CallFunc) -> CallFunc:
        async def call(node: Node, req: Request, opts: CallOptions) -> Any:
            soon = asyncio.get_running_loop().time() + 0.1
            return await next_call(node, req, msgspec.structs.replace(opts, deadline=soon))

        return call

    client = RpcClient(
        registry=stack.client.registry, transport=stack.client.transport, wrappers=[short_deadline]
    )
    async with client:
        with pytest.raises(Timeout) as info:
            await client.call("greeter", "Greeter.Slow", {}, timeout=5, retries=0)
    assert info.value.id == "greeter"
    assert re.search(r"Greeter.Slow: deadline of 0\.0\d*s exceeded", info.value.detail)
    assert stack.handler.cancelled.is_set()


async def test_metadata_reaches_the_handler(stack: Stack) -> None:
    with metadata.context({"x-user-id": "42"}):
        seen = await stack.client.call("greeter", "Greeter.Whoami", {}, metadata={"x-extra": "1"})
    assert seen["X-User-Id"] == "42"
    assert seen["X-Extra"] == "1"
    assert seen["Micro-From-Service"] == "caller"


async def test_many_calls_in_flight(stack: Stack) -> None:
    names = [f"n{i}" for i in range(64)]
    calls = [stack.client.call("greeter", "Greeter.SayHello", {"name": n}) for n in names]
    assert await asyncio.gather(*calls) == [{"msg": f"Hello {n}"} for n in names]


async def test_server_stream(stack: Stack) -> None:
    stream = stack.client.stream("greeter", "Greeter.Count", CountRequest(3), response_type=Item)
    async with stream:
        assert [item async for item in stream] == [Item(0), Item(1), Item(2)]


async def test_server_stream_that_fails(stack: Stack) -> None:
    async with stack.client.stream("greeter", "Greeter.CountThenFail", {"to": 1}) as stream:
        assert await stream.recv() == {"n": 0}
        with pytest.raises(InternalServerError, match="ran dry"):
            await stream.recv()


async def test_bidirectional_stream(stack: Stack) -> None:
    async with stack.client.stream("greeter", "Greeter.Chat", response_type=Item) as stream:
        for n in (1, 2, 3):
            await stream.send(Item(n))
            assert await stream.recv() == Item(n * 10)
        await stream.close_send()
        assert [item async for item in stream] == []


async def test_bidirectional_stream_closed_early(stack: Stack) -> None:
    async with stack.client.stream("greeter", "Greeter.Chat") as stream:
        await stream.send({"n": 1})
        assert await stream.recv() == {"n": 10}
    # closing without reading to the end leaves the client and server usable
    assert await stack.client.call("greeter", "Greeter.SayHello", {"name": "x"}) == {
        "msg": "Hello x"
    }
