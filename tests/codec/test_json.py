"""JsonCodec: go-micro's JSON bodies, typed decoding and its error messages."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import msgspec
import pytest
from google.protobuf import api_pb2, struct_pb2, wrappers_pb2

from micro.codec.json import JsonCodec
from micro.errors import BadRequest, CodecError, MicroError
from tests.codec.models import (
    Holder,
    ItemModel,
    Order,
    OrderDC,
    OrderModel,
    OrderTD,
    Request,
    Response,
)

codec = JsonCodec()


def detail(data: bytes, tp: Any = Any) -> str:
    with pytest.raises(CodecError) as info:
        codec.decode(data, tp)
    return info.value.detail


def test_go_sample_bodies_decode() -> None:
    assert codec.decode(b'{"name":"John"}\n', Request) == Request(name="John")
    assert codec.decode(b'{"msg":"Hello John"}\n', Response) == Response(msg="Hello John")
    assert codec.decode(b'{"name":"John"}\n') == {"name": "John"}


def test_encode_is_go_compatible_json() -> None:
    assert codec.encode(Response(msg="Hello John")) == b'{"msg":"Hello John"}'
    assert codec.encode({"a": [1, None, True]}) == b'{"a":[1,null,true]}'
    assert msgspec.json.decode(codec.encode(Order(order_id=1, items=[]))) == {
        "orderId": 1,
        "items": [],
        "note": None,
        "tags": {},
        "paid": False,
        "blob": "",
        "placedAt": None,
    }


@pytest.mark.parametrize(
    ("body", "tp", "expected"),
    [
        (b'{"name":1}', Request, " - at `$.name`"),
        (b"{}", Request, "`name`"),
        (b'{"orderId":1,"items":[{"sku":"a","qty":"2"}]}', Order, "at `$.items[0].qty`"),
        (b'{"order_id":1,"items":[{"sku":"a","qty":"x"}]}', OrderDC, "at `$.items[0].qty`"),
        (b'{"order_id":1,"items":[{"sku":"a"}]}', OrderTD, "field `qty` - at `$.items[0]`"),
        (b"[1]", Request, "`object`"),
    ],
)
def test_validation_errors_name_the_json_path(body: bytes, tp: Any, expected: str) -> None:
    # the path and the field are ours to promise; the words around them are msgspec's
    assert expected in detail(body, tp)


def test_pydantic_errors_name_the_json_path() -> None:
    body = b'{"orderId":1,"items":[{"sku":"a","qty":2},{"sku":"b","qty":"x"}]}'
    assert detail(body, OrderModel).endswith("- at `$.items[1].qty`")
    nested = b'{"order":' + body + b"}"
    assert detail(nested, Holder).endswith("- at `$.order.items[1].qty`")
    missing = detail(b'{"items":[{}]}', OrderModel)
    assert missing.endswith(" - at `$.orderId` (and 2 more errors)")  # pydantic's words before


def test_pydantic_round_trip_uses_aliases() -> None:
    model = OrderModel(orderId=3, items=[ItemModel(sku="z", qty=5)])
    data = codec.encode(model)
    assert data == b'{"orderId":3,"items":[{"sku":"z","qty":5}]}'
    assert codec.decode(data, OrderModel) == model
    assert codec.decode(codec.encode(Holder(order=model)), Holder) == Holder(order=model)


def test_codec_error_is_a_bad_request_on_the_wire() -> None:
    with pytest.raises(CodecError) as info:
        codec.decode(b'{"name":1}', Request)
    err = info.value
    assert isinstance(err, BadRequest)
    assert MicroError.parse(err.to_json()) == err
    assert err.code == 400


@pytest.mark.parametrize("body", [b"{", b"nope", b'{"name":"John"} x', b"\xff", b"[" * 100_000])
def test_malformed_json(body: bytes) -> None:
    assert detail(body, Request)  # malformed, or not an object: msgspec tells which
    assert detail(body).startswith("malformed JSON body")


def test_invalid_utf8_is_a_codec_error() -> None:
    # our prefix only: what follows is msgspec's own wording, which changes between releases
    assert detail(b'{"name":"\xff"}', Request).startswith("malformed JSON body: ")


@pytest.mark.parametrize("body", [b"", b" ", b"\n", b"\r\n\t "])
def test_empty_body_is_an_empty_object(body: bytes) -> None:
    assert codec.decode(body) == {}
    assert codec.decode(body, dict) == {}
    assert detail(body, Request).startswith("empty body: ")
    assert "`name`" in detail(body, Request)
    assert detail(body, int).startswith("empty body: ")
    assert codec.decode(body, api_pb2.Api) == api_pb2.Api()


def test_unsupported_types_are_codec_errors() -> None:
    class Opaque:
        pass

    assert "Opaque" in detail(b"{}", Opaque)
    assert "not supported" in detail(b"{}", "not a type")
    with pytest.raises(CodecError, match="cannot encode Opaque as JSON"):
        codec.encode(Opaque())
    with pytest.raises(CodecError, match="cannot encode"):
        codec.encode({1j: 2})


def test_decoders_are_cached_per_type() -> None:
    fresh = JsonCodec()
    fresh.decode(b'{"name":"a"}', Request)
    first = fresh._decoders[Request]
    fresh.decode(b'{"name":"b"}', Request)
    assert fresh._decoders[Request] is first
    assert fresh.decode(b"[1]", list[int]) == [1]  # generic aliases are cached too
    assert list[int] in fresh._decoders


def test_accepts_any_buffer() -> None:
    body = b'{"name":"John"}'
    for view in (bytearray(body), memoryview(body)):
        assert codec.decode(view, Request) == Request(name="John")


def test_dataclass_and_typeddict() -> None:
    body = b'{"order_id":1,"items":[{"sku":"a","qty":2}]}'
    assert dataclasses.asdict(codec.decode(body, OrderDC))["items"] == [{"sku": "a", "qty": 2}]
    assert codec.decode(body, OrderTD) == {"order_id": 1, "items": [{"sku": "a", "qty": 2}]}


def test_protobuf_uses_proto_names_and_reads_json_names() -> None:
    api = api_pb2.Api(name="x", methods=[api_pb2.Method(name="m", request_type_url="u")])
    assert codec.encode(api) == b'{"name":"x","methods":[{"name":"m","request_type_url":"u"}]}'
    assert codec.decode(b'{"methods":[{"requestTypeUrl":"u"}]}', api_pb2.Api) == api_pb2.Api(
        methods=[api_pb2.Method(request_type_url="u")]
    )
    assert codec.decode(b'{"name":"x","unknown":1}', api_pb2.Api) == api_pb2.Api(name="x")


def test_protobuf_well_known_types_use_their_json_form() -> None:
    assert codec.encode(wrappers_pb2.Int64Value(value=5)) == b'"5"'
    assert codec.decode(b"5", wrappers_pb2.Int64Value) == wrappers_pb2.Int64Value(value=5)
    st = codec.decode(b'{"a":[1,"b"]}', struct_pb2.Struct)
    assert codec.encode(st) == b'{"a":[1.0,"b"]}'


def test_protobuf_errors_are_codec_errors() -> None:
    assert "name" in detail(b'{"name":1}', api_pb2.Api)
    assert detail(b"[1]", api_pb2.Api)


def test_importing_the_codec_loads_neither_pydantic_nor_protobuf() -> None:
    import subprocess

    code = (
        "import sys, micro.codec.json, micro.codec.msgpack, micro.codec.proto, "
        "micro.codec.bytes, micro.codec;"
        "micro.codec.lookup('application/json').decode(b'{}');"
        "print(sorted(m for m in sys.modules if m.startswith(('pydantic', 'google'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
