"""Descriptors, .proto text and converters made from handler annotations and registry schemas."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import msgspec
import pydantic
import pytest

from micro.errors import CodecError
from micro.grpc._protogen import ProtoFile, default_json_name, from_endpoints, from_specs
from micro.server import Stream
from micro.server._endpoint import endpoint_record
from micro.server.handler import introspect


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Inner(msgspec.Struct):
    x: int
    tags: list[str] = []


class Req(msgspec.Struct):
    name: str
    count: int = 0
    ratio: float | None = None
    blob: bytes = b""
    extra: dict[str, Any] = {}
    anything: Any = None
    inner: Inner | None = None
    inners: list[Inner] = []
    scores: dict[str, int] = {}
    color: Color = Color.RED
    mode: Literal["fast", "slow"] = "fast"
    userName: str = ""
    user_id: int = 0
    when: datetime.datetime | None = None
    grid: list[list[int]] = []
    flag: bool = False


class Rsp(msgspec.Struct):
    msg: str
    req: Req


@dataclasses.dataclass
class Point:
    x: float
    y: float


class Model(pydantic.BaseModel):
    title: str
    points: list[int] = []


class Say:
    async def hello(self, req: Req) -> Rsp:
        return Rsp("hi", req)

    async def watch(self, req: Req) -> AsyncIterator[Rsp]:
        yield Rsp("hi", req)

    async def chat(self, stream: Stream[Point, Point]) -> None:
        return None

    async def ping(self) -> None:
        return None

    async def model(self, req: Model) -> dict[str, Any]:
        return {}


@pytest.fixture(scope="module")
def proto() -> ProtoFile:
    return from_specs("go.micro.srv.greeter", introspect(Say()))


def fields(proto: ProtoFile, message: str) -> list[tuple[str, int, str]]:
    descriptor = proto.pool().FindMessageTypeByName(f"{proto.package}.{message}")
    return [(f.name, f.number, f.json_name) for f in descriptor.fields]


def test_package_services_and_stream_flags(proto: ProtoFile) -> None:
    assert proto.package == "go.micro.srv.greeter"
    assert proto.services == ["go.micro.srv.greeter.Say"]
    methods = {m.name: m for m in proto.file.service[0].method}
    assert sorted(methods) == ["Chat", "Hello", "Model", "Ping", "Watch"]
    assert (methods["Hello"].client_streaming, methods["Hello"].server_streaming) == (False, False)
    assert (methods["Watch"].client_streaming, methods["Watch"].server_streaming) == (False, True)
    assert (methods["Chat"].client_streaming, methods["Chat"].server_streaming) == (True, True)
    assert methods["Ping"].input_type == ".google.protobuf.Empty"
    assert methods["Ping"].output_type == ".google.protobuf.Empty"
    assert methods["Model"].output_type == ".google.protobuf.Struct"
    assert proto.rpcs["Say.Chat"].request == "go.micro.srv.greeter.Point"


def test_fields_numbered_in_declaration_order_with_json_names(proto: ProtoFile) -> None:
    got = fields(proto, "Req")
    assert [number for _, number, _ in got] == list(range(1, len(Req.__struct_fields__) + 1))
    assert [json_name for _, _, json_name in got] == list(Req.__struct_fields__)
    assert ("user_name", 12, "userName") in got
    assert ("user_id", 13, "user_id") in got
    assert fields(proto, "Model") == [("title", 1, "title"), ("points", 2, "points")]
    assert fields(proto, "Point") == [("x", 1, "x"), ("y", 2, "y")]


def test_proto_source_maps_types(proto: ProtoFile) -> None:
    text = proto.source()
    assert text.startswith('syntax = "proto3";')
    assert "package go.micro.srv.greeter;" in text
    assert 'import "google/protobuf/struct.proto";' in text
    lines = {line.strip() for line in text.splitlines()}
    for line in [
        "string name = 1;",  # required: no presence
        "optional int64 count = 2;",  # a default: presence, so "not sent" keeps it
        "optional double ratio = 3;",
        "optional bytes blob = 4;",
        "google.protobuf.Struct extra = 5;",
        "google.protobuf.Value anything = 6;",
        "Inner inner = 7;",
        "repeated Inner inners = 8;",
        "map<string, int64> scores = 9;",
        "optional Color color = 10;",
        "optional ReqMode mode = 11;",
        "optional string user_name = 12;",
        'optional int64 user_id = 13 [json_name = "user_id"];',
        "optional string when = 14;",
        "repeated google.protobuf.ListValue grid = 15;",
        "optional bool flag = 16;",
        "rpc Watch(Req) returns (stream Rsp);",
        "rpc Chat(stream Point) returns (stream Point);",
        "fast = 0;",
        "slow = 1;",
        "int64 x = 1;",  # Inner.x is required
    ]:
        assert line in lines, line


def test_source_compiles_with_protoc(proto: ProtoFile, tmp_path: Path) -> None:
    path = tmp_path / proto.file.name
    path.parent.mkdir(parents=True)
    path.write_text(proto.source())
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{tmp_path}",
            "--python_out",
            str(tmp_path),
            proto.file.name,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def full_request() -> Req:
    return Req(
        name="n",
        count=2**40,
        ratio=0.5,
        blob=b"\x00\xff",
        extra={"a": [1, "b", None]},
        anything="x",
        inner=Inner(1, ["t"]),
        inners=[Inner(2), Inner(3, ["u"])],
        scores={"k": -9},
        color=Color.GREEN,
        mode="slow",
        userName="u",
        user_id=7,
        when=datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        grid=[[1, 2], [3]],
        flag=True,
    )


def test_round_trip_through_the_wire(proto: ProtoFile) -> None:
    cls = proto.request_class("Say.Hello")
    value = full_request()
    message = proto.to_message(value, cls)
    again = cls.FromString(message.SerializeToString())
    assert proto.from_message(again, Req) == value


def test_defaults_round_trip(proto: ProtoFile) -> None:
    cls = proto.request_class("Say.Hello")
    value = Req(name="")
    assert proto.from_message(proto.to_message(value, cls), Req) == value


class Defaults(msgspec.Struct):
    qty: int = 1
    color: Color = Color.RED
    ratio: float = 0.5
    on: bool = True


class DefaultsHandler:
    async def do(self, req: Defaults) -> Defaults:
        return req


def test_fields_not_sent_get_the_python_defaults_not_protobufs_zero() -> None:
    made = from_specs("d", introspect(DefaultsHandler()))
    cls = made.request_class("DefaultsHandler.Do")
    assert made.from_message(cls(), Defaults) == Defaults()  # nothing sent
    zeros = Defaults(qty=0, color=Color.GREEN, ratio=0.0, on=False)  # protobuf's zero values
    wire = made.to_message(zeros, cls).SerializeToString()
    assert made.from_message(cls.FromString(wire), Defaults) == zeros  # sent, so kept


def test_json_agrees_with_msgspec(proto: ProtoFile) -> None:
    from google.protobuf import json_format

    cls = proto.request_class("Say.Hello")
    value = Req(name="n", userName="u", user_id=3, scores={"a": 1}, color=Color.GREEN, mode="slow")
    parsed = json_format.Parse(msgspec.json.encode(value), cls(), ignore_unknown_fields=False)
    assert (parsed.user_name, parsed.user_id, parsed.scores["a"]) == ("u", 3, 1)
    printed = json_format.MessageToDict(parsed, always_print_fields_with_no_presence=True)
    assert {"name", "userName", "user_id", "scores"} <= set(printed)
    # enum values are named as msgspec writes them
    assert (printed["color"], printed["mode"]) == ("green", "slow")


def test_dataclass_and_pydantic_values(proto: ProtoFile) -> None:
    point_cls = proto.request_class("Say.Chat")
    assert proto.from_message(proto.to_message(Point(1.5, -2), point_cls), Point) == Point(1.5, -2)
    model_cls = proto.request_class("Say.Model")
    model = Model(title="t", points=[1, 2])
    assert proto.from_message(proto.to_message(model, model_cls), Model) == model


def test_mismatch_is_a_codec_error(proto: ProtoFile) -> None:
    cls = proto.request_class("Say.Hello")
    with pytest.raises(CodecError):
        proto.to_message({"name": {"not": "a string"}}, cls)
    with pytest.raises(CodecError):
        proto.from_message(cls(), Point)


def test_registry_schemas_give_the_same_file(proto: ProtoFile) -> None:
    records = [endpoint_record(spec, {}) for spec in introspect(Say())]
    from_registry = from_endpoints("go.micro.srv.greeter", records)
    assert from_registry.source().replace("stream Req", "Req") == proto.source().replace(
        "stream Req", "Req"
    )


def test_registry_endpoints_without_schema_and_subscribers() -> None:
    from micro.registry import Endpoint, Value

    endpoints = [
        Endpoint(
            name="Say.Hello",
            request=Value(name="Request", type="Request"),
            response=Value(name="Response", type="Response"),
            metadata={"stream": "false"},
        ),
        Endpoint(name="Func", metadata={"subscriber": "true", "topic": "t"}),
        Endpoint(
            name="Say.Odd",
            metadata={"request_schema": "not json", "stream": "true"},
        ),
    ]
    made = from_endpoints("go-micro greeter", endpoints)
    assert made.package == "go_micro_greeter"
    assert list(made.rpcs) == ["Say.Hello", "Say.Odd"]
    assert made.rpcs["Say.Hello"].request == "google.protobuf.Struct"
    assert made.rpcs["Say.Odd"].response == "google.protobuf.Empty"
    assert made.rpcs["Say.Odd"].server_streaming
    assert made.rpcs["Say.Odd"].client_streaming


def test_same_name_different_shapes_get_distinct_messages() -> None:
    one = {"title": "Request", "type": "object", "properties": {"a": {"type": "string"}}}
    two = {"title": "Request", "type": "object", "properties": {"b": {"type": "integer"}}}
    from micro.grpc._protogen import from_schemas

    made = from_schemas("svc", [("A.Do", one, one, False, False), ("B.Do", two, one, False, False)])
    assert made.rpcs["A.Do"].request == "svc.Request"
    assert made.rpcs["B.Do"].request == "svc.Request2"
    assert made.rpcs["B.Do"].response == "svc.Request"


class Node(msgspec.Struct):
    value: int
    children: list[Node] = []


class Tree:
    async def walk(self, req: Node) -> Node:
        return req


def test_recursive_types_terminate() -> None:
    made = from_specs("tree", introspect(Tree()))
    assert "repeated Node children = 2;" in made.source()
    cls = made.request_class("Tree.Walk")
    value = Node(1, [Node(2, [Node(3)])])
    assert made.from_message(made.to_message(value, cls), Node) == value


@pytest.mark.parametrize(
    ("name", "json_name"), [("user_name", "userName"), ("a", "a"), ("a_b_c", "aBC"), ("x__y", "xY")]
)
def test_default_json_name_is_protocs(name: str, json_name: str) -> None:
    from google.protobuf import descriptor_pb2

    assert default_json_name(name) == json_name
    # protoc agrees: a field without a json_name option gets this one in the pool
    file = descriptor_pb2.FileDescriptorProto(name="j.proto", package="j", syntax="proto3")
    file.message_type.add(name="M").field.add(name=name, number=1, type=9, label=1)
    from micro.grpc._protogen import make_pool

    got = make_pool([file]).FindMessageTypeByName("j.M").fields[0].json_name
    assert got == json_name


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 5


class Odd(msgspec.Struct):
    level: Level
    word: Literal["class", "two words", "red"]
    other: Literal["red", "blue"] = "blue"


class OddHandler:
    async def do(self, req: Odd) -> Odd:
        return req


def test_enums_that_cannot_keep_their_names(tmp_path: Path) -> None:
    made = from_specs("odd", introspect(OddHandler()))
    text = made.source()
    assert "LEVEL_UNSPECIFIED = 0;" in text
    assert "LEVEL_5 = 5;" in text
    # the schema lists a Literal's values sorted; names that are no identifiers get a prefix
    assert "ODD_WORD_CLASS_ = 0;" in text
    assert "ODD_WORD_TWO_WORDS = 2;" in text
    assert "red = 1;" in text  # first come, first named: the second "red" is prefixed
    assert "ODD_OTHER_RED = 1;" in text
    cls = made.request_class("OddHandler.Do")
    for value in (Odd(Level.HIGH, "two words", "red"), Odd(Level.LOW, "class")):
        assert made.from_message(made.to_message(value, cls), Odd) == value
    path = tmp_path / made.file.name
    path.write_text(text)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{tmp_path}",
            "--python_out",
            str(tmp_path),
            made.file.name,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_wire_encoder_and_decoder(proto: ProtoFile) -> None:
    rpc = proto.rpcs["Say.Hello"]
    encode = proto.encoder(rpc.request)
    decode = proto.decoder(rpc.request, Req)
    value = full_request()
    assert decode(encode(value)) == value
    with pytest.raises(CodecError):
        decode(b"\xff\xff\xff")  # no message: a truncated varint key
    with pytest.raises(CodecError):
        encode({"name": 5.5, "count": "many"})


def test_empty_and_any_endpoints(proto: ProtoFile) -> None:
    ping = proto.rpcs["Say.Ping"]
    assert proto.encoder(ping.response)(None) == b""
    assert proto.decoder(ping.request, None)(b"") is None
    model = proto.rpcs["Say.Model"]  # returns dict[str, Any]: a Struct
    encode, decode = proto.encoder(model.response), proto.decoder(model.response, dict[str, Any])
    assert decode(encode({"a": [1, "x", None], "b": {"c": True}})) == {
        "a": [1, "x", None],
        "b": {"c": True},
    }


# a go-micro v1.0 greeter's registry record (its mDNS TXT, decoded): Value trees, no schemas
GO_GREETER = (
    '{"Service":"go.micro.srv.greeter","Version":"latest","Endpoints":[{"name":"Say.Fail",'
    '"request":{"name":"Request","type":"Request","values":[{"name":"name","type":"string",'
    '"values":null}]},"response":{"name":"Response","type":"Response","values":[{"name":"msg",'
    '"type":"string","values":null}]},"metadata":{"stream":"false"}},{"name":"Say.Hello",'
    '"request":{"name":"Request","type":"Request","values":[{"name":"name","type":"string",'
    '"values":null}]},"response":{"name":"Response","type":"Response","values":[{"name":"msg",'
    '"type":"string","values":null}]},"metadata":{"stream":"false"}},{"name":"Say.Stream",'
    '"request":{"name":"Context","type":"Context","values":null},"response":{"name":"Stream",'
    '"type":"Stream","values":null},"metadata":{"stream":"true"}},{"name":"Func","request":'
    '{"name":"Event","type":"Event","values":[{"name":"id","type":"string","values":null},'
    '{"name":"message","type":"string","values":null}]},"response":null,"metadata":'
    '{"subscriber":"true","topic":"go.micro.topic.greeting"}}],"Metadata":{}}'
)


def test_a_go_services_value_trees() -> None:
    from micro.registry import Endpoint

    record = msgspec.json.decode(GO_GREETER)
    endpoints = msgspec.convert(record["Endpoints"], list[Endpoint])
    made = from_endpoints(record["Service"], endpoints)
    assert list(made.rpcs) == ["Say.Fail", "Say.Hello", "Say.Stream"]
    text = made.source()
    assert "rpc Hello(Request) returns (Response);" in text
    assert (
        "rpc Stream(stream google.protobuf.Struct) returns (stream google.protobuf.Struct);" in text
    )
    assert fields(made, "Request") == [("name", 1, "name")]
    assert fields(made, "Response") == [("msg", 1, "msg")]


def test_go_value_types() -> None:
    from micro.registry import Endpoint, Value

    leaf = [
        Value(name="id", type="int32"),
        Value(name="score", type="float64"),
        Value(name="ok", type="bool"),
        Value(name="data", type="[]uint8"),
        Value(name="tags", type="[]string", values=[Value(name="", type="string")]),
        Value(name="counts", type="map[string]int64"),
        Value(name="any", type="interface{}"),
        Value(name="at", type="*Time"),
        Value(name="items", type="[]Item", values=[Value(name="", type="Item")]),
        Value(name="deep", type="Deep"),  # past go-micro's depth 3: no fields listed
    ]
    endpoint = Endpoint(name="H.M", request=Value(name="Req", type="Req", values=leaf))
    text = from_endpoints("go", [endpoint]).source()
    lines = {line.strip() for line in text.splitlines()}
    for line in [
        "int64 id = 1;",
        "double score = 2;",
        "bool ok = 3;",
        "bytes data = 4;",
        "repeated string tags = 5;",
        "map<string, int64> counts = 6;",
        "google.protobuf.Value any = 7;",
        "string at = 8;",
        "repeated google.protobuf.Struct items = 9;",
        "google.protobuf.Struct deep = 10;",
        "rpc M(Req) returns (google.protobuf.Empty);",
    ]:
        assert line in lines, line
