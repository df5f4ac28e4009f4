"""Endpoint schemas: go-micro Value trees and JSON Schema for every supported kind of type."""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any, TypedDict

import msgspec
import pydantic
import pytest
from google.protobuf import struct_pb2, wrappers_pb2

from micro.codec.schema import json_schema, type_name, value_tree
from micro.registry import Value
from tests.codec.models import (
    Holder,
    ItemDC,
    Order,
    OrderDC,
    OrderModel,
    OrderTD,
    Request,
    Response,
)

encode = msgspec.json.encode


def tree(tp: Any, name: str | None = None) -> Any:
    return msgspec.json.decode(encode(value_tree(tp, name)))


def leaf(name: str, type: str) -> dict[str, Any]:
    return {"name": name, "type": type, "values": None}


def test_go_sample_request_and_response_exactly() -> None:
    assert encode(value_tree(Request)) == (
        b'{"name":"Request","type":"Request","values":'
        b'[{"name":"name","type":"string","values":null}]}'
    )
    assert tree(Response) == {
        "name": "Response",
        "type": "Response",
        "values": [leaf("msg", "string")],
    }


def test_same_tree_for_dataclass_typeddict_pydantic_and_protobuf(greeter_pb2: ModuleType) -> None:
    @dataclasses.dataclass
    class Request:  # the Go name on purpose
        name: str

    class RequestTD(TypedDict):
        name: str

    class RequestModel(pydantic.BaseModel):
        name: str

    expected = [leaf("name", "string")]
    for tp in (Request, RequestTD, RequestModel, greeter_pb2.Request):
        assert tree(tp)["values"] == expected, tp


def test_struct_fields_use_json_names_lists_and_maps() -> None:
    got = tree(Order)
    assert got["name"] == "Order"
    fields = {v["name"]: v for v in got["values"]}
    assert list(fields) == ["orderId", "items", "note", "tags", "paid", "blob", "placedAt"]
    assert fields["orderId"] == leaf("orderId", "int64")
    assert fields["note"] == leaf("note", "string")  # Optional is Go's pointer
    assert fields["tags"] == leaf("tags", "map[string]string")
    assert fields["paid"] == leaf("paid", "bool")
    assert fields["placedAt"] == leaf("placedAt", "Time")
    assert fields["blob"] == {"name": "blob", "type": "[]uint8", "values": [leaf("uint8", "uint8")]}
    items = fields["items"]
    assert items["type"] == "[]Item"
    # depth 0 Order, 1 items, 2 Item: Item's fields would be depth 3, which go-micro drops
    assert items["values"] == [leaf("Item", "Item")]


class C(msgspec.Struct):
    x: int


class B(msgspec.Struct):
    c: C


class A(msgspec.Struct):
    b: B


class Node(msgspec.Struct):
    value: int
    children: list[Node] = []


def test_depth_is_capped_at_three() -> None:
    assert tree(A) == {
        "name": "A",
        "type": "A",
        "values": [{"name": "b", "type": "B", "values": [leaf("c", "C")]}],
    }


def test_recursive_types_terminate() -> None:
    assert tree(Node)["values"][1]["type"] == "[]Node"


def test_protobuf_tree_uses_proto_field_names(greeter_pb2: ModuleType) -> None:
    got = tree(greeter_pb2.Order)
    fields = {v["name"]: v for v in got["values"]}
    assert list(fields) == ["order_id", "lines", "labels", "blob", "status", "parent", "tags"]
    assert fields["order_id"] == leaf("order_id", "int64")
    assert fields["lines"] == {
        "name": "lines",
        "type": "[]Request",
        "values": [leaf("Request", "Request")],
    }
    assert fields["labels"] == leaf("labels", "map[string]string")
    assert fields["status"] == leaf("status", "Status")
    assert fields["tags"]["type"] == "[]string"
    assert fields["parent"]["values"][0] == leaf("order_id", "int64")


def test_pydantic_uses_aliases_and_nested_models() -> None:
    got = tree(OrderModel)
    assert [v["name"] for v in got["values"]] == ["orderId", "items"]
    assert tree(Holder)["values"][0]["values"][1]["type"] == "[]ItemModel"


def test_name_override_and_none() -> None:
    assert tree(Request, "req")["name"] == "req"
    assert tree(Request, "req")["type"] == "Request"
    assert value_tree(None) is None
    assert value_tree(type(None)) is None


@pytest.mark.parametrize(
    ("tp", "name"),
    [
        (str, "string"),
        (int, "int64"),
        (float, "float64"),
        (bool, "bool"),
        (bytes, "[]uint8"),
        (Any, "interface{}"),
        (dict, "map[string]interface{}"),
        (dict[str, int], "map[string]int64"),
        (list[Request], "[]Request"),
        (list[list[str]], "[][]string"),
        (tuple[int, ...], "[]int64"),
        (Request | None, "Request"),
        (int | str, "int64|string"),
        (OrderDC, "OrderDC"),
        (OrderTD, "OrderTD"),
        (OrderModel, "OrderModel"),
        (struct_pb2.Struct, "Struct"),
    ],
)
def test_type_name(tp: Any, name: str) -> None:
    assert type_name(tp) == name
    assert value_tree(tp) is not None


ODD = [object(), "not a type", 3, lambda: 1, type("Weird", (), {}), Ellipsis]


@pytest.mark.parametrize("tp", ODD, ids=repr)
def test_odd_types_never_raise(tp: Any) -> None:
    value = value_tree(tp)
    assert isinstance(value, Value)
    assert value.type == type_name(tp)
    assert isinstance(json_schema(tp), dict)


def test_json_schema_msgspec_types() -> None:
    schema = json_schema(Request)
    assert schema["$defs"]["Request"]["properties"] == {"name": {"type": "string"}}
    assert schema["$defs"]["Request"]["required"] == ["name"]
    assert json_schema(OrderDC)["$defs"]["ItemDC"]["required"] == ["sku", "qty"]
    assert json_schema(dict) == {"type": "object"}
    assert json_schema(Any) == {}
    assert json_schema(list[int]) == {"type": "array", "items": {"type": "integer"}}
    assert json_schema(ItemDC)["$ref"] == "#/$defs/ItemDC"


def test_json_schema_pydantic() -> None:
    schema = json_schema(OrderModel)
    assert schema["required"] == ["orderId", "items"]
    assert "ItemModel" in schema["$defs"]
    holder = json_schema(Holder)  # a pydantic model inside a Struct: its $defs are merged
    assert holder["$defs"]["Holder"]["properties"]["order"]["properties"]["items"]["items"] == {
        "$ref": "#/$defs/ItemModel"
    }
    assert "ItemModel" in holder["$defs"]


def test_json_schema_protobuf(greeter_pb2: ModuleType) -> None:
    schema = json_schema(greeter_pb2.Order)
    assert schema["$ref"] == "#/$defs/micro.codectest.Order"
    order = schema["$defs"]["micro.codectest.Order"]
    props = order["properties"]
    assert props["order_id"] == {"type": ["integer", "string"]}
    assert props["lines"] == {"type": "array", "items": {"$ref": "#/$defs/micro.codectest.Request"}}
    assert props["labels"] == {"type": "object", "additionalProperties": {"type": "string"}}
    assert props["status"] == {"type": "string", "enum": ["UNKNOWN", "PAID"]}
    assert props["parent"] == {"$ref": "#/$defs/micro.codectest.Order"}
    assert props["blob"]["contentEncoding"] == "base64"
    assert json_schema(wrappers_pb2.StringValue) == {"type": "string"}

    with_proto = msgspec.defstruct("WithProto", [("order", greeter_pb2.Order)])
    merged = json_schema(with_proto)
    assert "micro.codectest.Request" in merged["$defs"]


def test_unresolvable_annotations_degrade_to_the_type_name() -> None:
    class Local(msgspec.Struct):
        inner: Missing  # type: ignore[name-defined]  # noqa: F821

    assert tree(Local) == leaf("Local", "Local")
    assert json_schema(Local) == {"type": "object"}
