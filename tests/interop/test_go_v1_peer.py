"""The simulated go-micro v1.0 peer writes the bytes captured from the real one."""

from __future__ import annotations

import asyncio

from tests.interop.go_v1 import GoV1Client, GoV1Server
from tests.transport.go_wire import (
    REQUEST_5_1,
    REQUESTS_5_3,
    RESPONSE_5_1,
    RESPONSE_5_2,
    RESPONSES_5_3,
)


async def exchange(address: str, data: bytes) -> bytes:
    """Write ``data`` on a new connection; everything read until the server closes it."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(5):
            return await reader.read()
    finally:
        writer.close()


async def test_the_server_answers_as_captured(go_server: GoV1Server) -> None:
    fail = REQUEST_5_1.replace(b"Say.Hello", b"Say.Fail").replace(b"Id: 0", b"Id: 1")
    assert await exchange(go_server.address, REQUEST_5_1 + fail) == RESPONSE_5_1 + RESPONSE_5_2
    assert await exchange(go_server.address, REQUESTS_5_3) == RESPONSES_5_3
    assert [r.request for r in go_server.received] == [{"name": "John"}]


async def test_the_client_opens_a_stream_as_captured() -> None:
    requests = asyncio.Queue[bytes]()
    expected = b""

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await requests.put(await reader.readexactly(len(expected)))
        writer.close()

    server = await asyncio.start_server(record, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    expected = REQUESTS_5_3.replace(b"127.0.0.1:50051", f"{host}:{port}".encode())
    try:
        stream = await GoV1Client(f"{host}:{port}").stream("Say.Stream", {"name": "John"})
        async with asyncio.timeout(5):
            assert await requests.get() == expected
        await stream.close()
    finally:
        server.close()
        await server.wait_closed()
    assert bytes(stream.sent) == expected
