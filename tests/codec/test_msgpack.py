"""MsgpackCodec: the JSON codec's types over MessagePack."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from micro.codec.msgpack import MsgpackCodec
from micro.errors import CodecError
from tests.codec.models import Item, ItemModel, Order, OrderModel, Request

codec = MsgpackCodec()


def test_round_trip_and_size() -> None:
    order = Order(order_id=9, items=[Item("a", 1)])
    data = codec.encode(order)
    assert codec.decode(data, Order) == order
    assert codec.decode(memoryview(data), Order) == order
    assert codec.decode(bytearray(data), Order) == order
    assert len(data) < len(msgspec.json.encode(order))


def test_validation_error_names_the_path() -> None:
    data = msgspec.msgpack.encode({"orderId": 1, "items": [{"sku": "a", "qty": "x"}]})
    with pytest.raises(CodecError) as info:
        codec.decode(data, Order)
    assert info.value.detail.endswith(" - at `$.items[0].qty`")  # msgspec's words before


def test_pydantic_models() -> None:
    model = OrderModel(orderId=1, items=[ItemModel(sku="s", qty=1)])
    assert codec.decode(codec.encode(model), OrderModel) == model


@pytest.mark.parametrize("body", [b"\xc1", b"\x81", b"\xdd\xff\xff\xff\xff", b"\x91" * 100_000])
def test_malformed(body: bytes) -> None:
    with pytest.raises(CodecError, match="malformed MessagePack body"):
        codec.decode(body)


def test_empty_body_is_an_empty_map() -> None:
    assert codec.decode(b"") == {}
    with pytest.raises(CodecError) as info:
        codec.decode(b"", Request)
    assert info.value.detail.startswith("empty body: ")
    assert "`name`" in info.value.detail


def test_unencodable() -> None:
    with pytest.raises(CodecError, match="cannot encode complex as MessagePack"):
        codec.encode(1j)
    with pytest.raises(CodecError, match="cannot encode int"):
        codec.encode(2**80)


def test_lookup_by_alias() -> None:
    from micro.codec import lookup

    assert isinstance(lookup("application/x-msgpack"), MsgpackCodec)
    assert codec.decode(codec.encode([1, "a"]), Any) == [1, "a"]
