"""Byte-level compatibility with go-micro v1.0 (bytes captured from a go-micro v1.0 program;
see docs/protocol.md).

Server side: the exact request bytes a Go client wrote, fed to an HttpTransport listener over
a real socket, in one write and split byte by byte. Client side: the exact response bytes a
Go server wrote, served in ~40 small segments (Go writes unbuffered) to a dialed socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from micro.errors import ConnectionClosed, MicroError
from micro.transport import Message, get_header
from micro.transport.http import HttpTransport

from .conftest import RawHandler, Recorder, read_request, segments, write_slowly
from .go_wire import (
    ERROR_5_2,
    HEADER_5_1,
    HEADER_5_3,
    REQUEST_5_1,
    REQUESTS_5_3,
    RESPONSE_5_1,
    RESPONSE_5_2,
    RESPONSES_5_3,
    stream_response,
)

StartRaw = Callable[[RawHandler], Awaitable[str]]


async def send_raw(address: str, pieces: list[bytes], pause: bool) -> None:
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            if pause:
                await asyncio.sleep(0)
        writer.write_eof()
        await asyncio.wait_for(reader.read(), 5.0)
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.mark.parametrize("split", ["one-write", "byte-by-byte"])
async def test_go_requests_reach_the_handler(transport: HttpTransport, split: str) -> None:
    recorder = Recorder()
    listener = await transport.listen("127.0.0.1:0", recorder)
    wire = REQUEST_5_1 + REQUESTS_5_3  # a unary call then a v1.0 stream's two POSTs
    pieces = [wire] if split == "one-write" else [wire[i : i + 1] for i in range(len(wire))]
    await send_raw(listener.address, pieces, pause=split != "one-write")
    await asyncio.wait_for(recorder.ended.wait(), 5.0)

    unary, stream_first, stream_second = recorder.messages
    assert unary == Message(HEADER_5_1, b'{"name":"John"}\n')
    assert stream_first == Message(HEADER_5_3, b'{"name":""}\n')
    assert stream_second == Message(HEADER_5_3, b'{"name":"John"}\n')
    assert get_header(unary.header, "Micro-Endpoint") == "Say.Hello"
    assert isinstance(recorder.endings[0], ConnectionClosed)


async def test_go_unary_and_error_responses(transport: HttpTransport, raw_server: StartRaw) -> None:
    requests: list[bytes] = []

    async def go_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await read_request(reader))
        await write_slowly(writer, segments(RESPONSE_5_1))
        requests.append(await read_request(reader))
        await write_slowly(writer, segments(RESPONSE_5_2))
        await reader.read()

    address = await raw_server(go_server)
    sock = await transport.dial(address)
    try:
        await sock.send(Message({"Micro-Id": "0", "Micro-Endpoint": "Say.Hello"}, b"{}"))
        hello = await sock.recv()
        assert hello.body == b'{"msg":"Hello John"}\n'
        assert hello.header["Micro-Id"] == "0"
        assert hello.header["X-Micro-Service"] == "go.micro.srv.greeter"
        assert hello.header["User-Agent"] == "Go-http-client/1.1"
        assert "Content-Length" not in hello.header

        await sock.send(Message({"Micro-Id": "1", "Micro-Endpoint": "Say.Fail"}, b"{}"))
        fail = await sock.recv()
        assert fail.body == b""
        assert fail.header["Micro-Error"] == ERROR_5_2
        assert fail.header["X-Micro-Error"] == ERROR_5_2
        error = MicroError.parse(get_header(fail.header, "Micro-Error"))
        assert (error.code, error.id, error.detail) == (
            400,
            "go.micro.srv.greeter",
            'bad name "John"',
        )
    finally:
        await sock.close()
    assert requests[0].startswith(f"POST / HTTP/1.1\r\nHost: {address}\r\n".encode())
    assert b"\r\nContent-Length: 2\r\n" in requests[0]
    assert b"\r\nMicro-Endpoint: Say.Fail\r\n" in requests[1]


async def test_go_stream_responses_then_close(
    transport: HttpTransport, raw_server: StartRaw
) -> None:
    async def go_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await read_request(reader)
        await write_slowly(writer, segments(RESPONSES_5_3))
        writer.close()  # v1.0 ends a stream by closing the connection

    address = await raw_server(go_server)
    sock = await transport.dial(address)
    try:
        await sock.send(Message({"Micro-Endpoint": "Say.Stream"}, b'{"name":""}\n'))
        await sock.send(Message({"Micro-Endpoint": "Say.Stream"}, b'{"name":"John"}\n'))
        for n in range(3):
            message = await sock.recv()
            assert message.body == b'{"msg":"Hello John #%d"}\n' % n
            assert message.header["Micro-Endpoint"] == "Say.Stream"
            assert "Micro-Id" not in message.header
        with pytest.raises(ConnectionClosed):
            await sock.recv()
        assert sock.closed
    finally:
        await sock.close()


async def test_waiting_recv_is_woken_by_close(
    transport: HttpTransport, raw_server: StartRaw
) -> None:
    async def go_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(0.05)
        writer.write(stream_response(0)[:50])  # half a response, then the connection drops
        await writer.drain()
        writer.close()

    address = await raw_server(go_server)
    sock = await transport.dial(address)
    try:
        await sock.send(Message({}, b"{}"))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(sock.recv(), 5.0)
    finally:
        await sock.close()
