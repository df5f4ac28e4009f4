"""Content types: an endpoint asked in a codec that cannot carry its types answers 400."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import msgspec
import pytest

from micro.transport import Message, Transport
from tests.server.conftest import MakeServer, Peer, body_of, error_of, request

PROTOBUF = ("application/protobuf", "application/x-protobuf")
NOT_STRUCTS = (*PROTOBUF, "application/grpc+proto", "application/octet-stream")


def asked(endpoint: str, content_type: str, body: bytes = b"") -> Message:
    return request(endpoint, raw=body, Content_Type=content_type)


def assert_names_what_it_speaks(error: dict[str, Any], endpoint: str) -> None:
    assert error["code"] == 400
    assert endpoint in error["detail"]
    assert "application/json" in error["detail"]
    assert "application/msgpack" in error["detail"]


@pytest.mark.parametrize("content_type", NOT_STRUCTS)
@pytest.mark.parametrize("endpoint", ["Debug.Health", "Debug.Stats"])
async def test_debug_endpoints_answer_400_naming_json_and_msgpack(
    peer: Peer, endpoint: str, content_type: str
) -> None:
    reply = await peer.call(asked(endpoint, content_type))
    assert_names_what_it_speaks(error_of(reply), endpoint)
    assert body_of(await peer.call(request(endpoint)))  # the connection still serves


@pytest.mark.parametrize("content_type", NOT_STRUCTS)
@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        ("Say.Whoami", b""),  # no request, answers a dict
        ("Say.Raw", b"\n\x04John"),  # dict in, dict out
        ("Say.Hello", b"\n\x04John"),  # Structs
        ("Say.Count", b"\n\x04John"),  # a server stream of Structs
        ("Say.Stream", b""),  # a bidirectional stream of Structs
    ],
)
async def test_struct_and_dict_endpoints_answer_400_before_running(
    peer: Peer, endpoint: str, body: bytes, content_type: str
) -> None:
    error = error_of(await peer.call(asked(endpoint, content_type, body)))
    assert_names_what_it_speaks(error, endpoint)


def proto_greeter(pb2: ModuleType) -> object:
    class Greeter:
        Request = pb2.Request  # class attributes resolve the string annotations
        Response = pb2.Response

        async def hello(self, req: Request) -> Response:  # type: ignore[valid-type]
            return pb2.Response(msg=f"Hello {req.name}")  # type: ignore[no-any-return,attr-defined]

        async def empty(self) -> Response:  # type: ignore[valid-type]
            return pb2.Response(msg="empty")  # type: ignore[no-any-return]

        async def raw(self, req: bytes) -> bytes:
            return req[::-1]

    return Greeter()


@pytest.mark.parametrize("content_type", PROTOBUF)
async def test_protobuf_typed_endpoints_still_speak_protobuf_and_json(
    make_server: MakeServer, transport: Transport, greeter_pb2: ModuleType, content_type: str
) -> None:
    server = await make_server(proto_greeter(greeter_pb2))
    peer = Peer(await transport.dial(server.address))
    try:
        reply = await peer.call(asked("Greeter.Hello", content_type, b"\n\x04John"))
        assert greeter_pb2.Response.FromString(reply.body).msg == "Hello John"
        reply = await peer.call(asked("Greeter.Empty", content_type))
        assert greeter_pb2.Response.FromString(reply.body).msg == "empty"
        reply = await peer.call(asked("Greeter.Raw", content_type, b"abc"))
        assert reply.body == b"cba"
        assert body_of(await peer.call(request("Greeter.Hello", {"name": "J"}))) == {
            "msg": "Hello J"
        }
        error = error_of(await peer.call(asked("Greeter.Hello", "application/octet-stream")))
        assert error["code"] == 400
        assert content_type in error["detail"]
    finally:
        await peer.close()


async def test_bytes_endpoint_speaks_octet_stream(
    make_server: MakeServer, transport: Transport, greeter_pb2: ModuleType
) -> None:
    server = await make_server(proto_greeter(greeter_pb2))
    peer = Peer(await transport.dial(server.address))
    try:
        reply = await peer.call(asked("Greeter.Raw", "application/octet-stream", b"abc"))
        assert reply.body == b"cba"
        body = msgspec.json.encode(b"abc")  # bytes travel as base64 in JSON
        reply = await peer.call(asked("Greeter.Raw", "application/json", body))
        assert msgspec.json.decode(reply.body, type=bytes) == b"cba"
    finally:
        await peer.close()
