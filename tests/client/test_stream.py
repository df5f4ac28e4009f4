"""Client streams against a scripted server: send, recv, EOS both ways, close by the peer."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from micro import metadata
from micro.client.rpc import RpcClient
from micro.client.stream import RpcStream
from micro.errors import BadRequest, ConnectError, ConnectionClosed, ServiceNotFound, Timeout
from micro.registry import Node, Service
from micro.registry.memory import MemoryRegistry
from micro.testing import eventually
from micro.transport import Message, Socket
from tests.client.fakes import FakeServer, RecordingTransport, reply_to


class Item(msgspec.Struct):
    n: int


def eos(request: Message) -> Message:
    return reply_to(
        request, **{"Micro-Error": "EOS", "Micro-Stream": request.header["Micro-Stream"]}
    )


def item(request: Message, body: object) -> Message:
    return reply_to(request, body, **{"Micro-Stream": request.header["Micro-Stream"]})


async def count(sock: Socket, first: Message) -> None:
    """Server streaming: the first message is the request; then items, then EOS."""
    to = msgspec.json.decode(first.body)["to"]
    for n in range(to):
        await sock.send(item(first, {"n": n}))
    await sock.send(eos(first))


async def echo_until_eos(sock: Socket, first: Message) -> None:
    """Bidirectional: echo every message until the client's EOS, answer EOS."""
    received.append(first)
    while True:
        msg = await sock.recv()
        received.append(msg)
        if msg.header.get("Micro-Error") == "EOS":
            await sock.send(eos(first))
            return
        await sock.send(item(first, msgspec.json.decode(msg.body)))


async def sink(sock: Socket, first: Message) -> None:
    """Record every message until the client's EOS or close; answer nothing."""
    received.append(first)
    while True:
        msg = await sock.recv()
        received.append(msg)
        if msg.header.get("Micro-Error") == "EOS":
            return


received: list[Message] = []


@pytest.fixture(autouse=True)
def _reset() -> None:
    received.clear()


async def test_server_stream(client: RpcClient, server: FakeServer) -> None:
    server.streams["Counter.Count"] = count
    with metadata.context({"x-user": "7"}):
        stream = client.stream("greeter", "Counter.Count", {"to": 3}, response_type=Item)
        assert isinstance(stream, RpcStream)
    async with stream:
        items = [x async for x in stream]
    assert items == [Item(0), Item(1), Item(2)]
    first = server.requests[0]
    assert first.header["Micro-Stream"] == stream.id != ""
    assert first.header["Micro-Id"] == stream.id
    assert first.header["Micro-Service"] == "greeter"
    assert first.header["Micro-Endpoint"] == first.header["Micro-Method"] == "Counter.Count"
    assert first.header["Content-Type"] == "application/json"
    assert "Timeout" not in first.header  # a stream has no deadline unless one is given
    assert msgspec.json.decode(first.body) == {"to": 3}
    # metadata is that of the context the stream opens in, not where it was created
    assert "X-User" not in first.header


@pytest.mark.parametrize("endpoint", ["Counter.Count", "Chat.Talk"])
async def test_request_is_also_the_first_stream_message(
    client: RpcClient, server: FakeServer, endpoint: str
) -> None:
    """go-micro v1 servers ignore the opening body; a server stream reads the next one."""
    server.streams[endpoint] = sink
    async with client.stream("greeter", endpoint, {"to": 3}, timeout=5) as stream:
        assert isinstance(stream, RpcStream)
        await eventually(lambda: len(received) == 2)
        await stream.close_send()
        await eventually(lambda: len(received) == 3)
    opening, first, end = received
    assert msgspec.json.decode(opening.body) == msgspec.json.decode(first.body) == {"to": 3}
    assert "Timeout" in opening.header
    assert "Timeout" not in first.header
    assert first.header["Micro-Stream"] == first.header["Micro-Id"] == stream.id
    assert first.header["Micro-Endpoint"] == first.header["Micro-Method"] == endpoint
    assert end.header["Micro-Error"] == "EOS"


@pytest.mark.parametrize("end", ["close_send", "close"])
async def test_no_eos_to_go_micro_before_v1_7(
    client: RpcClient, server: FakeServer, registry: MemoryRegistry, end: str
) -> None:
    """Such nodes (``server: rpc``) have no end-of-stream message and read ours as data."""
    server.streams["Chat.Talk"] = sink
    node = Node("old-1", server.address, {"server": "rpc", "protocol": "mucp"})
    await registry.register(Service("old", nodes=[node]))
    async with client.stream("old", "Chat.Talk") as stream:
        await stream.send({"n": 1})
        if end == "close_send":
            await stream.close_send()
            with pytest.raises(ConnectionClosed):
                await stream.send({"n": 2})
    await eventually(lambda: server.finished == 1)
    assert [m.body for m in received] == [b"", b'{"n":1}']


async def test_metadata_and_types(client: RpcClient, server: FakeServer) -> None:
    server.streams["Counter.Count"] = count
    with metadata.context({"x-user": "7"}):
        async with client.stream("greeter", "Counter.Count", {"to": 2}) as stream:
            assert await stream.recv(Item) == Item(0)
            assert await stream.recv() == {"n": 1}
            with pytest.raises(StopAsyncIteration):
                await stream.recv()
            with pytest.raises(StopAsyncIteration):  # stays ended
                await stream.recv()
    assert server.requests[0].header["X-User"] == "7"


async def test_bidirectional_stream(client: RpcClient, server: FakeServer) -> None:
    server.streams["Chat.Talk"] = echo_until_eos
    async with client.stream("greeter", "Chat.Talk") as stream:
        assert isinstance(stream, RpcStream)
        for n in range(3):
            await stream.send({"n": n})
            assert await stream.recv() == {"n": n}
        await stream.close_send()
        await stream.close_send()  # idempotent
        with pytest.raises(ConnectionClosed):
            await stream.send({"n": 99})
        assert [x async for x in stream] == []
    opening, *messages, end = received
    assert opening.body == b""  # a bidirectional stream's opening message carries no request
    assert [msgspec.json.decode(m.body) for m in messages] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert all(m.header["Micro-Stream"] == stream.id for m in received)
    assert end.header["Micro-Error"] == "EOS"
    assert end.body == b""


async def go_micro_v1_0(sock: Socket, first: Message) -> None:
    await sock.send(item(first, {"n": 1}))
    await sock.send(item(first, {"n": 2}))  # then close, no EOS


async def test_stream_from_a_go_micro_v1_0_node_ends_when_it_closes(
    client: RpcClient, server: FakeServer, registry: MemoryRegistry
) -> None:
    server.streams["Old.Stream"] = go_micro_v1_0
    v1_0 = Node("old-1", server.address, {"server": "rpc", "protocol": "mucp"})  # as v1.0 says
    await registry.register(Service("old", nodes=[v1_0]))
    async with client.stream("old", "Old.Stream", {}) as stream:
        assert [x async for x in stream] == [{"n": 1}, {"n": 2}]


async def test_a_close_before_eos_from_any_other_server_fails_the_stream(
    client: RpcClient, server: FakeServer
) -> None:
    server.streams["Old.Stream"] = go_micro_v1_0
    async with client.stream("greeter", "Old.Stream", {}) as stream:
        assert await stream.recv() == {"n": 1}
        assert await stream.recv() == {"n": 2}
        with pytest.raises(ConnectionClosed, match="cut off before its end"):
            await stream.recv()
        with pytest.raises(StopAsyncIteration):  # failed once, then ended
            await stream.recv()


async def test_stream_error_from_the_server(client: RpcClient, server: FakeServer) -> None:
    async def failing(sock: Socket, first: Message) -> None:
        await sock.send(item(first, {"n": 1}))
        error = BadRequest("n too large", id="greeter").to_json()
        await sock.send(reply_to(first, **{"Micro-Error": error}))

    server.streams["Bad.Stream"] = failing
    async with client.stream("greeter", "Bad.Stream", {}) as stream:
        assert await stream.recv() == {"n": 1}
        with pytest.raises(BadRequest, match="n too large"):
            await stream.recv()
        with pytest.raises(StopAsyncIteration):
            await stream.recv()


async def test_close_sends_eos_and_closes_the_connection(
    client: RpcClient, server: FakeServer, transport: RecordingTransport
) -> None:
    server.streams["Chat.Talk"] = sink
    stream = await client.stream("greeter", "Chat.Talk")  # await opens it too
    await stream.send({"n": 1})
    await stream.close()
    await stream.close()  # idempotent
    await eventually(lambda: len(received) == 3)
    assert received[-1].header["Micro-Error"] == "EOS"
    assert transport.dialed[-1].closed
    with pytest.raises(ConnectionClosed):
        await stream.send({"n": 2})


async def test_stream_has_its_own_connection(
    client: RpcClient, server: FakeServer, transport: RecordingTransport
) -> None:
    server.streams["Counter.Count"] = count
    await client.call("greeter", "Greeter.SayHello", {})
    async with client.stream("greeter", "Counter.Count", {"to": 1}) as stream:
        assert [x async for x in stream] == [{"n": 0}]
    assert len(transport.dialed) == 2
    assert client._pool.idle(server.address) == 1
    assert transport.dialed[1].closed
    assert not transport.dialed[0].closed


async def test_stream_to_unknown_service(client: RpcClient, server: FakeServer) -> None:
    with pytest.raises(ServiceNotFound):
        async with client.stream("nobody", "No.Body"):
            pass


async def test_stream_open_retries_connection_errors(client: RpcClient, server: FakeServer) -> None:
    server.streams["Counter.Count"] = count
    stream = client.stream("x", "Counter.Count", {"to": 1}, address=["127.0.0.1:1", server.address])
    assert isinstance(stream, RpcStream)
    async with stream:
        assert [x async for x in stream] == [{"n": 0}]
    assert stream.node is not None
    assert stream.node.address == server.address
    with pytest.raises(ConnectError):
        await client.stream("x", "Counter.Count", {"to": 1}, address="127.0.0.1:1")


async def test_stream_timeout(client: RpcClient, server: FakeServer) -> None:
    async def silent(sock: Socket, first: Message) -> None:
        await asyncio.sleep(5)

    server.streams["Quiet.Stream"] = silent
    async with client.stream("greeter", "Quiet.Stream", {}, timeout=0.1) as stream:
        with pytest.raises(Timeout, match="stream timeout"):
            await stream.recv()
    assert 0 < int(server.requests[0].header["Timeout"]) <= 100_000_000


async def test_client_close_closes_open_streams(
    client: RpcClient, server: FakeServer, transport: RecordingTransport
) -> None:
    server.streams["Chat.Talk"] = echo_until_eos
    stream = await client.stream("greeter", "Chat.Talk")
    await client.close()
    assert transport.dialed[-1].closed
    with pytest.raises(ConnectionClosed):
        await stream.recv()


async def test_unopened_stream(client: RpcClient) -> None:
    stream = client.stream("greeter", "Chat.Talk")
    with pytest.raises(RuntimeError, match="not open"):
        await stream.send({})
    await stream.close()
    with pytest.raises(ConnectionClosed):
        await stream.open()
