"""go-micro's legacy envelopes, sans-IO: json-rpc and proto-rpc pack/unpack."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from micro.codec import Envelope, EnvelopeCodec, lookup
from micro.codec.jsonrpc import JsonRpcCodec
from micro.codec.protorpc import ProtoRpcCodec, read_header, write_header
from micro.errors import CodecError

JSON = JsonRpcCodec()
PROTO = ProtoRpcCodec()
# the request of wire sample 5.5 (4), as a Python client sent it to a go-micro v1.0 server
SAMPLE_REQUEST = b'{"method": "Say.Hello", "params": [{"name": "Legacy"}], "id": 7}'
SAMPLE_REPLY = b'{"id":"7","result":{"msg":"Hello Legacy"},"error":null}\n'


def test_lookup_finds_both() -> None:
    assert isinstance(lookup("application/json-rpc"), JsonRpcCodec)
    assert isinstance(lookup("application/proto-rpc; charset=x"), ProtoRpcCodec)


def test_json_rpc_sample_request_and_reply() -> None:
    envelope = JSON.unpack(SAMPLE_REQUEST, response=False)
    assert envelope == Envelope("Say.Hello", "7", b'{"name": "Legacy"}')
    reply = envelope._replace(body=b'{"msg":"Hello Legacy"}')
    assert JSON.pack(reply, response=True) == SAMPLE_REPLY


def test_json_rpc_error_reply_has_null_result() -> None:
    packed = JSON.pack(Envelope("Say.Hello", "3", b"", "boom"), response=True)
    assert json.loads(packed) == {"id": "3", "result": None, "error": "boom"}
    assert JSON.unpack(packed, response=True) == Envelope("", "3", b"", "boom")


def test_json_rpc_request_as_go_micro_clients_write_it() -> None:
    packed = JSON.pack(Envelope("Say.Hello", "12", b'{"name":"x"}'), response=False)
    assert json.loads(packed) == {"method": "Say.Hello", "params": [{"name": "x"}], "id": 12}


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"params": [{}], "id": 1}',
        b'{"method": "", "id": 1}',
        b'{"method": 5, "id": 1}',
        b'{"method": "A.B", "params": [{}, {}], "id": 1}',
        b'{"method": "A.B", "params": {"a": 1}, "id": 1}',
    ],
)
def test_json_rpc_malformed_requests_are_codec_errors(body: bytes) -> None:
    with pytest.raises(CodecError):
        JSON.unpack(body, response=False)


def test_json_rpc_events_are_bare_json() -> None:
    assert JSON.encode({"a": 1}) == b'{"a":1}'
    assert JSON.decode(b'{"a":1}') == {"a": 1}


def netstring(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def test_proto_rpc_header_matches_protobufs_encoding() -> None:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    # go-micro's envelope.proto, built here to check the hand-written encoding against
    file = descriptor_pb2.FileDescriptorProto(name="env.proto", package="protorpc")
    message = file.message_type.add(name="Response")
    message.field.add(name="service_method", number=1, type=9, label=1)
    message.field.add(name="seq", number=2, type=6, label=1)
    message.field.add(name="error", number=3, type=9, label=1)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("protorpc.Response"))
    want = cls(service_method="Say.Hello", seq=2**40 + 3, error="bad")
    assert write_header("Say.Hello", 2**40 + 3, "bad") == want.SerializeToString()
    assert read_header(want.SerializeToString()) == ("Say.Hello", 2**40 + 3, "bad")


def test_proto_rpc_request_layout() -> None:
    packed = PROTO.pack(Envelope("Say.Hello", "5", b"\n\x04John"), response=False)
    assert packed == netstring(write_header("Say.Hello", 5, None)) + netstring(b"\n\x04John")
    assert PROTO.unpack(packed, response=False) == Envelope("Say.Hello", "5", b"\n\x04John")


def test_proto_rpc_error_reply_has_an_empty_body() -> None:
    packed = PROTO.pack(Envelope("Say.Hello", "5", b"ignored", "boom"), response=True)
    assert packed.endswith(netstring(b""))
    assert PROTO.unpack(packed, response=True) == Envelope("Say.Hello", "5", b"", "boom")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x00\x00",
        b"\x00\x00\x00\x10abc",
        netstring(write_header("A.B", 1, None)),  # no body netstring
        netstring(write_header("A.B", 1, None)) + netstring(b"") + b"x",  # trailing bytes
        netstring(b"\xff\xff\xff") + netstring(b""),  # a bad varint
        netstring(b"\x0a\x05ab") + netstring(b""),  # a truncated string
        netstring(b"\x0a\x02\xff\xfe") + netstring(b""),  # not UTF-8
        netstring(b"\x11\x01") + netstring(b""),  # a truncated fixed64
        netstring(b"\x0b") + netstring(b""),  # wire type 3 (groups)
        netstring(write_header("", 1, None)) + netstring(b""),  # no method
    ],
)
def test_proto_rpc_malformed_requests_are_codec_errors(body: bytes) -> None:
    with pytest.raises(CodecError):
        PROTO.unpack(body, response=False)


methods = st.text(min_size=1, max_size=40)
ids = st.integers(min_value=0, max_value=2**64 - 1).map(str)


@given(methods, ids, st.binary(max_size=200), st.text(max_size=40))
@pytest.mark.parametrize("codec", [PROTO], ids=["proto-rpc"])
def test_proto_rpc_round_trips(
    codec: EnvelopeCodec, method: str, seq: str, body: bytes, error: str
) -> None:
    request = Envelope(method, seq, body)
    assert codec.unpack(codec.pack(request, response=False), response=False) == request
    reply = Envelope(method, seq, b"" if error else body, error)
    assert codec.unpack(codec.pack(reply, response=True), response=True) == reply


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(methods, st.integers(min_value=0, max_value=2**53).map(str), json_values)
def test_json_rpc_round_trips(method: str, seq: str, value: object) -> None:
    body = json.dumps(value).encode()
    request = JSON.unpack(JSON.pack(Envelope(method, seq, body), response=False), response=False)
    assert (request.method, request.id) == (method, seq)
    assert json.loads(request.body or b"null") == value
    reply = JSON.unpack(JSON.pack(Envelope(method, seq, body), response=True), response=True)
    assert reply.id == seq
    assert json.loads(reply.body or b"null") == value


@given(st.binary(max_size=300), st.booleans())
@pytest.mark.parametrize("codec", [JSON, PROTO], ids=["json-rpc", "proto-rpc"])
def test_any_bytes_unpack_or_fail_with_a_codec_error(
    codec: EnvelopeCodec, data: bytes, response: bool
) -> None:
    try:
        envelope = codec.unpack(data, response=response)
    except CodecError:
        return
    assert isinstance(envelope, Envelope)
    assert isinstance(envelope.method, str)
