"""Fixtures: an RpcServer serving ``Say`` over each transport, and a raw-message client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import pytest

from micro.registry.memory import MemoryRegistry
from micro.server.rpc import RpcServer
from micro.transport import Message, Socket, Transport
from tests.server.handlers import Say
from tests.transport.backends import ALL, make_transport

SERVICE = "go.micro.srv.greeter"

MakeServer = Callable[..., Awaitable[RpcServer]]


def request(
    endpoint: str,
    body: Any = None,
    *,
    service: str | None = SERVICE,
    raw: bytes | None = None,
    **headers: str,
) -> Message:
    """A client message for ``endpoint``; ``body`` is JSON-encoded unless ``raw`` is given."""
    header = {"Content-Type": "application/json", "Micro-Endpoint": endpoint}
    if service is not None:
        header["Micro-Service"] = service
    header.update({k.replace("_", "-"): v for k, v in headers.items()})
    data = raw if raw is not None else msgspec.json.encode(body if body is not None else {})
    return Message(header, data)


def error_of(message: Message) -> dict[str, Any]:
    """The decoded ``Micro-Error`` of a reply (fails the test when there is none)."""
    text = message.header.get("Micro-Error")
    assert text, f"expected an error, got {message!r}"
    assert message.header.get("X-Micro-Error") == text
    assert message.body == b""
    decoded: dict[str, Any] = msgspec.json.decode(text)
    return decoded


def body_of(message: Message) -> Any:
    assert "Micro-Error" not in message.header, message.header["Micro-Error"]
    return msgspec.json.decode(message.body)


class Peer:
    """A raw client connection: send messages, read replies."""

    def __init__(self, sock: Socket) -> None:
        self.sock = sock

    async def call(self, message: Message) -> Message:
        await self.sock.send(message)
        return await self.sock.recv()

    async def open_stream(self, endpoint: str, body: Any = None, **headers: str) -> None:
        """Open a stream as micro's client does: the request in the opening message and
        again as the first stream message (the one a server stream reads)."""
        opening = request(endpoint, body)
        opening.header.update({k.replace("_", "-"): v for k, v in headers.items()})
        await self.sock.send(opening)
        await self.sock.send(Message(dict(opening.header), opening.body))

    async def close(self) -> None:
        await self.sock.close()


@pytest.fixture(params=ALL)
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[Transport]:
    made = make_transport(request.param)
    yield made
    await made.close()


@pytest.fixture
def registry() -> MemoryRegistry:
    return MemoryRegistry()


@pytest.fixture
def say() -> Say:
    return Say()


@pytest.fixture
async def make_server(transport: Transport, registry: MemoryRegistry) -> AsyncIterator[MakeServer]:
    servers: list[RpcServer] = []

    async def make(*handlers: object, start: bool = True, **options: Any) -> RpcServer:
        options.setdefault("name", SERVICE)
        options.setdefault("address", "127.0.0.1:0")
        options.setdefault("register_interval", 0)
        server = RpcServer(transport=transport, registry=registry, **options)
        for handler in handlers:
            server.handle(handler)
        servers.append(server)
        if start:
            await server.start()
        return server

    yield make
    for server in servers:
        await server.stop(grace=0.5)


@pytest.fixture
async def server(make_server: MakeServer, say: Say) -> RpcServer:
    return await make_server(say)


@pytest.fixture
async def peer(transport: Transport, server: RpcServer) -> AsyncIterator[Peer]:
    connected = Peer(await transport.dial(server.address))
    yield connected
    await connected.close()
