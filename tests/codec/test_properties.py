"""Property tests: decode(encode(x), T) == x, and fuzzed bodies only ever raise CodecError."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, TypedDict

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from micro.codec import Codec
from micro.codec.bytes import BytesCodec
from micro.codec.json import JsonCodec
from micro.codec.msgpack import MsgpackCodec
from micro.codec.proto import ProtoCodec
from micro.errors import CodecError
from tests.codec.models import Item, ItemDC, Order, OrderDC, OrderTD, Request

CODECS = [JsonCodec(), MsgpackCodec()]
ALL_CODECS: list[Codec] = [*CODECS, ProtoCodec(), BytesCodec()]
ids = [c.name for c in CODECS]

ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
floats = st.floats(allow_nan=False, allow_infinity=False)
texts = st.text(max_size=40)
times = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30))


class Scalars(msgspec.Struct):
    s: str
    i: int
    f: float
    b: bool
    raw: bytes
    maybe: int | None = None


@dataclasses.dataclass
class ScalarsDC:
    s: str
    i: int
    f: float
    b: bool
    nested: list[ItemDC]


class ScalarsTD(TypedDict):
    s: str
    i: int
    f: float
    m: dict[str, list[int]]


items = st.builds(Item, sku=texts, qty=ints, price=floats)
orders = st.builds(
    Order,
    order_id=ints,
    items=st.lists(items, max_size=4),
    note=st.none() | texts,
    tags=st.dictionaries(texts, texts, max_size=4),
    paid=st.booleans(),
    blob=st.binary(max_size=32),
    placed_at=st.none() | times,
)
scalars = st.builds(
    Scalars, s=texts, i=ints, f=floats, b=st.booleans(), raw=st.binary(), maybe=st.none() | ints
)
items_dc = st.builds(ItemDC, sku=texts, qty=ints)
scalars_dc = st.builds(
    ScalarsDC, s=texts, i=ints, f=floats, b=st.booleans(), nested=st.lists(items_dc, max_size=3)
)
scalars_td = st.fixed_dictionaries(
    {"s": texts, "i": ints, "f": floats, "m": st.dictionaries(texts, st.lists(ints, max_size=3))}
)
orders_dc = st.builds(OrderDC, order_id=ints, items=st.lists(items_dc, max_size=3))
orders_td = st.fixed_dictionaries(
    {
        "order_id": ints,
        "items": st.lists(st.fixed_dictionaries({"sku": texts, "qty": ints}), max_size=3),
    }
)
json_values = st.recursive(
    st.none() | st.booleans() | ints | floats | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=20,
)

CASES: list[tuple[Any, Any]] = [
    (orders, Order),
    (scalars, Scalars),
    (scalars_dc, ScalarsDC),
    (scalars_td, ScalarsTD),
    (orders_dc, OrderDC),
    (orders_td, OrderTD),
    (json_values, Any),
]


@pytest.mark.parametrize("codec", CODECS, ids=ids)
@pytest.mark.parametrize(("strategy", "tp"), CASES, ids=[str(t) for _, t in CASES])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip(codec: Codec, strategy: Any, tp: Any, data: st.DataObject) -> None:
    value = data.draw(strategy)
    assert codec.decode(codec.encode(value), tp) == value


@pytest.mark.parametrize("codec", ALL_CODECS, ids=[c.name for c in ALL_CODECS])
@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=200))
def test_random_bytes_raise_only_codec_errors(codec: Codec, body: bytes) -> None:
    for tp in (Any, Order, OrderDC, OrderTD, Request, bytes):
        try:
            codec.decode(body, tp)
        except CodecError:
            pass


@pytest.mark.parametrize("codec", CODECS, ids=ids)
@settings(max_examples=200, deadline=None)
@given(value=orders, data=st.data())
def test_corrupted_encodings_raise_only_codec_errors(
    codec: Codec, value: Order, data: st.DataObject
) -> None:
    body = bytearray(codec.encode(value))
    index = data.draw(st.integers(0, len(body) - 1))
    body[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(body)))
    try:
        codec.decode(bytes(body[:cut]), Order)
    except CodecError:
        pass
