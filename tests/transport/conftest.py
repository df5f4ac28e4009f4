"""Fixtures for the HTTP transport tests: a transport, a recording server, raw sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvloop

from micro.errors import ConnectionClosed
from micro.transport import Message, Socket
from micro.transport.http import HttpListener, HttpTransport


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every async test here runs on asyncio's own loop and on uvloop (the production loop)."""
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture
async def transport() -> AsyncIterator[HttpTransport]:
    t = HttpTransport(linger=0.5)
    yield t
    await t.close()


@dataclass
class Recorder:
    """A handler that records every message and how each connection ended."""

    reply: Callable[[Message], Message | None] | None = None
    messages: list[Message] = field(default_factory=list)
    endings: list[BaseException | None] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, sock: Socket) -> None:
        try:
            while True:
                message = await sock.recv()
                self.messages.append(message)
                self.arrived.set()
                answer = self.reply(message) if self.reply else None
                if answer is not None:
                    await sock.send(answer)
        except ConnectionClosed as exc:
            self.endings.append(exc)
        except BaseException as exc:
            self.endings.append(exc)
            raise
        finally:
            self.ended.set()

    async def wait_messages(self, count: int, timeout: float = 5.0) -> list[Message]:
        async with asyncio.timeout(timeout):
            while len(self.messages) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.messages


def echo(message: Message) -> Message:
    return Message(dict(message.header), message.body)


@pytest.fixture
async def echo_server(transport: HttpTransport) -> tuple[HttpListener, Recorder]:
    recorder = Recorder(reply=echo)
    listener = await transport.listen("127.0.0.1:0", recorder)
    return listener, recorder


async def raw_exchange(
    address: str,
    data: bytes | Sequence[bytes],
    *,
    half_close: bool = True,
    pause: float = 0.0,
    timeout: float = 5.0,
) -> bytes:
    """Write ``data`` (chunk by chunk) on a plain TCP connection; read until the peer closes."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        chunks = [data] if isinstance(data, bytes) else data
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            if pause:
                await asyncio.sleep(pause)
        if half_close:
            writer.write_eof()
        async with asyncio.timeout(timeout):
            return await reader.read()
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[RawHandler], Awaitable[str]]]:
    """Starts plain asyncio servers (standing in for a Go server); returns their address."""
    servers: list[asyncio.Server] = []
    writers: list[asyncio.StreamWriter] = []

    async def start(handler: RawHandler) -> str:
        async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            try:
                await handler(reader, writer)
            finally:
                writer.close()

        server = await asyncio.start_server(guarded, "127.0.0.1", 0)
        servers.append(server)
        host, port = server.sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    yield start
    for writer in writers:
        writer.close()
    for server in servers:
        server.close()
        await server.wait_closed()


def segments(data: bytes, count: int = 40) -> list[bytes]:
    """``data`` cut into about ``count`` pieces, like Go's unbuffered response writes."""
    size = max(1, -(-len(data) // count))
    return [data[i : i + size] for i in range(0, len(data), size)]


async def write_slowly(writer: asyncio.StreamWriter, pieces: Sequence[bytes]) -> None:
    for piece in pieces:
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.001)


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request head plus its Content-Length body, read off a raw server connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


class FakeTransport(asyncio.Transport):
    """Just enough of a transport to drive a protocol by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1234) if name in ("sockname", "peername") else default

    def write(self, data: Any) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0
