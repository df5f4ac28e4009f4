"""Describing request and response types for the registry: go-micro Value trees, JSON Schema.

``value_tree`` mirrors go-micro's ``extractValue``: a struct becomes
``{name: TypeName, type: TypeName, values: [field, ...]}`` with each field named by its JSON
name, a list becomes ``[]Elem`` with the element as its one child, and the tree stops at depth
3 (deeper values are left out, as in Go). Type names are Go's where there is one (``string``,
``int64``, ``float64``, ``bool``, ``[]uint8`` for bytes, ``interface{}`` for ``Any``), so Go
tools show Python services as they show Go ones.

``json_schema`` gives a JSON Schema (msgspec's for msgspec-able types, pydantic's for models,
one built from the descriptor for protobuf messages) for the endpoint metadata that the CLI,
Web UI and the API gateway's OpenAPI read. None of these functions raise: a type they cannot
describe becomes a generic object.
"""

from __future__ import annotations

from typing import Any

import msgspec
import msgspec.inspect as mi

from micro.codec._types import is_proto_class, is_pydantic_model
from micro.registry import Value

__all__ = ["json_schema", "type_name", "value_tree"]

MAX_DEPTH = 3  # go-micro's extractValue stops here

_ANY = "interface{}"
_OBJECT: dict[str, Any] = {"type": "object"}
_STRUCTS = (mi.StructType, mi.DataclassType, mi.TypedDictType, mi.NamedTupleType)
_SEQUENCES = (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)
_BYTES = (mi.BytesType, mi.ByteArrayType, mi.MemoryViewType)
_SCALARS: dict[type[mi.Type], str] = {
    mi.StrType: "string",
    mi.IntType: "int64",
    mi.FloatType: "float64",
    mi.BoolType: "bool",
    mi.AnyType: _ANY,
    mi.RawType: _ANY,
    mi.NoneType: "null",
    mi.DateTimeType: "Time",
    mi.TimeDeltaType: "Duration",
    mi.DateType: "string",
    mi.TimeType: "string",
    mi.UUIDType: "string",
    mi.DecimalType: "string",
    mi.ExtType: "Ext",
}


def type_name(tp: Any) -> str:
    """The name of ``tp`` as a Value's ``type`` shows it: ``HelloRequest``, ``[]string``..."""
    try:
        return _name(mi.type_info(tp))
    except Exception:  # a schema is advice: a type msgspec cannot inspect gets a name
        return getattr(tp, "__name__", None) or _ANY


def value_tree(tp: Any, name: str | None = None) -> Value | None:
    """go-micro's reflected Value tree of ``tp`` (``None`` for no type: ``None``/``NoneType``).

    Args:
        tp: the request or response annotation.
        name: the top-level name (default: the type's name).
    """
    if tp is None or tp is type(None):
        return None
    try:
        value = _tree(mi.type_info(tp), 0)
    except Exception:  # a schema is advice: an odd type must not stop serving
        value = None
    if value is None:
        label = type_name(tp)
        value = Value(name=label, type=label)
    if name is not None:
        value.name = name
    return value


def json_schema(tp: Any) -> dict[str, Any]:
    """A JSON Schema for ``tp``; ``{"type": "object"}`` when it cannot be described."""
    try:
        if is_pydantic_model(tp):
            return dict(tp.model_json_schema())
        if is_proto_class(tp):
            return _proto_schema(tp.DESCRIPTOR)
        return _msgspec_schema(tp)
    except Exception:  # a schema is advice: fall back to any object
        return dict(_OBJECT)


# -- value trees from msgspec's type info ---------------------------------------------------


def _leaf(label: str) -> Value:
    return Value(name=label, type=label)


def _unwrap(info: mi.Type) -> mi.Type:
    """``T | None`` -> ``T`` (Go's pointer), other unions unchanged."""
    if isinstance(info, mi.UnionType):
        rest = [t for t in info.types if not isinstance(t, mi.NoneType)]
        if len(rest) == 1:
            return rest[0]
    if isinstance(info, mi.Metadata):
        return _unwrap(info.type)
    return info


def _item(info: mi.Type) -> mi.Type | None:
    """The element of a sequence type (``None`` when it is not one)."""
    if isinstance(info, _SEQUENCES):
        return info.item_type
    if isinstance(info, mi.TupleType):
        kinds = {_name(t) for t in info.item_types}
        return info.item_types[0] if len(kinds) == 1 else mi.AnyType()
    return None


def _name(info: mi.Type) -> str:
    info = _unwrap(info)
    scalar = _SCALARS.get(type(info))
    if scalar is not None:
        return scalar
    if isinstance(info, _BYTES):
        return "[]uint8"
    if isinstance(info, (*_STRUCTS, mi.CustomType, mi.EnumType)):
        return str(info.cls.__name__)
    item = _item(info)
    if item is not None:
        return "[]" + _name(item)
    if isinstance(info, mi.DictType | mi.FrozenDictType):
        key = _unwrap(info.key_type)  # JSON object keys are strings whatever the annotation
        key_name = "string" if isinstance(key, mi.AnyType) else _name(key)
        return f"map[{key_name}]{_name(info.value_type)}"
    if isinstance(info, mi.LiteralType):
        return "string" if isinstance(info.values[0], str) else "int64"
    if isinstance(info, mi.UnionType):
        return "|".join(_name(t) for t in info.types)
    return _ANY


def _tree(info: mi.Type, depth: int) -> Value | None:
    if depth >= MAX_DEPTH:
        return None
    info = _unwrap(info)
    if isinstance(info, _STRUCTS):
        label = info.cls.__name__
        return _struct(label, ((f.encode_name, f.type) for f in info.fields), depth)
    if isinstance(info, mi.CustomType):
        cls: Any = info.cls
        if is_pydantic_model(cls):
            return _pydantic_tree(cls, depth)
        if is_proto_class(cls):
            return _proto_tree(cls.DESCRIPTOR, depth)
    if isinstance(info, _BYTES):
        return _list("[]uint8", lambda: _leaf("uint8"), depth)
    item = _item(info)
    if item is not None:
        return _list("[]" + _name(item), lambda: _tree(item, depth + 1), depth)
    return _leaf(_name(info))


def _struct(label: str, fields: Any, depth: int) -> Value:
    values = []
    for field_name, field_type in fields:
        child = _tree(field_type, depth + 1)
        if child is not None:
            child.name = field_name
            values.append(child)
    return Value(name=label, type=label, values=values or None)


def _list(label: str, element: Any, depth: int) -> Value:
    child = element() if depth + 1 < MAX_DEPTH else None
    return Value(name=label, type=label, values=[child] if child is not None else None)


def _annotation_tree(tp: Any, depth: int) -> Value | None:
    try:
        return _tree(mi.type_info(tp), depth)
    except Exception:  # a type msgspec cannot inspect, such as pydantic's constrained types
        return None if depth >= MAX_DEPTH else _leaf(getattr(tp, "__name__", None) or _ANY)


def _pydantic_tree(cls: Any, depth: int) -> Value:
    fields = []
    for field_name, info in cls.model_fields.items():
        key = info.serialization_alias or info.alias or field_name
        fields.append((key, info.annotation))
    values = []
    for key, annotation in fields:
        child = _annotation_tree(annotation, depth + 1)
        if child is not None:
            child.name = key
            values.append(child)
    return Value(name=cls.__name__, type=cls.__name__, values=values or None)


# -- protobuf descriptors -------------------------------------------------------------------

# FieldDescriptor.TYPE_* -> Go type names of the generated structs
_PROTO_GO = {
    1: "float64",
    2: "float32",
    3: "int64",
    4: "uint64",
    5: "int32",
    6: "uint64",
    7: "uint32",
    8: "bool",
    9: "string",
    12: "[]uint8",
    13: "uint32",
    15: "int32",
    16: "int64",
    17: "int32",
    18: "int64",
}
_PROTO_JSON: dict[int, dict[str, Any]] = {
    1: {"type": "number"},
    2: {"type": "number"},
    8: {"type": "boolean"},
    9: {"type": "string"},
    12: {"type": "string", "contentEncoding": "base64"},
    **{t: {"type": "integer"} for t in (5, 7, 13, 15, 17)},
    # json_format writes 64-bit integers as strings; jsonpb and json_format read both
    **{t: {"type": ["integer", "string"]} for t in (3, 4, 6, 16, 18)},
}
_TYPE_MESSAGE, _TYPE_BYTES, _TYPE_ENUM = 11, 12, 14


def _is_repeated(field: Any) -> bool:
    flag = getattr(field, "is_repeated", None)
    return bool(flag) if flag is not None else getattr(field, "label", 0) == 3


def _is_map(field: Any) -> bool:
    message = field.message_type
    return message is not None and _is_repeated(field) and message.GetOptions().map_entry


def _proto_name(field: Any) -> str:
    if _is_map(field):
        key, value = field.message_type.fields
        return f"map[{_proto_name(key)}]{_proto_name(value)}"
    if field.type == _TYPE_MESSAGE:
        return str(field.message_type.name)
    if field.type == _TYPE_ENUM:
        return str(field.enum_type.name)
    return _PROTO_GO.get(field.type, _ANY)


def _proto_tree(descriptor: Any, depth: int) -> Value | None:
    if depth >= MAX_DEPTH:
        return None
    values = []
    for field in descriptor.fields:
        child = _proto_field_tree(field, depth + 1)
        if child is not None:
            child.name = field.name  # protoc-gen-go's json tag is the proto field name
            values.append(child)
    return Value(name=descriptor.name, type=descriptor.name, values=values or None)


def _proto_field_tree(field: Any, depth: int) -> Value | None:
    if depth >= MAX_DEPTH:
        return None
    if _is_map(field):
        return _leaf(_proto_name(field))
    if _is_repeated(field):
        return _list("[]" + _proto_name(field), lambda: _proto_single(field, depth + 1), depth)
    return _proto_single(field, depth)


def _proto_single(field: Any, depth: int) -> Value | None:
    if field.type == _TYPE_MESSAGE:
        return _proto_tree(field.message_type, depth)
    if field.type == _TYPE_BYTES:
        return _list("[]uint8", lambda: _leaf("uint8"), depth)
    return _leaf(_proto_name(field))


_WKT_SCHEMA: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Any": {"type": "object"},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.DoubleValue": {"type": "number"},
    "google.protobuf.FloatValue": {"type": "number"},
    "google.protobuf.Int64Value": {"type": ["integer", "string"]},
    "google.protobuf.UInt64Value": {"type": ["integer", "string"]},
    "google.protobuf.Int32Value": {"type": "integer"},
    "google.protobuf.UInt32Value": {"type": "integer"},
    "google.protobuf.BoolValue": {"type": "boolean"},
    "google.protobuf.StringValue": {"type": "string"},
    "google.protobuf.BytesValue": {"type": "string", "contentEncoding": "base64"},
}


def _proto_schema(descriptor: Any) -> dict[str, Any]:
    """``{"$ref": ..., "$defs": {full_name: object schema}}``, as msgspec shapes its own."""
    defs: dict[str, Any] = {}
    ref = _proto_message_schema(descriptor, defs)
    return {**ref, "$defs": defs} if defs else ref


def _proto_message_schema(descriptor: Any, defs: dict[str, Any]) -> dict[str, Any]:
    wkt = _WKT_SCHEMA.get(descriptor.full_name)
    if wkt is not None:
        return dict(wkt)
    key = descriptor.full_name
    if key not in defs:
        defs[key] = {}  # claimed before recursing, so recursive messages terminate
        props = {f.name: _proto_field_schema(f, defs) for f in descriptor.fields}
        defs[key] = {"title": descriptor.name, "type": "object", "properties": props}
    return {"$ref": f"#/$defs/{key}"}


def _proto_field_schema(field: Any, defs: dict[str, Any]) -> dict[str, Any]:
    if _is_map(field):
        value = field.message_type.fields_by_name["value"]
        return {"type": "object", "additionalProperties": _proto_single_schema(value, defs)}
    single = _proto_single_schema(field, defs)
    return {"type": "array", "items": single} if _is_repeated(field) else single


def _proto_single_schema(field: Any, defs: dict[str, Any]) -> dict[str, Any]:
    if field.type == _TYPE_MESSAGE:
        return _proto_message_schema(field.message_type, defs)
    if field.type == _TYPE_ENUM:
        return {"type": "string", "enum": [v.name for v in field.enum_type.values]}
    return dict(_PROTO_JSON.get(field.type, {}))


# -- JSON Schema through msgspec, with pydantic and protobuf parts merged in ----------------


def _msgspec_schema(tp: Any) -> dict[str, Any]:
    extra_defs: dict[str, Any] = {}

    def hook(custom: Any) -> dict[str, Any]:
        if is_pydantic_model(custom):
            sub = dict(custom.model_json_schema())
        elif is_proto_class(custom):
            sub = _proto_schema(custom.DESCRIPTOR)
        else:
            return {"title": getattr(custom, "__name__", _ANY)}
        for key, value in sub.pop("$defs", {}).items():
            extra_defs.setdefault(key, value)
        return sub

    schema: dict[str, Any] = msgspec.json.schema(tp, schema_hook=hook)
    if extra_defs:
        defs = schema.setdefault("$defs", {})
        for key, value in extra_defs.items():
            defs.setdefault(key, value)
    return schema
