"""go-micro's legacy json-rpc and proto-rpc requests over the HTTP transport, end to end."""

from __future__ import annotations

import json
import struct
from collections.abc import AsyncIterator
from types import ModuleType

import pytest

from micro import errors
from micro.client.rpc import RpcClient
from micro.codec.protorpc import write_header
from micro.registry.memory import MemoryRegistry
from micro.server.rpc import RpcServer
from micro.transport.http import HttpTransport
from tests.server.handlers import HelloRequest, HelloResponse, Say
from tests.server.test_content_types import proto_greeter
from tests.server.test_wire import SERVICE, connect, read_response

# wire sample 5.5 (4): a hand-written client, no Micro-* headers, the method in the envelope
SAMPLE_BODY = b'{"method": "Say.Hello", "params": [{"name": "Legacy"}], "id": 7}'
SAMPLE_REQUEST = (
    b"POST / HTTP/1.1\r\n"
    b"Host: 127.0.0.1:50051\r\n"
    b"Accept-Encoding: identity\r\n"
    b"Content-Type: application/json-rpc\r\n"
    b"Content-Length: %d\r\n"
    b"\r\n" % len(SAMPLE_BODY)
) + SAMPLE_BODY
SAMPLE_REPLY = b'{"id":"7","result":{"msg":"Hello Legacy"},"error":null}\n'


def post(content_type: str, body: bytes) -> bytes:
    head = f"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


@pytest.fixture
async def server(greeter_pb2: ModuleType) -> AsyncIterator[RpcServer]:
    transport = HttpTransport()
    server = RpcServer(
        name=SERVICE,
        address="127.0.0.1:0",
        transport=transport,
        registry=MemoryRegistry(),
        register_interval=0,
    )
    server.handle(Say())
    server.handle(proto_greeter(greeter_pb2))
    await server.start()
    yield server
    await server.stop(grace=1)
    await transport.close()


@pytest.fixture
async def client() -> AsyncIterator[RpcClient]:
    async with RpcClient(transport=HttpTransport(), registry=MemoryRegistry()) as made:
        yield made


async def exchange(server: RpcServer, *requests: bytes) -> list[tuple[dict[str, str], bytes]]:
    """Send raw HTTP requests on one connection; the replies' headers and bodies."""
    reader, writer = await connect(server)
    try:
        replies = []
        for raw in requests:
            writer.write(raw)
            reply = await read_response(reader)
            assert reply.status == b"HTTP/1.1 200 OK"
            replies.append((reply.headers, reply.body))
        return replies
    finally:
        writer.close()
        await writer.wait_closed()


async def test_the_captured_json_rpc_request_is_answered_as_go_micro_does(
    server: RpcServer,
) -> None:
    [(headers, body)] = await exchange(server, SAMPLE_REQUEST)
    assert body == SAMPLE_REPLY
    assert headers["content-type"] == "application/json-rpc"
    assert headers["micro-id"] == "7"
    assert "micro-error" not in headers


async def test_json_rpc_handler_error_in_the_envelope_and_the_header(server: RpcServer) -> None:
    request = b'{"method": "Say.Fail", "params": [{"name": "x"}], "id": 2}'
    [(headers, body)] = await exchange(server, post("application/json-rpc", request))
    reply = json.loads(body)
    assert (reply["id"], reply["result"]) == ("2", None)
    assert json.loads(reply["error"])["code"] == 400
    assert json.loads(headers["micro-error"]) == json.loads(reply["error"])


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json-rpc", b"{not json"),
        ("application/json-rpc", b'{"params": [], "id": 1}'),
        ("application/json-rpc", b'{"method": "Say.Hello", "params": [{"name": 5}], "id": 1}'),
        ("application/json-rpc", b'{"method": "Say.Nope", "params": [{}], "id": 1}'),
        ("application/json-rpc", b'{"method": "Say.Count", "params": [{}], "id": 1}'),
        ("application/proto-rpc", b"\x00\x00\x00\x09abc"),
        ("application/proto-rpc", b""),
    ],
)
async def test_malformed_envelopes_get_a_4xx_and_the_connection_serves_on(
    server: RpcServer, content_type: str, body: bytes
) -> None:
    replies = await exchange(server, post(content_type, body), SAMPLE_REQUEST)
    headers, _ = replies[0]
    assert json.loads(headers["micro-error"])["code"] in (400, 404)
    assert replies[1][1] == SAMPLE_REPLY  # the next request on the connection is served


async def test_proto_rpc_raw_request(server: RpcServer, greeter_pb2: ModuleType) -> None:
    header = write_header("Greeter.Hello", 9, None)
    payload = greeter_pb2.Request(name="Pb").SerializeToString()
    body = struct.pack(">I", len(header)) + header + struct.pack(">I", len(payload)) + payload
    [(headers, reply)] = await exchange(server, post("application/proto-rpc", body))
    assert headers["content-type"] == "application/proto-rpc"
    size = struct.unpack(">I", reply[:4])[0]
    assert reply[4 : 4 + size] == write_header("Greeter.Hello", 9, "")
    rest = reply[4 + size :]
    assert greeter_pb2.Response.FromString(rest[4:]).msg == "Hello Pb"


async def test_client_round_trip_json_rpc(server: RpcServer, client: RpcClient) -> None:
    got = await client.call(
        SERVICE,
        "Say.Hello",
        HelloRequest(name="Rt"),
        response_type=HelloResponse,
        address=server.address,
        content_type="application/json-rpc",
    )
    assert got == HelloResponse(msg="Hello Rt")
    with pytest.raises(errors.BadRequest):
        await client.call(
            SERVICE,
            "Say.Fail",
            HelloRequest(name="Rt"),
            address=server.address,
            content_type="application/json-rpc",
            retries=0,
        )


async def test_client_round_trip_proto_rpc(
    server: RpcServer, client: RpcClient, greeter_pb2: ModuleType
) -> None:
    got = await client.call(
        SERVICE,
        "Greeter.Hello",
        greeter_pb2.Request(name="Rt"),
        response_type=greeter_pb2.Response,
        address=server.address,
        content_type="application/proto-rpc",
    )
    assert got.msg == "Hello Rt"
    with pytest.raises(errors.BadRequest):  # a Struct cannot travel as protobuf
        await client.call(
            SERVICE,
            "Say.Hello",
            HelloRequest(name="Rt"),
            address=server.address,
            content_type="application/proto-rpc",
            retries=0,
        )


@pytest.mark.parametrize("content_type", ["application/json-rpc", "application/proto-rpc"])
async def test_client_refuses_streams_in_envelopes(client: RpcClient, content_type: str) -> None:
    with pytest.raises(errors.CodecError, match="carries no streams"):
        await client.stream(
            SERVICE, "Say.Count", {}, address="127.0.0.1:1", content_type=content_type
        )


async def test_content_type_case_and_parameters_do_not_matter(server: RpcServer) -> None:
    [(_, body)] = await exchange(server, post("Application/JSON-RPC; charset=utf-8", SAMPLE_BODY))
    assert body == SAMPLE_REPLY
