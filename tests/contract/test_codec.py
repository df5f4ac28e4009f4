"""The codec contract (micro.testing.codec.check_codec) over every built-in codec."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import api_pb2, struct_pb2, wrappers_pb2

from micro.codec import Buffer, Codec, lookup
from micro.codec.bytes import BytesCodec
from micro.codec.json import JsonCodec
from micro.codec.msgpack import MsgpackCodec
from micro.codec.proto import ProtoCodec
from micro.testing.codec import check_codec
from tests.codec.models import (
    Item,
    ItemDC,
    ItemModel,
    Order,
    OrderDC,
    OrderModel,
    OrderTD,
    Request,
)

ORDER = Order(order_id=7, items=[Item("a", 1, 2.5), Item("b", 2)], note="hi", tags={"k": "v"})
API = api_pb2.Api(
    name="greeter",
    methods=[api_pb2.Method(name="Hello", request_type_url="t/Request")],
    syntax=api_pb2.Api.DESCRIPTOR.fields_by_name["syntax"].enum_type.values[1].number,
)

STRUCTURED: list[tuple[Any, Any]] = [
    (Request(name="John"), Request),
    (ORDER, Order),
    (OrderDC(order_id=1, items=[ItemDC("x", 3)]), OrderDC),
    (OrderTD(order_id=2, items=[{"sku": "y", "qty": 4}]), OrderTD),
    (OrderModel(orderId=3, items=[ItemModel(sku="z", qty=5)]), OrderModel),
    ({"name": "John", "n": [1, 2.5, None, True]}, dict),
    ({"name": "John"}, Any),
    ([1, 2, 3], list[int]),
    ("text", str),
    (42, int),
]
SAMPLES: dict[str, list[tuple[Any, Any]]] = {
    "json": [
        *STRUCTURED,
        (API, api_pb2.Api),
        (wrappers_pb2.StringValue(value="w"), wrappers_pb2.StringValue),
    ],
    "msgpack": [*STRUCTURED, (API, api_pb2.Api)],
    "proto": [
        (API, api_pb2.Api),
        (struct_pb2.Struct(fields={"a": struct_pb2.Value(number_value=1.5)}), struct_pb2.Struct),
        (wrappers_pb2.Int64Value(value=-(2**40)), wrappers_pb2.Int64Value),
        (b"\x0a\x02hi", bytes),
    ],
    "bytes": [(b"", bytes), (b"\x00\xffbody", bytes), (bytearray(b"ba"), bytearray), ("é", str)],
}
CODECS: dict[str, Codec] = {
    "json": JsonCodec(),
    "msgpack": MsgpackCodec(),
    "proto": ProtoCodec(),
    "bytes": BytesCodec(),
}


@pytest.mark.parametrize("name", sorted(CODECS))
def test_contract(name: str) -> None:
    check_codec(CODECS[name], SAMPLES[name])


@pytest.mark.parametrize("name", sorted(CODECS))
def test_registered_codec_passes_too(name: str) -> None:
    codec = lookup(CODECS[name].content_type)
    assert type(codec) is type(CODECS[name])
    check_codec(codec, SAMPLES[name], fuzz=20)


def test_contract_catches_a_broken_codec() -> None:
    class Leaky(JsonCodec):
        def decode(self, data: Buffer, type: Any = Any) -> Any:
            if data[:1] == b"\xff":
                raise ValueError("raw exception")
            return super().decode(data, type)

    with pytest.raises(AssertionError, match="raised ValueError"):
        check_codec(Leaky(), [(1, int)], fuzz=0)


def test_contract_catches_a_lossy_codec() -> None:
    class Lossy(JsonCodec):
        def decode(self, data: Buffer, type: Any = Any) -> Any:
            return None

    with pytest.raises(AssertionError, match="round trip"):
        check_codec(Lossy(), [(1, int)], fuzz=0)
