"""The dialing side of HttpTransport: responses of every shape, dial errors, send checks."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable

import pytest

from micro.errors import BadRequest, ConnectError, ConnectionClosed, MicroError, PayloadTooLarge
from micro.transport import Message, get_header
from micro.transport._http_client import HttpClientSocket
from micro.transport.http import HttpTransport

from .conftest import (
    FakeTransport,
    RawHandler,
    Recorder,
    echo,
    read_request,
    segments,
    write_slowly,
)

StartRaw = Callable[[RawHandler], Awaitable[str]]


def answer_with(*responses: bytes, close: bool = False) -> RawHandler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        for response in responses:
            await write_slowly(writer, segments(response, 8))
        if close:
            writer.close()
        else:
            await reader.read()

    return handler


async def test_non_200_without_micro_error_gets_one(
    transport: HttpTransport, raw_server: StartRaw
) -> None:
    address = await raw_server(
        answer_with(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found")
    )
    sock = await transport.dial(address)
    try:
        await sock.send(Message({}, b"{}"))
        message = await sock.recv()
    finally:
        await sock.close()
    assert message.body == b"not found"
    error = MicroError.parse(get_header(message.header, "Micro-Error"))
    assert (error.code, error.id, error.detail) == (
        404,
        "go.micro.transport",
        "404 Not Found: not found",
    )


async def test_413_from_a_micro_server(transport: HttpTransport) -> None:
    small = HttpTransport(max_body=100, linger=0.5)
    try:
        listener = await small.listen("127.0.0.1:0", Recorder(reply=echo))
        sock = await transport.dial(listener.address)
        await sock.send(Message({}, b"x" * 101))
        message = await sock.recv()
        error = MicroError.parse(get_header(message.header, "Micro-Error"))
        assert isinstance(error, PayloadTooLarge)
        assert error.detail == "request body of 101 bytes exceeds the 100 byte limit"
        with pytest.raises(ConnectionClosed):
            await sock.recv()
        await sock.close()
    finally:
        await small.close()


async def test_interim_1xx_is_skipped(transport: HttpTransport, raw_server: StartRaw) -> None:
    address = await raw_server(
        answer_with(
            b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        )
    )
    sock = await transport.dial(address)
    try:
        await sock.send(Message({}, b"{}"))
        assert await sock.recv() == Message({}, b"ok")
    finally:
        await sock.close()


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nA: b\r\n\r\n"
        b"2\r\nok\r\n3\r\n!!!\r\n0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nA: b\r\n\r\nok!!!",  # no length: the body ends with the connection
    ],
)
async def test_chunked_and_read_to_close_responses(
    transport: HttpTransport, raw_server: StartRaw, response: bytes
) -> None:
    address = await raw_server(answer_with(response, close=True))
    sock = await transport.dial(address)
    try:
        await sock.send(Message({}, b"{}"))
        assert await sock.recv() == Message({"A": "b"}, b"ok!!!")
        with pytest.raises(ConnectionClosed):
            await sock.recv()
    finally:
        await sock.close()


async def test_malformed_response_is_bad_request(
    transport: HttpTransport, raw_server: StartRaw
) -> None:
    address = await raw_server(answer_with(b"-ERR this is redis\r\n"))
    sock = await transport.dial(address)
    try:
        await sock.send(Message({}, b"{}"))
        with pytest.raises(BadRequest, match="malformed HTTP response"):
            await sock.recv()
        assert sock.closed
        with pytest.raises(BadRequest):
            await sock.recv()
    finally:
        await sock.close()


async def test_response_over_the_limit(raw_server: StartRaw) -> None:
    transport = HttpTransport(max_body=10)
    body = b"0123456789ABC"
    address = await raw_server(answer_with(b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n" + body))
    chunked = await raw_server(
        answer_with(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nd\r\n" + body + b"\r\n0\r\n\r\n"
        )
    )
    try:
        for target in (address, chunked):
            sock = await transport.dial(target)
            await sock.send(Message({}, b"{}"))
            with pytest.raises(PayloadTooLarge, match="exceeds the 10 byte limit"):
                await sock.recv()
            assert sock.closed
    finally:
        await transport.close()


async def test_dial_refused_names_the_address(transport: HttpTransport) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(ConnectError, match=f"dial {address}: "):
        await transport.dial(address)
    for bad in ("nohost", "127.0.0.1:http", "127.0.0.1:99999"):
        with pytest.raises(ConnectError, match="invalid address"):
            await transport.dial(bad)


async def test_dial_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()

    async def never_connects(*args: object, **kwargs: object) -> None:
        await asyncio.sleep(60)

    monkeypatch.setattr(loop, "create_connection", never_connects)
    transport = HttpTransport(dial_timeout=0.05)
    with pytest.raises(ConnectError, match=r"dial 127\.0\.0\.1:9: no connection within 0\.05s"):
        await transport.dial("127.0.0.1:9")
    with pytest.raises(ConnectError, match=r"within 0\.01s"):
        await transport.dial("127.0.0.1:9", timeout=0.01)


async def test_dial_timeout_against_a_full_backlog() -> None:
    # a listener that never accepts, with its accept queue full: the kernel drops new SYNs
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        address = f"127.0.0.1:{server.getsockname()[1]}"
        fillers = []
        transport = HttpTransport()
        try:
            for _ in range(4):
                filler = socket.socket()
                filler.setblocking(False)
                fillers.append(filler)
                try:
                    filler.connect(server.getsockname())
                except BlockingIOError:
                    pass
            await asyncio.sleep(0.05)
            with pytest.raises(ConnectError, match=r"no connection within 0\.2s"):
                await transport.dial(address, timeout=0.2)
        finally:
            for filler in fillers:
                filler.close()
            await transport.close()


@pytest.mark.parametrize(
    "header",
    [
        {"X-Evil": "a\r\nInjected: yes"},
        {"X-Evil": "a\nb"},
        {"X-Evil": "nul\x00"},
        {"Bad Name": "x"},
        {"": "x"},
        {"X-Surrogate": "\ud800"},
    ],
)
async def test_send_refuses_unsafe_headers(
    transport: HttpTransport, echo_server: tuple[object, Recorder], header: dict[str, str]
) -> None:
    listener, recorder = echo_server
    sock = await transport.dial(listener.address)  # type: ignore[attr-defined]
    try:
        with pytest.raises(BadRequest):
            await sock.send(Message(header, b"x"))
        await sock.send(Message({"X-Fine": "yes"}, b"y"))  # the connection is still usable
        reply = await sock.recv()
        assert reply == Message({"X-Fine": "yes"}, b"y")
        assert [m.body for m in recorder.messages] == [b"y"]
    finally:
        await sock.close()


async def test_transport_headers_in_a_message_are_ignored(
    transport: HttpTransport, echo_server: tuple[object, Recorder]
) -> None:
    listener, _ = echo_server
    sock = await transport.dial(listener.address)  # type: ignore[attr-defined]
    try:
        header = {
            "Content-Length": "999",
            "content-length": "7",
            "Transfer-Encoding": "chunked",
            "Host": "evil",
            "Connection": "close",
            "Micro-Id": "1",
        }
        await sock.send(Message(header, b"body"))
        assert await sock.recv() == Message({"Micro-Id": "1"}, b"body")
        await sock.send(Message({}, b"again"))  # still open: Connection: close was dropped
        assert (await sock.recv()).body == b"again"
    finally:
        await sock.close()


async def test_send_after_close(
    transport: HttpTransport, echo_server: tuple[object, Recorder]
) -> None:
    listener, _ = echo_server
    sock = await transport.dial(listener.address)  # type: ignore[attr-defined]
    await sock.close()
    with pytest.raises(ConnectionClosed):
        await sock.send(Message({}, b"x"))
    with pytest.raises(ConnectionClosed):
        await sock.recv()


async def test_concurrent_recv_is_an_error(
    transport: HttpTransport, echo_server: tuple[object, Recorder]
) -> None:
    listener, _ = echo_server
    sock = await transport.dial(listener.address)  # type: ignore[attr-defined]
    try:
        first = asyncio.create_task(sock.recv())
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="another recv"):
            await sock.recv()
        await sock.send(Message({}, b"x"))
        assert (await first).body == b"x"
    finally:
        await sock.close()


async def test_recv_cancelled_after_delivery_loses_nothing() -> None:
    sock = HttpClientSocket("127.0.0.1:1", max_body=1024, max_header=1024)
    sock.connection_made(FakeTransport())
    waiting = asyncio.create_task(sock.recv())
    await asyncio.sleep(0)  # now waiting in recv
    sock.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
    waiting.cancel()  # the reply is in the future, the task has not resumed yet
    with pytest.raises(asyncio.CancelledError):
        await waiting
    try:
        assert (await asyncio.wait_for(sock.recv(), 1.0)).body == b"first"
    finally:
        sock.connection_lost(None)


async def test_connection_close_response_marks_the_socket_closed(
    transport: HttpTransport, raw_server: StartRaw
) -> None:
    release = asyncio.Event()

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 4\r\n\r\nlast")
        await writer.drain()
        await release.wait()  # the FIN comes later: the header alone must close the socket

    address = await raw_server(server)
    sock = await transport.dial(address)
    try:
        await sock.send(Message({}, b"{}"))
        assert await sock.recv() == Message({}, b"last")
        assert sock.closed
        with pytest.raises(ConnectionClosed):
            await sock.send(Message({}, b"{}"))
        with pytest.raises(ConnectionClosed):
            await sock.recv()
    finally:
        release.set()
        await sock.close()


# --------------------------------------------------------------------------- how it ended

OK_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (linger 0) instead of an orderly close."""
    raw = writer.get_extra_info("socket")
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@pytest.mark.parametrize("end", ["close", "reset"])
async def test_no_request_goes_into_a_connection_the_server_ended_after_answering(
    transport: HttpTransport, raw_server: StartRaw, end: str
) -> None:
    """The server answers, then closes (as go-micro v1.0 does after an error) or resets;
    the event loop has not read that yet when the next request is sent: send raises
    instead of writing it."""

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK_RESPONSE)
        await writer.drain()
        if end == "reset":
            reset(writer)

    address = await raw_server(server)
    sock = await transport.dial(address)
    try:
        await sock.send(Message({}, b"{}"))
        assert (await sock.recv()).body == b"ok"
        with pytest.raises(ConnectionClosed):
            await sock.send(Message({}, b"{}"))
        assert sock.closed
        assert sock.cut_off is (end == "reset")
    finally:
        await sock.close()


async def test_an_orderly_close_after_the_request_counts_as_answered(
    transport: HttpTransport, raw_server: StartRaw
) -> None:
    """The server read the request and closed without a word: it may have acted on it."""

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    address = await raw_server(server)
    sock = await transport.dial(address)
    try:
        await sock.send(Message({}, b"{}"))
        assert not sock.answered
        with pytest.raises(ConnectionClosed):
            await sock.recv()
        assert sock.answered
        assert not sock.cut_off
    finally:
        await sock.close()


async def test_a_reset_with_nothing_answered_is_not_answered(
    transport: HttpTransport, raw_server: StartRaw
) -> None:
    """The server resets the connection with the request unread: it was discarded."""
    arrived = asyncio.Event()

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(1)  # the request has started to arrive, unread past that
        arrived.set()
        reset(writer)

    address = await raw_server(server)
    sock = await transport.dial(address)
    try:
        await sock.send(Message({}, b"{}"))
        with pytest.raises(ConnectionClosed):
            await sock.recv()
        assert arrived.is_set()
        assert not sock.answered
        assert sock.cut_off
    finally:
        await sock.close()


@pytest.mark.parametrize(
    ("written", "cut_off"),
    [
        (OK_RESPONSE, False),  # between messages
        (OK_RESPONSE[:20], True),  # in the head
        (OK_RESPONSE[:-1], True),  # in the body
    ],
    ids=["between-messages", "in-the-head", "in-the-body"],
)
async def test_a_close_inside_a_response_is_a_cut_off(
    transport: HttpTransport, raw_server: StartRaw, written: bytes, cut_off: bool
) -> None:
    address = await raw_server(answer_with(written, close=True))
    sock = await transport.dial(address)
    try:
        await sock.send(Message({}, b"{}"))
        if not cut_off:
            assert (await sock.recv()).body == b"ok"
        with pytest.raises(ConnectionClosed):
            await sock.recv()
        assert sock.cut_off is cut_off
        assert sock.answered
    finally:
        await sock.close()
