"""The client against a simulated go-micro v1.0 server (tests/client/go_v1.py) over real
sockets: the connections it closes after every error, streams cut off by a reset or in the
middle of a message, and protobuf bodies byte for byte."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import pytest

from micro.client.rpc import RpcClient
from micro.errors import BadRequest, ConnectionClosed, MicroError
from micro.registry import Node, Service
from micro.registry.memory import MemoryRegistry
from micro.transport.http import HttpTransport
from tests.client.go_v1 import GREETER, NODE_METADATA, GoV1Greeter, string_field

RUNS = 20


def no_backoff(attempt: int) -> float:
    return 0.0


@pytest.fixture
async def go() -> AsyncIterator[GoV1Greeter]:
    server = await GoV1Greeter().start()
    yield server
    await server.close()


@pytest.fixture
async def client(go: GoV1Greeter) -> AsyncIterator[RpcClient]:
    """A client that finds the Go node in its registry, with v1.0's node metadata."""
    registry = MemoryRegistry()
    node = Node(f"{GREETER}-1", go.address, dict(NODE_METADATA))
    await registry.register(Service(GREETER, nodes=[node]))
    transport = HttpTransport()
    rpc = RpcClient(transport=transport, registry=registry, backoff=no_backoff)
    yield rpc
    await rpc.close()
    await transport.close()


async def hello(client: RpcClient, name: str, **options: Any) -> Any:
    return await client.call(GREETER, "Say.Hello", {"name": name}, retries=0, **options)


async def read_stream(
    client: RpcClient, endpoint: str, got: list[str], *, send: bool = False, **options: Any
) -> None:
    """Open a stream (and ``send`` one message first), collect what it says until it ends."""
    async with client.stream(GREETER, endpoint, {}, **options) as stream:
        if send:
            await stream.send({"name": "John"})
        async for message in stream:
            got.append(message["msg"])


# --------------------------------------------------------------------------- unary calls


@pytest.mark.parametrize(("endpoint", "error"), [("Say.Fail", BadRequest), ("Say.Nope", None)])
async def test_a_call_right_after_a_go_error_needs_no_retry(
    client: RpcClient, go: GoV1Greeter, endpoint: str, error: type[MicroError] | None
) -> None:
    """v1.0 closes the connection after every error answer: the next call, with no retry
    to spend, must not be written into it."""
    for n in range(RUNS):
        with pytest.raises(error or MicroError) as raised:
            await client.call(GREETER, endpoint, {"name": "John"}, retries=0)
        if error is None:  # the plain-text error of an unknown method
            assert raised.value.code == 0
            assert raised.value.detail == "rpc: can't find method Nope"
        assert await hello(client, f"call {n}") == {"msg": f"Hello call {n}"}
    assert go.received(endpoint) == go.received("Say.Hello") == RUNS  # nothing sent twice
    assert go.connections == RUNS + 1  # one per error, as the server closed each


async def test_a_request_the_server_may_have_read_is_not_sent_again(
    client: RpcClient, go: GoV1Greeter
) -> None:
    """A kept-alive connection closed in order after the request left: the server may have
    read (and acted on) it, so it is not resent on a new connection."""
    assert await hello(client, "a") == {"msg": "Hello a"}
    with pytest.raises(ConnectionClosed):
        await client.call(GREETER, "Say.Drop", {"name": "once"}, retries=0)
    assert go.received("Say.Drop") == 1
    assert await hello(client, "b") == {"msg": "Hello b"}


@pytest.mark.parametrize("answers", ["Connection: close", "HTTP/1.0"])
async def test_an_answer_that_ends_the_connection_is_honoured(
    client: RpcClient, go: GoV1Greeter, answers: str
) -> None:
    """The server says this answer is its last but leaves the socket open: the client must
    not send the next request there."""
    go.keep_alive = answers != "Connection: close"
    go.http10 = answers == "HTTP/1.0"
    for n in range(3):
        assert await hello(client, str(n)) == {"msg": f"Hello {n}"}
    assert go.connections == 3
    assert client._pool.idle(go.address) == 0


# --------------------------------------------------------------------------- streams


async def test_a_go_v1_0_stream_ends_cleanly_when_the_server_closes(
    client: RpcClient, go: GoV1Greeter
) -> None:
    got: list[str] = []
    await read_stream(client, "Say.Stream", got)
    assert got == ["Hello #0", "Hello #1", "Hello #2"]


async def test_a_close_before_eos_fails_a_stream_from_a_server_that_sends_eos(
    client: RpcClient, go: GoV1Greeter
) -> None:
    """The same close from a node not known to end streams that way (no ``server=rpc``)."""
    got: list[str] = []
    with pytest.raises(ConnectionClosed, match="cut off before its end"):
        await read_stream(client, "Say.Stream", got, address=go.address)
    assert got == ["Hello #0", "Hello #1", "Hello #2"]


@pytest.mark.parametrize("endpoint", ["Say.Reset", "Say.Cut"])
async def test_a_stream_cut_off_midway_fails_every_time(
    client: RpcClient, go: GoV1Greeter, endpoint: str
) -> None:
    """A reset, or a close in the middle of a message, is never a clean end, even from a
    server that ends streams by closing."""
    for _ in range(RUNS):
        got: list[str] = []
        with pytest.raises(ConnectionClosed, match="cut off before its end"):
            await read_stream(client, endpoint, got)
        assert got in ([], ["Hello #0"])
    assert go.received(endpoint) == RUNS


async def test_a_stream_to_a_method_go_lacks_never_ends_cleanly(
    client: RpcClient, go: GoV1Greeter
) -> None:
    """Go answers the error and closes; the client's send crosses the close (the reset
    that follows may cost the error): the stream fails either way."""
    for _ in range(RUNS):
        with pytest.raises(MicroError) as raised:
            await read_stream(client, "Say.Bidi", [], send=True)
        assert isinstance(raised.value, ConnectionClosed) or raised.value.detail == (
            "rpc: can't find method Bidi"
        )


# --------------------------------------------------------------------------- protobuf


async def test_protobuf_call_through_a_go_v1_0_server(
    client: RpcClient, go: GoV1Greeter, greeter_pb2: ModuleType
) -> None:
    options: dict[str, Any] = {
        "content_type": "application/protobuf",
        "response_type": greeter_pb2.Response,
        "retries": 0,
    }
    reply = await client.call(GREETER, "Say.Hello", greeter_pb2.Request(name="John"), **options)
    assert reply == greeter_pb2.Response(msg="Hello John")
    with pytest.raises(BadRequest) as raised:
        await client.call(GREETER, "Say.Fail", greeter_pb2.Request(name="Jane"), **options)
    assert raised.value.detail == 'bad name "Jane"'
    reply = await client.call(GREETER, "Say.Hello", greeter_pb2.Request(), **options)
    assert reply == greeter_pb2.Response(msg="Hello ")

    first, fail, empty = go.requests
    assert first.body == string_field(1, "John") == b"\n\x04John"
    assert first.header["Content-Type"] == first.header["Accept"] == "application/protobuf"
    assert fail.body == b"\n\x04Jane"
    assert empty.body == b""  # proto3 sends an empty message as no bytes at all
