"""Protobuf with a go-micro v1.0 peer, byte for byte.

go-micro v1.0 sends ``application/protobuf`` (its default content type) as the raw encoding
of one message: no length prefix, no envelope, nothing for an empty message. The greeter's
messages are ``Request { string name = 1; }`` and ``Response { string msg = 1; }``; the
expected bytes are built here from the protobuf wire format (tests/client/go_v1.py), not by
the protobuf library under test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import ModuleType

import pytest

from micro.codec import lookup
from micro.codec.proto import ProtoCodec
from micro.registry.memory import MemoryRegistry
from micro.server.rpc import RpcServer
from micro.transport.http import HttpTransport
from tests.client.go_v1 import GREETER, string_field

codec = ProtoCodec()

TEXTS = ["John", "", "J\u00f6rg \u2713", "x" * 200]


def test_hand_built_bytes() -> None:
    # key 0x0a = field 1, wire type 2 (length-delimited); 200 = varint c8 01
    assert string_field(1, "John") == b"\n\x04John"
    assert string_field(1, "Hello John") == b"\n\nHello John"
    assert string_field(1, "") == b""
    assert string_field(1, "x" * 200) == b"\n\xc8\x01" + b"x" * 200


@pytest.mark.parametrize("text", TEXTS, ids=["ascii", "empty", "utf-8", "long"])
def test_greeter_messages_byte_for_byte(greeter_pb2: ModuleType, text: str) -> None:
    wire = string_field(1, text)
    assert codec.encode(greeter_pb2.Request(name=text)) == wire
    assert codec.encode(greeter_pb2.Response(msg=text)) == wire
    assert codec.decode(wire, greeter_pb2.Request) == greeter_pb2.Request(name=text)
    assert codec.decode(wire, greeter_pb2.Response) == greeter_pb2.Response(msg=text)


def test_go_content_type_names_pick_the_raw_codec() -> None:
    assert isinstance(lookup("application/protobuf"), ProtoCodec)
    assert isinstance(lookup("application/x-protobuf"), ProtoCodec)


# --------------------------------------------------------------------------- server side


def go_request(body: bytes) -> bytes:
    """A go-micro v1.0 client's unary request in protobuf (the captured JSON request's
    headers, with its content type)."""
    head = [
        "POST / HTTP/1.1",
        "Host: 127.0.0.1:50051",
        "User-Agent: Go-http-client/1.1",
        f"Content-Length: {len(body)}",
        "Accept: application/protobuf",
        "Content-Type: application/protobuf",
        "Micro-Endpoint: Say.Hello",
        "Micro-From-Service: go.micro.cli.greeter",
        "Micro-Id: 0",
        "Micro-Method: Say.Hello",
        f"Micro-Service: {GREETER}",
        "Timeout: 5000000000",
        "X-Micro-Endpoint: Say.Hello",
        "X-Micro-Id: 0",
        "X-Micro-Method: Say.Hello",
        f"X-Micro-Service: {GREETER}",
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def proto_say(pb2: ModuleType) -> object:
    class Say:
        Request = pb2.Request  # class attributes resolve the string annotations
        Response = pb2.Response

        async def hello(self, req: Request) -> Response:  # type: ignore[valid-type]
            return pb2.Response(msg=f"Hello {req.name}")  # type: ignore[no-any-return,attr-defined]

    return Say()


@pytest.fixture
async def server(greeter_pb2: ModuleType) -> AsyncIterator[RpcServer]:
    transport = HttpTransport()
    rpc = RpcServer(
        name=GREETER, address="127.0.0.1:0", transport=transport, registry=MemoryRegistry()
    )
    rpc.handle(proto_say(greeter_pb2))
    await rpc.start()
    yield rpc
    await rpc.stop(grace=1.0)
    await transport.close()


async def exchange(address: str, data: bytes) -> tuple[dict[str, str], bytes]:
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
        status, *lines = head.decode().split("\r\n")
        assert status == "HTTP/1.1 200 OK"
        header = dict(line.split(": ", 1) for line in lines if line)
        body = await reader.readexactly(int(header["Content-Length"]))
    finally:
        writer.close()
    return header, body


@pytest.mark.parametrize("name", ["John", ""], ids=["john", "empty-request"])
async def test_a_go_client_request_reaches_a_protobuf_typed_handler(
    server: RpcServer, name: str
) -> None:
    header, body = await exchange(server.address, go_request(string_field(1, name)))
    assert "Micro-Error" not in header
    assert header["Content-Type"] == "application/protobuf"
    assert body == string_field(1, f"Hello {name}")
