"""Property tests: any object schema gives a file the descriptor pool and protoc accept,
with each JSON key kept as its field's json_name."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import grpc_tools
from hypothesis import given, settings
from hypothesis import strategies as st

from micro.grpc._protogen import from_schemas

WKT = Path(str(grpc_tools.__file__)).parent / "_proto"  # the well-known types
SCALARS: list[dict[str, Any]] = [
    {"type": "string"},
    {"type": "integer"},
    {"type": "number"},
    {"type": "boolean"},
    {"type": "string", "contentEncoding": "base64"},
    {},
    {"type": "object"},
    {"anyOf": [{"type": "integer"}, {"type": "null"}]},
    {"enum": ["a", "b c", "message", "1x"]},
    {"enum": [3, 0, -2]},
]
# any JSON key but NUL, which a descriptor's json_name cannot hold (C strings end there);
# keys like "[x]", which protoc refuses as json_name, get the default one
keys = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00"),
    max_size=12,
)


def field_schemas() -> st.SearchStrategy[dict[str, Any]]:
    scalar = st.sampled_from(SCALARS)
    return st.recursive(
        scalar,
        lambda inner: st.one_of(
            st.builds(lambda item: {"type": "array", "items": item}, inner),
            st.builds(lambda value: {"type": "object", "additionalProperties": value}, inner),
            st.builds(
                lambda props, title: {"title": title, "type": "object", "properties": props},
                st.dictionaries(keys, inner, min_size=1, max_size=4),
                st.sampled_from(["Inner", "message", "Say", "Optional", "x-y"]),
            ),
        ),
        max_leaves=8,
    )


objects = st.builds(
    lambda props: {"title": "Req", "type": "object", "properties": props},
    st.dictionaries(keys, field_schemas(), min_size=1, max_size=6),
)


@settings(max_examples=60, deadline=None)
@given(objects, objects)
def test_any_object_schema_gives_a_valid_file(
    request: dict[str, Any], response: dict[str, Any]
) -> None:
    from grpc_tools import protoc

    made = from_schemas("svc.v1", [("Say.Do", request, response, False, False)])
    pool = made.pool()  # raises on an invalid descriptor
    descriptor = pool.FindMessageTypeByName(made.rpcs["Say.Do"].request)
    kept = [k for k in request["properties"] if not (k.startswith("[") and k.endswith("]"))]
    assert [f.json_name for f in descriptor.fields if f.json_name in request["properties"]] == kept
    assert [f.number for f in descriptor.fields] == list(range(1, len(request["properties"]) + 1))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / made.file.name
        path.parent.mkdir(parents=True)
        path.write_text(made.source())
        args = [
            "protoc",
            f"-I{tmp}",
            f"-I{WKT}",
            f"--descriptor_set_out={tmp}/out.pb",
            made.file.name,
        ]
        assert protoc.main(args) == 0, made.source()


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(keys, st.sampled_from(["s", 1, 2.5, True]), min_size=1, max_size=6))
def test_json_keys_round_trip_through_proto_json(value: dict[str, Any]) -> None:
    from google.protobuf import json_format

    kinds = {str: "string", int: "integer", float: "number", bool: "boolean"}
    props = {k: {"type": kinds[type(v)]} for k, v in value.items()}
    made = from_schemas(
        "svc", [("A.B", {"title": "M", "type": "object", "properties": props}, None, False, False)]
    )
    cls = made.request_class("A.B")
    message = json_format.Parse(json.dumps(value), cls())
    assert json_format.MessageToDict(message, always_print_fields_with_no_presence=True) == {
        k: (str(v) if type(v) is int else v)
        for k, v in value.items()  # int64 is a JSON string
    }
