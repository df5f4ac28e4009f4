"""``raw``: length-prefixed JSON over plain asyncio Protocols, the practical Python ceiling.

A frame is a 4-byte big-endian length and a JSON body. The server decodes ``name`` and
answers ``{"msg": "Hello <name>"}``; the client keeps one connection per in-flight call.
JSON goes through msgspec (the fastest codec here, and the one micro uses).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

import msgspec

from benchmarks.harness import REQUEST, Client, Target

_encode = msgspec.json.encode
_decode = msgspec.json.decode
_HEADER = 4


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(_HEADER, "big") + body


def split_frames(buffer: bytearray) -> list[bytes]:
    """Remove and return every complete frame at the start of ``buffer``."""
    frames = []
    while len(buffer) >= _HEADER:
        size = int.from_bytes(buffer[:_HEADER], "big")
        if len(buffer) < _HEADER + size:
            break
        frames.append(bytes(buffer[_HEADER : _HEADER + size]))
        del buffer[: _HEADER + size]
    return frames


class _ServerProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        assert self.transport is not None
        for body in split_frames(self.buffer):
            request = _decode(body)
            self.transport.write(frame(_encode({"msg": f"Hello {request['name']}"})))


async def open_server() -> tuple[str, Callable[[], Awaitable[None]]]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_ServerProtocol, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]

    async def stop() -> None:
        server.close()
        await server.wait_closed()

    return f"{host}:{port}", stop


class _ClientProtocol(asyncio.Protocol):
    """One connection carrying one request at a time."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        for body in split_frames(self.buffer):
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(body)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("raw server closed the connection"))

    async def request(self, body: bytes) -> bytes:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(frame(body))
        return await self.waiter


class _Pool:
    """Idle connections; a call takes one or opens one, so N in flight use N connections."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.idle: list[_ClientProtocol] = []
        self.all: list[_ClientProtocol] = []

    async def call(self) -> Any:
        conn = self.idle.pop() if self.idle else await self._connect()
        try:
            body = await conn.request(_encode(REQUEST))
        except BaseException:
            if conn.transport is not None:  # a failed connection is not reused
                conn.transport.close()
            raise
        self.idle.append(conn)
        return _decode(body)

    async def _connect(self) -> _ClientProtocol:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(_ClientProtocol, self.host, self.port)
        self.all.append(conn)
        return conn

    async def close(self) -> None:
        for conn in self.all:
            if conn.transport is not None:
                conn.transport.close()
        self.idle.clear()
        self.all.clear()


class RawTarget(Target):
    name = "raw"
    title = "raw asyncio length-prefixed JSON (ceiling)"
    server_module = __name__

    async def make_client(self, address: str) -> Client:
        host, port = address.rsplit(":", 1)
        pool = _Pool(host, int(port))
        return Client(call=pool.call, close=pool.close)


TARGET = RawTarget()
