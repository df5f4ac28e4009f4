"""The accepting side of HttpTransport: refusals, HTTP features, shutdown and flow control."""

from __future__ import annotations

import asyncio
import http.client
import json
import shutil

import pytest

from micro.errors import ConnectError, ConnectionClosed, MicroError
from micro.testing import eventually
from micro.transport import Message, Socket
from micro.transport.http import HttpListener, HttpServerSocket, HttpTransport

from .conftest import Recorder, echo, raw_exchange
from .go_wire import REQUEST_5_1

POST = b"POST / HTTP/1.1\r\nHost: x\r\n"


def post(body: bytes, *headers: str) -> bytes:
    extra = "".join(h + "\r\n" for h in headers).encode()
    return POST + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body


def parse_refusal(raw: bytes) -> tuple[int, dict[str, str], MicroError]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert len(body) == int(headers["Content-Length"])
    assert headers["Micro-Error"] == body.decode()
    return status, headers, MicroError.parse(body)


async def assert_still_serving(address: str) -> None:
    raw = await raw_exchange(address, post(b"ok?"))
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert raw.endswith(b"\r\n\r\nok?")


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\x01\x02 not http at all\r\n\r\n",
        b"POST / HTTP/1.1\r\nBad Header: x\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
        b"POST / HTTP/1.1\r\nX: a\x01b\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    ],
)
async def test_garbage_gets_400_and_close(transport: HttpTransport, garbage: bytes) -> None:
    recorder = Recorder(reply=echo)
    listener = await transport.listen("127.0.0.1:0", recorder)
    raw = await raw_exchange(listener.address, garbage, half_close=False)
    status, headers, error = parse_refusal(raw)
    assert status == 400
    assert headers["Connection"] == "close"
    assert headers["X-Micro-Error"] == headers["Micro-Error"]
    assert (error.code, error.id) == (400, "go.micro.transport")
    assert error.detail.startswith("malformed HTTP request")
    await asyncio.wait_for(recorder.ended.wait(), 5.0)
    assert recorder.messages == []
    assert isinstance(recorder.endings[0], ConnectionClosed)
    await assert_still_serving(listener.address)


async def test_request_before_garbage_is_dropped(transport: HttpTransport) -> None:
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    got: list[BaseException] = []

    async def slow(sock: Socket) -> None:
        await never  # never reads: the garbage arrives while the first request is queued
        try:
            await sock.recv()
        except ConnectionClosed as exc:
            got.append(exc)

    listener = await transport.listen("127.0.0.1:0", slow)
    raw = await raw_exchange(listener.address, post(b"first") + b"\x00garbage\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 400 ")
    never.set_result(None)
    assert await listener.wait_closed(5.0)
    assert len(got) == 1


async def test_oversized_content_length_gets_413_before_the_body(transport: HttpTransport) -> None:
    recorder = Recorder(reply=echo)
    small = HttpTransport(max_body=1000, linger=0.5)
    try:
        listener = await small.listen("127.0.0.1:0", recorder)
        host, port = listener.address.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(POST + b"Content-Length: 5000000\r\n\r\n")  # and no body at all
            raw = await asyncio.wait_for(reader.read(), 5.0)
        finally:
            writer.close()
            await writer.wait_closed()
        status, headers, error = parse_refusal(raw)
        assert status == 413
        assert headers["Connection"] == "close"
        assert (error.code, error.id) == (413, "go.micro.transport")
        assert error.detail == "request body of 5000000 bytes exceeds the 1000 byte limit"
        await asyncio.wait_for(recorder.ended.wait(), 5.0)
        assert recorder.messages == []
        # exactly at the limit is fine
        raw = await raw_exchange(listener.address, post(b"x" * 1000))
        assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    finally:
        await small.close()


async def test_oversized_chunked_body_gets_413(transport: HttpTransport) -> None:
    small = HttpTransport(max_body=1000, linger=0.5)
    try:
        listener = await small.listen("127.0.0.1:0", Recorder(reply=echo))
        chunk = b"200\r\n" + b"y" * 0x200 + b"\r\n"
        raw = await raw_exchange(
            listener.address,
            [POST + b"Transfer-Encoding: chunked\r\n\r\n", chunk, chunk, chunk, b"0\r\n\r\n"],
            pause=0.01,
        )
        status, _, error = parse_refusal(raw)
        assert status == 413
        assert error.detail == "request body exceeds the 1000 byte limit"
    finally:
        await small.close()


async def test_chunked_request_body(transport: HttpTransport) -> None:
    recorder = Recorder(reply=echo)
    listener = await transport.listen("127.0.0.1:0", recorder)
    wire = [
        POST + b"Micro-Endpoint: Say.Hello\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"5\r\nhello\r\n",
        b"6\r\n world\r\n",
        b"0\r\nX-Trailer: t\r\n\r\n",
    ]
    raw = await raw_exchange(listener.address, wire, pause=0.01)
    assert raw.startswith(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n")
    assert raw.endswith(b"\r\n\r\nhello world")
    (message,) = recorder.messages
    assert message.body == b"hello world"
    assert message.header["Micro-Endpoint"] == "Say.Hello"
    assert "Transfer-Encoding" not in message.header


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "CONNECT"])
async def test_other_methods_get_405(transport: HttpTransport, method: str) -> None:
    listener = await transport.listen("127.0.0.1:0", Recorder(reply=echo))
    target = "127.0.0.1:1" if method == "CONNECT" else "/"
    raw = await raw_exchange(
        listener.address, f"{method} {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    status, headers, error = parse_refusal(raw)
    assert status == 405
    assert headers["Allow"] == "POST"
    assert error.code == 405
    assert f"method {method} not allowed" in error.detail
    assert "POST / with Micro-Service and Micro-Endpoint" in error.detail


async def test_head_size_is_limited(transport: HttpTransport) -> None:
    small = HttpTransport(max_header=4096, linger=0.5)
    try:
        recorder = Recorder(reply=echo)
        listener = await small.listen("127.0.0.1:0", recorder)
        huge = b"X-Big: " + b"a" * 8192 + b"\r\n"
        raw = await raw_exchange(listener.address, [POST, huge[:4000], huge[4000:]], pause=0.01)
        status, _, error = parse_refusal(raw)
        assert status == 400
        assert "request head exceeds the 4096 byte limit" in error.detail
        assert recorder.messages == []
    finally:
        await small.close()


async def test_expect_100_continue(transport: HttpTransport) -> None:
    listener = await transport.listen("127.0.0.1:0", Recorder(reply=echo))
    host, port = listener.address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(POST + b"Expect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0) == (
            b"HTTP/1.1 100 Continue\r\n\r\n"
        )
        writer.write(b"body")
        writer.write_eof()
        raw = await asyncio.wait_for(reader.read(), 5.0)
    finally:
        writer.close()
        await writer.wait_closed()
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert raw.endswith(b"\r\n\r\nbody")
    assert b"Expect" not in raw


@pytest.mark.parametrize(
    ("version", "connection"),
    [("1.1", "Connection: close\r\n"), ("1.0", ""), ("1.0", "Connection: close\r\n")],
)
async def test_connection_close_request_is_the_last(
    transport: HttpTransport, version: str, connection: str
) -> None:
    recorder = Recorder(reply=echo)
    listener = await transport.listen("127.0.0.1:0", recorder)
    first = f"POST / HTTP/{version}\r\n{connection}Content-Length: 3\r\n\r\none".encode()
    # no half-close: the server must close on its own after answering
    raw = await raw_exchange(listener.address, first + post(b"two"), half_close=False)
    assert raw.count(b"HTTP/1.1 200 OK") == 1
    assert b"\r\nConnection: close\r\n" in raw
    assert raw.endswith(b"one")
    assert [m.body for m in recorder.messages] == [b"one"]


async def test_post_with_upgrade_is_served_as_http1(transport: HttpTransport) -> None:
    recorder = Recorder(reply=echo)
    listener = await transport.listen("127.0.0.1:0", recorder)
    upgrade = post(b"hello", "Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c")
    for pieces in ([upgrade + post(b"next")], [upgrade[:-3], upgrade[-3:], post(b"next")]):
        recorder.messages.clear()
        raw = await raw_exchange(listener.address, pieces, pause=0.01)
        assert raw.count(b"HTTP/1.1 200 OK") == 2, raw
        assert [m.body for m in recorder.messages] == [b"hello", b"next"]
        assert "Upgrade" not in recorder.messages[0].header


async def test_disconnect_mid_request_leaves_nothing(transport: HttpTransport) -> None:
    recorder = Recorder(reply=echo)
    listener = await transport.listen("127.0.0.1:0", recorder)
    for partial in (POST + b"Content-Length: 100\r\n\r\nonly part", POST + b"X-Half: "):
        recorder.ended.clear()
        raw = await raw_exchange(listener.address, partial)
        assert raw == b""
        await asyncio.wait_for(recorder.ended.wait(), 5.0)
    assert await listener.wait_closed(5.0)
    assert listener.connections == frozenset()
    assert listener._tasks == set()
    assert recorder.messages == []
    assert all(isinstance(e, ConnectionClosed) for e in recorder.endings)


@pytest.mark.parametrize("stalled", ["head", "body"])
async def test_a_request_too_slow_to_arrive_gets_408(stalled: str) -> None:
    """A client that starts a request and stalls is cut off; an idle kept-alive one is not."""
    transport = HttpTransport(linger=0.2, read_timeout=0.3)
    try:
        recorder = Recorder(reply=echo)
        listener = await transport.listen("127.0.0.1:0", recorder)
        host, port = listener.address.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(post(b"first"))  # answered, then the connection idles past the timeout
        await asyncio.sleep(0.5)
        partial = POST + b"X-Half: " if stalled == "head" else post(b"0123456789")[:-4]
        for byte in partial[:-1]:  # trickled: each byte in time, the whole request not
            writer.write(bytes([byte]))
            await asyncio.sleep(0.002)
        writer.write(partial[-1:])
        async with asyncio.timeout(5):
            raw = await reader.read()
        writer.close()
        first, _, refusal = raw.partition(b"first")
        assert first.startswith(b"HTTP/1.1 200 OK\r\n")
        status, headers, error = parse_refusal(refusal)
        assert (status, headers["Connection"], error.code) == (408, "close", 408)
        assert "within 0.3s" in error.detail
        await asyncio.wait_for(recorder.ended.wait(), 5.0)
        assert [m.body for m in recorder.messages] == [b"first"]
        assert isinstance(recorder.endings[0], ConnectionClosed)
        assert await listener.wait_closed(5.0)
        await assert_still_serving(listener.address)
    finally:
        await transport.close()


async def test_pipelined_requests_pause_reading(transport: HttpTransport) -> None:
    gate = asyncio.Event()
    sockets: list[HttpServerSocket] = []

    async def lazy(sock: Socket) -> None:
        assert isinstance(sock, HttpServerSocket)
        sockets.append(sock)
        await gate.wait()
        while True:
            message = await sock.recv()
            await sock.send(message)

    listener = await transport.listen("127.0.0.1:0", lazy)
    count = 200
    batches = [b"".join(post(b"%d" % i) for i in range(n, n + 10)) for n in range(0, count, 10)]
    exchange = asyncio.create_task(raw_exchange(listener.address, batches, pause=0.01))
    await eventually(lambda: bool(sockets) and sockets[0]._read_paused, timeout=5)
    assert len(sockets[0]._queue) < count
    gate.set()
    raw = await asyncio.wait_for(exchange, 5.0)
    assert raw.count(b"HTTP/1.1 200 OK") == count
    assert raw.endswith(b"\r\n\r\n%d" % (count - 1))


async def test_send_waits_for_a_slow_reader(transport: HttpTransport) -> None:
    blocked = asyncio.Event()
    sent: list[int] = []
    body = b"z" * (1 << 20)

    async def flood(sock: Socket) -> None:
        await sock.recv()
        for i in range(64):
            try:
                await asyncio.wait_for(sock.send(Message({}, body)), 0.2)
            except TimeoutError:
                blocked.set()
                return
            sent.append(i)
            assert isinstance(sock, HttpServerSocket)
            assert sock.transport is not None
            assert sock.transport.get_write_buffer_size() <= 2 * len(body) + 65536

    listener = await transport.listen("127.0.0.1:0", flood)
    host, port = listener.address.rsplit(":", 1)
    _, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(post(b"go"))
        await asyncio.wait_for(blocked.wait(), 10.0)  # the client reads nothing
        assert len(sent) < 64
    finally:
        writer.close()
        await writer.wait_closed()


async def test_handler_exception_is_logged_and_closes(
    transport: HttpTransport, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(sock: Socket) -> None:
        await sock.recv()
        raise ValueError("boom")

    listener = await transport.listen("127.0.0.1:0", broken)
    assert await raw_exchange(listener.address, post(b"x"), half_close=False) == b""
    assert await listener.wait_closed(5.0)
    assert "boom" in caplog.text
    await assert_still_serving_with(transport)


async def assert_still_serving_with(transport: HttpTransport) -> None:
    listener = await transport.listen("127.0.0.1:0", Recorder(reply=echo))
    await assert_still_serving(listener.address)


async def test_curl_can_call(transport: HttpTransport) -> None:
    def reply(message: Message) -> Message:
        name = json.loads(message.body)["name"]
        header = {
            "Content-Type": "application/json",
            "Micro-Id": message.header.get("Micro-Id", ""),
        }
        return Message(header, json.dumps({"msg": f"Hello {name}"}).encode())

    recorder = Recorder(reply=reply)
    listener = await transport.listen("127.0.0.1:0", recorder)
    url = f"http://{listener.address}/"
    headers = {
        "Content-Type": "application/json",
        "Micro-Service": "greeter",
        "Micro-Endpoint": "Greeter.SayHello",
    }
    big = json.dumps({"name": "J" * 3000})  # over 1 KiB: curl sends Expect: 100-continue
    if shutil.which("curl"):
        outputs = await asyncio.wait_for(curl(url, headers, ['{"name": "John"}', big]), 10.0)
    else:
        outputs = await asyncio.to_thread(
            http_client, listener.address, headers, ['{"name": "John"}', big]
        )
    assert outputs[0] == {"msg": "Hello John"}
    assert outputs[1] == {"msg": "Hello " + "J" * 3000}
    first = recorder.messages[0]
    assert first.header["Micro-Service"] == "greeter"
    assert first.header["Micro-Endpoint"] == "Greeter.SayHello"
    assert first.body == b'{"name": "John"}'


async def curl(url: str, headers: dict[str, str], bodies: list[str]) -> list[object]:
    outputs = []
    for body in bodies:
        args = ["curl", "-sS", "--fail", "--max-time", "5", url, "--data-binary", body]
        for name, value in headers.items():
            args += ["-H", f"{name}: {value}"]
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0, err
        outputs.append(json.loads(out))
    return outputs


def http_client(address: str, headers: dict[str, str], bodies: list[str]) -> list[object]:
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        outputs = []
        for body in bodies:
            conn.request("POST", "/", body=body, headers=headers)
            response = conn.getresponse()
            assert response.status == 200
            outputs.append(json.loads(response.read()))
        return outputs
    finally:
        conn.close()


async def test_http_client_keeps_the_connection(transport: HttpTransport) -> None:
    listener = await transport.listen("127.0.0.1:0", Recorder(reply=echo))
    headers = {"Content-Type": "application/json", "Micro-Endpoint": "Say.Hello"}
    out = await asyncio.to_thread(http_client, listener.address, headers, ['{"a": 1}', '{"b": 2}'])
    assert out == [{"a": 1}, {"b": 2}]


async def test_go_request_answered_on_the_same_connection(transport: HttpTransport) -> None:
    listener = await transport.listen("127.0.0.1:0", Recorder(reply=echo))
    raw = await raw_exchange(listener.address, REQUEST_5_1 * 3)
    assert raw.count(b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n") == 3


# --------------------------------------------------------------------------- listener


async def test_listener_close_idle_wait_and_abort(transport: HttpTransport) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def handler(sock: Socket) -> None:
        message = await sock.recv()
        if message.body == b"busy":
            started.set()
            await release.wait()
        await sock.send(message)
        await sock.recv()

    listener = await transport.listen("127.0.0.1:0", handler)
    assert isinstance(listener, HttpListener)
    idle = await transport.dial(listener.address)
    busy = await transport.dial(listener.address)
    await idle.send(Message({}, b"idle"))
    await idle.recv()
    await busy.send(Message({}, b"busy"))
    await asyncio.wait_for(started.wait(), 5.0)
    assert len(listener.connections) == 2

    assert listener.close_idle() == 1
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(idle.recv(), 5.0)
    assert not await listener.wait_closed(0.05)
    release.set()
    assert (await busy.recv()).body == b"busy"
    await listener.abort()
    assert listener.connections == frozenset()
    assert await listener.wait_closed(0)
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(busy.recv(), 5.0)


async def test_listen_on_a_used_port(transport: HttpTransport) -> None:
    listener = await transport.listen("127.0.0.1:0", Recorder())
    with pytest.raises(ConnectError, match=r"listen 127\.0\.0\.1:"):
        await transport.listen(listener.address, Recorder())
    with pytest.raises(ConnectError, match="invalid address"):
        await transport.listen("127.0.0.1", Recorder())


async def test_transport_close_closes_everything() -> None:
    transport = HttpTransport()
    recorder = Recorder(reply=echo)
    listener = await transport.listen("127.0.0.1:0", recorder)
    sock = await transport.dial(listener.address)
    await sock.send(Message({}, b"x"))
    await sock.recv()
    await transport.close()
    assert sock.closed
    assert listener.connections == frozenset()
    assert transport._dialed == set()
    assert transport._listeners == set()
    assert isinstance(recorder.endings[0], ConnectionClosed)
    with pytest.raises(ConnectError):
        await HttpTransport().dial(listener.address, timeout=1)
    await transport.close()  # twice is fine
