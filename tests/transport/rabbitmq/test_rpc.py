"""A real RpcServer and RpcClient over the rabbitmq transport: unary calls, both kinds of
stream, errors, timeouts, a 10 MB body, and what the registry holds."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
from msgspec import Struct

from micro.client.rpc import RpcClient
from micro.errors import BadRequest, PayloadTooLarge, Timeout
from micro.registry.memory import MemoryRegistry
from micro.server import Stream
from tests.transport.rabbitmq.conftest import MakeServer

pytestmark = pytest.mark.integration

TEN_MB = 10 * 1000 * 1000


class Name(Struct):
    name: str


class Greeting(Struct):
    msg: str


class Count(Struct):
    to: int


class Tick(Struct):
    n: int


class Greeter:
    async def say_hello(self, req: Name) -> Greeting:
        if not req.name:
            raise BadRequest("a name is required", id="rmq.test")
        return Greeting(msg=f"Hello {req.name}")

    async def slow(self, req: Name) -> Greeting:
        await asyncio.sleep(5)
        return Greeting(msg="late")

    async def echo_bytes(self, req: bytes) -> bytes:
        return req[::-1]

    async def count(self, req: Count) -> AsyncIterator[Tick]:
        for n in range(1, req.to + 1):
            yield Tick(n=n)

    async def shout(self, stream: Stream[Name, Greeting]) -> None:
        async for req in stream:
            await stream.send(Greeting(msg=req.name.upper()))


async def test_unary_calls_and_the_node_in_the_registry(
    make_server: MakeServer, client: RpcClient, registry: MemoryRegistry
) -> None:
    server = await make_server(Greeter())
    [service] = await registry.get_service("rmq.test")
    [node] = service.nodes
    assert server.address.startswith("rabbitmq://")  # the listener: rabbitmq://<queue>
    assert node.address == server.address.removeprefix("rabbitmq://")  # the bare queue
    assert ":" not in node.address
    assert node.metadata["transport"] == "rabbitmq"
    for name in ("Ann", "Bob", "Cy"):
        rsp = await client.call("rmq.test", "Greeter.SayHello", {"name": name})
        assert rsp == {"msg": f"Hello {name}"}


async def test_concurrent_calls_each_get_their_answer(
    make_server: MakeServer, client: RpcClient
) -> None:
    await make_server(Greeter())
    names = [f"n{i}" for i in range(40)]
    answers = await asyncio.gather(
        *(client.call("rmq.test", "Greeter.SayHello", {"name": n}) for n in names)
    )
    assert answers == [{"msg": f"Hello {n}"} for n in names]


async def test_an_error_crosses_as_its_class(make_server: MakeServer, client: RpcClient) -> None:
    await make_server(Greeter())
    with pytest.raises(BadRequest, match="a name is required"):
        await client.call("rmq.test", "Greeter.SayHello", {"name": ""})
    # the connection is still good for the next call
    assert await client.call("rmq.test", "Greeter.SayHello", {"name": "x"}) == {"msg": "Hello x"}


async def test_a_slow_handler_times_out_on_the_client(
    make_server: MakeServer, client: RpcClient
) -> None:
    await make_server(Greeter())
    with pytest.raises(Timeout):
        await client.call("rmq.test", "Greeter.Slow", {"name": "x"}, timeout=0.5, retries=0)


async def test_a_10_mb_body_both_ways(make_server: MakeServer, client: RpcClient) -> None:
    await make_server(Greeter())
    body = os.urandom(TEN_MB)
    rsp = await client.call(
        "rmq.test",
        "Greeter.EchoBytes",
        body,
        content_type="application/octet-stream",
        response_type=bytes,
        timeout=20.0,
    )
    assert rsp == body[::-1]


async def test_a_body_over_max_body_is_refused_before_it_leaves(
    make_server: MakeServer, make_transport: object, registry: MemoryRegistry
) -> None:
    from micro.transport.rabbitmq import RabbitmqTransport

    await make_server(Greeter())
    assert callable(make_transport)
    small: RabbitmqTransport = make_transport(max_body=1024)
    rpc = RpcClient(registry=registry, transport=small, retries=0)
    try:
        with pytest.raises(PayloadTooLarge):
            await rpc.call(
                "rmq.test",
                "Greeter.EchoBytes",
                b"x" * 2048,
                content_type="application/octet-stream",
                response_type=bytes,
            )
    finally:
        await rpc.close()


async def test_a_request_over_the_servers_max_body_is_answered_413(
    make_server: MakeServer, client: RpcClient
) -> None:
    await make_server(Greeter(), max_body=1024)
    with pytest.raises(PayloadTooLarge):
        await client.call(
            "rmq.test",
            "Greeter.EchoBytes",
            b"x" * 2048,
            content_type="application/octet-stream",
            response_type=bytes,
            retries=0,
        )


async def test_server_stream(make_server: MakeServer, client: RpcClient) -> None:
    await make_server(Greeter())
    async with client.stream("rmq.test", "Greeter.Count", {"to": 50}) as stream:
        ticks = [tick["n"] async for tick in stream]
    assert ticks == list(range(1, 51))


async def test_bidirectional_stream(make_server: MakeServer, client: RpcClient) -> None:
    await make_server(Greeter())
    async with client.stream("rmq.test", "Greeter.Shout") as stream:
        for word in ("hello", "rabbit", "streams"):
            await stream.send({"name": word})
            assert (await stream.recv()) == {"msg": word.upper()}
        await stream.close_send()
        assert [line async for line in stream] == []
