"""Byte level: a go-micro v1.0 client's exact requests (captured bytes) over raw TCP."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import pytest

from micro.registry.memory import MemoryRegistry
from micro.server.rpc import RpcServer
from micro.transport.http import HttpTransport
from tests.server.handlers import Say

SERVICE = "go.micro.srv.greeter"


def go_request(endpoint: str, body: bytes, request_id: str | None) -> bytes:
    """A POST exactly as go-micro v1.0's HTTP transport writes it."""
    lines = [
        "POST / HTTP/1.1",
        "Host: 127.0.0.1:50051",
        "User-Agent: Go-http-client/1.1",
        f"Content-Length: {len(body)}",
        "Accept: application/json",
        "Content-Type: application/json",
        f"Micro-Endpoint: {endpoint}",
        "Micro-From-Service: go.micro.cli.greeter",
    ]
    if request_id is not None:
        lines.append(f"Micro-Id: {request_id}")
    lines += [f"Micro-Method: {endpoint}", f"Micro-Service: {SERVICE}", "Timeout: 5000000000"]
    lines.append(f"X-Micro-Endpoint: {endpoint}")
    if request_id is not None:
        lines.append(f"X-Micro-Id: {request_id}")
    lines += [f"X-Micro-Method: {endpoint}", f"X-Micro-Service: {SERVICE}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


SAMPLE_5_1 = (
    b"POST / HTTP/1.1\r\n"
    b"Host: 127.0.0.1:50051\r\n"
    b"User-Agent: Go-http-client/1.1\r\n"
    b"Content-Length: 16\r\n"
    b"Accept: application/json\r\n"
    b"Content-Type: application/json\r\n"
    b"Micro-Endpoint: Say.Hello\r\n"
    b"Micro-From-Service: go.micro.cli.greeter\r\n"
    b"Micro-Id: 0\r\n"
    b"Micro-Method: Say.Hello\r\n"
    b"Micro-Service: go.micro.srv.greeter\r\n"
    b"Timeout: 5000000000\r\n"
    b"X-Micro-Endpoint: Say.Hello\r\n"
    b"X-Micro-Id: 0\r\n"
    b"X-Micro-Method: Say.Hello\r\n"
    b"X-Micro-Service: go.micro.srv.greeter\r\n"
    b"\r\n"
    b'{"name":"John"}\n'
)


class Response:
    def __init__(self, status: bytes, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


async def read_response(reader: asyncio.StreamReader) -> Response:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status, *lines = head[:-4].split(b"\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers["content-length"]))
    return Response(status, headers, body)


@pytest.fixture
async def go_server() -> AsyncIterator[RpcServer]:
    transport = HttpTransport()
    server = RpcServer(
        name=SERVICE,
        address="127.0.0.1:0",
        transport=transport,
        registry=MemoryRegistry(),
        register_interval=0,
    )
    server.handle(Say())
    await server.start()
    yield server
    await server.stop(grace=1)
    await transport.close()


async def connect(
    server: RpcServer,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, _, port = server.address.rpartition(":")
    return await asyncio.open_connection(host, int(port))


def test_the_sample_bytes_are_what_go_request_builds() -> None:
    assert go_request("Say.Hello", b'{"name":"John"}\n', "0") == SAMPLE_5_1


async def test_go_v1_unary_then_error_on_one_connection(go_server: RpcServer) -> None:
    reader, writer = await connect(go_server)
    try:
        writer.write(SAMPLE_5_1)
        hello = await read_response(reader)
        assert hello.status == b"HTTP/1.1 200 OK"
        assert json.loads(hello.body) == {"msg": "Hello John"}
        assert hello.headers["content-type"] == "application/json"
        assert hello.headers["micro-id"] == "0"
        assert hello.headers["micro-service"] == SERVICE
        assert hello.headers["micro-endpoint"] == hello.headers["micro-method"] == "Say.Hello"
        assert "micro-error" not in hello.headers

        writer.write(go_request("Say.Fail", b'{"name":"John"}\n', "1"))
        fail = await read_response(reader)
        assert fail.status == b"HTTP/1.1 200 OK"
        assert fail.body == b""
        assert fail.headers["micro-id"] == "1"
        expected = (
            '{"id":"go.micro.srv.greeter","code":400,'
            '"detail":"bad name \\"John\\"","status":"Bad Request"}'
        )
        assert fail.headers["micro-error"] == expected
        assert fail.headers["x-micro-error"] == expected
    finally:
        writer.close()
        await writer.wait_closed()


async def test_go_v1_bidi_stream_two_posts_back_to_back(go_server: RpcServer) -> None:
    reader, writer = await connect(go_server)
    try:
        writer.write(
            go_request("Say.Stream", b'{"name":""}\n', None)
            + go_request("Say.Stream", b'{"name":"John"}\n', None)
        )
        replies = [await read_response(reader) for _ in range(4)]
        for i, reply in enumerate(replies[:3]):
            assert reply.status == b"HTTP/1.1 200 OK"
            assert json.loads(reply.body) == {"msg": f"Hello John #{i}"}
            assert reply.headers["micro-endpoint"] == "Say.Stream"
            assert "micro-stream" not in reply.headers
        assert replies[3].headers["micro-error"] == "EOS"
        assert replies[3].body == b""
        assert await asyncio.wait_for(reader.read(), 5) == b""  # then the server closes
    finally:
        writer.close()
        await writer.wait_closed()


async def test_curl_style_request_without_service_header(go_server: RpcServer) -> None:
    reader, writer = await connect(go_server)
    try:
        body = b'{"name": "Py"}'
        writer.write(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Micro-Endpoint: Say.Hello\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        reply = await read_response(reader)
        assert json.loads(reply.body) == {"msg": "Hello Py"}
        assert reply.headers["micro-service"] == SERVICE
        assert "micro-id" not in reply.headers
    finally:
        writer.close()
        await writer.wait_closed()


def raw_request(service: bytes, endpoint: bytes, content_type: bytes) -> bytes:
    body = b'{"name":"John"}'
    return (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nContent-Type: %s\r\n"
        b"Micro-Service: %s\r\nMicro-Endpoint: %s\r\nMicro-Id: 7\r\n\r\n%s"
        % (len(body), content_type, service, endpoint, body)
    )


async def read_raw_response(reader: asyncio.StreamReader) -> tuple[bytes, dict[bytes, bytes]]:
    """A response's status line and headers, as bytes (values may be anything)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status, *lines = head[:-4].split(b"\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    await reader.readexactly(int(headers[b"content-length"]))
    return status, headers


BAD_HEADERS = {
    "Micro-Service": raw_request(b"gr\xffeter", b"Say.Hello", b"application/json"),
    "Micro-Endpoint": raw_request(SERVICE.encode(), b"Say.Hel\xfflo", b"application/json"),
    "Content-Type": raw_request(SERVICE.encode(), b"Say.Hello", b"application/js\xc3on"),
    "Content-Type parameter": raw_request(
        SERVICE.encode(), b"Say.Hello", b"application/json; charset=\xff"
    ),
}


@pytest.mark.parametrize("request_bytes", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
async def test_a_routing_header_that_is_not_utf8_gets_a_400(
    go_server: RpcServer, request_bytes: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    reader, writer = await connect(go_server)
    try:
        with caplog.at_level(logging.DEBUG):
            writer.write(request_bytes)
            status, headers = await read_raw_response(reader)
            writer.write(SAMPLE_5_1)  # the connection still serves the next request
            hello = await read_response(reader)
    finally:
        writer.close()
        await writer.wait_closed()
    assert status == b"HTTP/1.1 200 OK"  # errors travel in Micro-Error, as go-micro's do
    error = json.loads(headers[b"micro-error"])
    assert error["code"] == 400
    assert error["detail"].isprintable()
    assert "\\x" in error["detail"]  # the bad byte, shown escaped
    assert json.loads(hello.body) == {"msg": "Hello John"}
    assert headers[b"micro-id"] == b"7"
    assert all(value.isascii() for value in headers.values())  # no bad byte echoed back
    assert len(caplog.records) <= 1
    assert not any(record.exc_info for record in caplog.records)
