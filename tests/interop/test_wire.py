"""The bytes micro's client writes for a stream, read off a plain socket.

A go-micro v1.0 server (``server: rpc``) gets the request twice (the opening body, which it
never hands to a handler, then the first stream message) and no ``EOS``; other nodes get
``EOS`` when the client ends its side.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from micro.client.rpc import RpcClient
from micro.client.stream import RpcStream
from micro.registry import Node, Service
from micro.registry.memory import MemoryRegistry
from tests.interop.go_v1 import NODE_METADATA, SERVICE, read_message
from tests.transport.go_wire import RESPONSES_5_3


@dataclass
class Raw:
    """A plain TCP server: reads every request until the client closes, answering as told."""

    answer: bytes = b""  # written (then the connection closed) once two requests arrived
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (message := await read_message(reader)) is not None:
                async with self.arrived:
                    self.requests.append(message)
                    self.arrived.notify_all()
                if len(self.requests) == 2 and self.answer:
                    for at in range(0, len(self.answer), 24):  # Go writes in small pieces
                        writer.write(self.answer[at : at + 24])
                        await writer.drain()
                    return
        except ConnectionError:
            pass  # the client left
        finally:
            writer.close()
            self.closed.set()

    async def wait(self, count: int) -> None:
        async with asyncio.timeout(5), self.arrived:
            await self.arrived.wait_for(lambda: len(self.requests) >= count)


@pytest.fixture
async def raw() -> AsyncIterator[tuple[Raw, str]]:
    peer = Raw()
    server = await asyncio.start_server(peer.serve, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    yield peer, f"{host}:{port}"
    server.close()
    await server.wait_closed()


def check_stream_message(message: tuple[str, dict[str, str], bytes], stream_id: str) -> None:
    first_line, header, body = message
    assert first_line == "POST / HTTP/1.1"
    assert body == b'{"name":"John"}'
    assert header["Micro-Stream"] == header["Micro-Id"] == stream_id
    assert header["Micro-Service"] == SERVICE
    assert header["Micro-Endpoint"] == header["Micro-Method"] == "Say.Stream"
    assert header["Content-Type"] == header["Accept"] == "application/json"
    assert "Micro-Error" not in header


@pytest.fixture
async def go_node(raw: tuple[Raw, str], registry: MemoryRegistry) -> Raw:
    """The raw server, registered as a go-micro v1.0 node."""
    peer, address = raw
    await registry.register(Service(SERVICE, nodes=[Node("go-1", address, dict(NODE_METADATA))]))
    return peer


async def test_v1_0_answers_a_stream(go_node: Raw, client: RpcClient) -> None:
    go_node.answer = RESPONSES_5_3  # captured: three answers, then the connection closes
    async with client.stream(SERVICE, "Say.Stream", {"name": "John"}, timeout=5) as stream:
        assert isinstance(stream, RpcStream)
        items = [item async for item in stream]
    assert items == [{"msg": f"Hello John #{n}"} for n in range(3)]
    opening, first = go_node.requests
    check_stream_message(opening, stream.id)
    check_stream_message(first, stream.id)
    assert 0 < int(opening[1]["Timeout"]) <= 5_000_000_000
    assert "Timeout" not in first[1]


async def test_no_eos_to_v1_0(go_node: Raw, client: RpcClient) -> None:
    async with client.stream(SERVICE, "Say.Stream", {"name": "John"}) as stream:
        await go_node.wait(2)
        await stream.close_send()
    await asyncio.wait_for(go_node.closed.wait(), 5)
    assert len(go_node.requests) == 2  # read until the client closed: nothing more came


async def test_to_other_servers_close_send_is_eos(raw: tuple[Raw, str], client: RpcClient) -> None:
    peer, address = raw
    async with client.stream(SERVICE, "Say.Stream", {"name": "John"}, address=address) as stream:
        assert isinstance(stream, RpcStream)
        await peer.wait(2)
        await stream.close_send()
        await peer.wait(3)
    opening, first, end = peer.requests
    check_stream_message(opening, stream.id)
    check_stream_message(first, stream.id)
    assert end[1]["Micro-Error"] == "EOS"
    assert end[1]["Micro-Stream"] == stream.id
    assert end[2] == b""
