"""JSON Schema -> protobuf messages and enums: the rules of docs/grpc-proto.md's type table.

:class:`SchemaBuilder` turns the schemas of a service's endpoints into ``DescriptorProto``
and ``EnumDescriptorProto`` values of one package, naming what it makes and numbering
fields in declaration order. It imports ``google.protobuf`` only to build those values.
"""

from __future__ import annotations

import json
import keyword
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from google.protobuf.descriptor_pb2 import DescriptorProto

__all__ = [
    "EMPTY",
    "LIST_VALUE",
    "SCALARS",
    "STRUCT",
    "VALUE",
    "WKT_FILES",
    "SchemaBuilder",
    "default_json_name",
    "value_schema",
    "ident",
]

EMPTY = "google.protobuf.Empty"
STRUCT = "google.protobuf.Struct"
VALUE = "google.protobuf.Value"
LIST_VALUE = "google.protobuf.ListValue"
WKT_FILES = {
    EMPTY: "google/protobuf/empty.proto",
    STRUCT: "google/protobuf/struct.proto",
    VALUE: "google/protobuf/struct.proto",
    LIST_VALUE: "google/protobuf/struct.proto",
}
# FieldDescriptorProto types and labels
_DOUBLE, _INT64, _BOOL, _STRING, _MESSAGE, _BYTES, _ENUM = 1, 3, 8, 9, 11, 12, 14
_OPTIONAL, _REPEATED = 1, 3
SCALARS = {_DOUBLE: "double", _INT64: "int64", _BOOL: "bool", _STRING: "string", _BYTES: "bytes"}
_NOT_IDENT = re.compile(r"[^A-Za-z0-9_]")


@dataclass(frozen=True)
class _Type:
    """A field's protobuf type: a scalar kind, or a message/enum full name."""

    kind: int
    name: str = ""  # for _MESSAGE and _ENUM: the full name (".pkg.Msg" form not used)
    repeated: bool = False
    optional: bool = False
    map_value: _Type | None = None  # a map<string, map_value>


# -- go-micro Value trees -> JSON Schema ----------------------------------------------------

_GO_TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "bool": {"type": "boolean"},
    "[]uint8": {"type": "string", "contentEncoding": "base64"},
    "[]byte": {"type": "string", "contentEncoding": "base64"},
    "float32": {"type": "number"},
    "float64": {"type": "number"},
    "Time": {"type": "string", "format": "date-time"},
    "interface{}": {},
    **{
        name: {"type": "integer"}
        for name in [
            "int",
            "int8",
            "int16",
            "int32",
            "int64",
            "uint",
            "uint8",
            "uint16",
            "uint32",
            "uint64",
        ]
    },
}


def value_schema(value: Any) -> dict[str, Any]:
    """A JSON Schema for a go-micro ``Value`` tree (what Go services register instead).

    Structs with fields become objects with those properties in order; ``[]T`` arrays,
    ``map[K]V`` objects of ``V``; a struct past go-micro's depth limit (no fields listed)
    any object. Field names are the JSON names Go's tags give; every field is required (a
    Go field is never unset: its zero value is its default, as in proto3).
    """
    kind = str(value.type).lstrip("*")
    children = value.values or []
    if kind.startswith("[]") and kind not in _GO_TYPES:
        item = children[0] if children else type(value)(name="", type=kind[2:])
        return {"type": "array", "items": value_schema(item)}
    if kind.startswith("map[") and "]" in kind:
        inner = type(value)(name="", type=kind.partition("]")[2])
        return {"type": "object", "additionalProperties": value_schema(inner)}
    if kind in _GO_TYPES:
        return dict(_GO_TYPES[kind])
    props = {child.name: value_schema(child) for child in children if child is not None}
    schema: dict[str, Any] = {"title": kind.rpartition(".")[2] or "Message", "type": "object"}
    if not props:
        return schema
    return {**schema, "properties": props, "required": list(props)}  # Go has no unset


# -- JSON Schema -> messages ----------------------------------------------------------------


class SchemaBuilder:
    """Collects the messages and enums of one package while endpoints' schemas are read;
    one schema (by its text) is one message however many endpoints use it."""

    def __init__(self, package: str, reserved: Iterable[str] = ()) -> None:
        self.package = package
        self.reserved = set(reserved)  # the package's other names: its services
        self.messages: dict[str, DescriptorProto] = {}  # by short name
        self.enum_protos: dict[str, Any] = {}
        self.enums: dict[str, dict[int, Any]] = {}
        self._enum_values: set[str] = set()  # enum value names: package-wide in protobuf
        self.imports: set[str] = set()
        self._seen: dict[str, str] = {}  # canonical schema text -> short name

    def top(self, schema: dict[str, Any] | None, fallback: str) -> str:
        """The full message name for an endpoint's request or response schema."""
        if schema is None:
            return self._wkt(EMPTY)
        t = self.type_of(schema, schema.get("$defs", {}), fallback)
        if t.kind == _MESSAGE and not t.repeated and t.map_value is None:
            return t.name
        return self._wkt(STRUCT if t.map_value is not None else VALUE)

    def _wkt(self, name: str) -> str:
        self.imports.add(WKT_FILES[name])
        return name

    def type_of(self, schema: Any, defs: dict[str, Any], hint: str) -> _Type:
        """The protobuf type of one schema (``hint`` names a message or enum made inline)."""
        if not isinstance(schema, dict):
            return _Type(_MESSAGE, self._wkt(VALUE))
        ref = schema.get("$ref")
        if isinstance(ref, str):
            key = ref.rsplit("/", 1)[-1]
            target = defs.get(key)
            if target is None:
                return _Type(_MESSAGE, self._wkt(VALUE))
            return self.type_of({**target, "title": target.get("title", key)}, defs, key)
        for union in ("anyOf", "oneOf"):
            if union in schema:
                return self._union(schema[union], defs, hint)
        if "enum" in schema or "const" in schema:
            values = schema.get("enum", [schema.get("const")])
            return self._enum(values, str(schema.get("title") or hint))
        kind = schema.get("type")
        if isinstance(kind, list):  # ["integer", "string"]: protobuf's int64 as JSON gives
            rest = [k for k in kind if k != "null"]
            kind = "integer" if "integer" in rest else (rest[0] if len(rest) == 1 else None)
            if kind in ("string", "integer", "number", "boolean") and len(rest) < len(
                schema["type"]
            ):
                return _Type(self.type_of({**schema, "type": kind}, defs, hint).kind, optional=True)
        if kind == "string":
            encoded = schema.get("contentEncoding") == "base64"
            return _Type(_BYTES if encoded else _STRING)
        if kind in ("integer", "number", "boolean"):
            return _Type({"integer": _INT64, "number": _DOUBLE, "boolean": _BOOL}[kind])
        if kind == "array":
            return self._array(schema, defs, hint)
        if kind == "object":
            return self._object(schema, defs, hint)
        return _Type(_MESSAGE, self._wkt(VALUE))

    def _union(self, members: list[Any], defs: dict[str, Any], hint: str) -> _Type:
        rest = [m for m in members if not (isinstance(m, dict) and m.get("type") == "null")]
        if len(rest) == 1:
            inner = self.type_of(rest[0], defs, hint)
            if inner.repeated or inner.map_value is not None:
                return inner
            return _Type(inner.kind, inner.name, optional=len(rest) < len(members))
        return _Type(_MESSAGE, self._wkt(VALUE))

    def _array(self, schema: dict[str, Any], defs: dict[str, Any], hint: str) -> _Type:
        items = schema.get("items")
        if "prefixItems" in schema or not isinstance(items, dict):
            return _Type(_MESSAGE, self._wkt(VALUE), repeated=True)
        inner = self.type_of(items, defs, hint + "Item")
        if inner.repeated:  # protobuf has no nested repeated: a list of ListValue
            return _Type(_MESSAGE, self._wkt(LIST_VALUE), repeated=True)
        if inner.map_value is not None:
            return _Type(_MESSAGE, self._wkt(STRUCT), repeated=True)
        return _Type(inner.kind, inner.name, repeated=True)

    def _object(self, schema: dict[str, Any], defs: dict[str, Any], hint: str) -> _Type:
        props = schema.get("properties")
        if isinstance(props, dict) and props:
            return _Type(_MESSAGE, self._message(schema, props, defs, hint))
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            value = self.type_of(extra, defs, hint + "Value")
            if value.repeated or value.map_value is not None:
                value = _Type(_MESSAGE, self._wkt(VALUE))
            return _Type(_MESSAGE, "", map_value=_Type(value.kind, value.name))
        return _Type(_MESSAGE, self._wkt(STRUCT))

    def _message(
        self, schema: dict[str, Any], props: dict[str, Any], defs: dict[str, Any], hint: str
    ) -> str:
        canonical = json.dumps(schema, sort_keys=True, default=str)
        known = self._seen.get(canonical)
        if known is not None:
            return f"{self.package}.{known}"
        name = self._free(_type_name(str(schema.get("title") or hint), "Message"))
        self._seen[canonical] = name
        from google.protobuf import descriptor_pb2

        message = descriptor_pb2.DescriptorProto(name=name)
        self.messages[name] = message  # claimed before the fields: recursive types end
        required = set(schema.get("required", ()))
        used: tuple[set[str], set[str], set[str]] = (set(), set(), set(props))
        for number, (key, sub) in enumerate(props.items(), start=1):
            t = self.type_of(sub, defs, name + _camel(ident(key, "Field")))
            if key not in required and not t.repeated and t.map_value is None:
                # a field with a default: presence, so that "not sent" gets the Python
                # default (qty = 1, color = RED), not protobuf's zero value
                t = _Type(t.kind, t.name, optional=True)
            self._field(message, key, number, t, used)
        return f"{self.package}.{name}"

    def _field(
        self, message: Any, key: str, number: int, t: _Type, used: tuple[set[str], ...]
    ) -> None:
        """Add field ``key``; ``used``: the field (and map entry) names so far, their default
        JSON names, and every JSON key of the message (protoc wants the default JSON names distinct,
        and distinct from the other fields' JSON names)."""
        names, defaults, keys = used
        base = name = _field_name(key)
        n = 1
        while (
            name in names
            or _entry_name(name) in names  # a map's entry type, named after its field
            or (json := default_json_name(name)) in defaults
            or (json != key and json in keys)
        ):
            n += 1
            name = f"{base}{n}"
        names.update((name, _entry_name(name)))
        defaults.add(default_json_name(name))
        json_name = key if _json_name_ok(key) else default_json_name(name)
        fd = message.field.add(name=name, number=number, json_name=json_name, label=_OPTIONAL)
        if t.map_value is not None:
            entry = message.nested_type.add(name=_entry_name(name))
            entry.options.map_entry = True
            entry.field.add(name="key", number=1, type=_STRING, label=_OPTIONAL, json_name="key")
            value = entry.field.add(name="value", number=2, label=_OPTIONAL, json_name="value")
            _set_type(value, t.map_value)
            fd.label = _REPEATED
            fd.type = _MESSAGE
            fd.type_name = f".{self.package}.{message.name}.{entry.name}"
            return
        _set_type(fd, t)
        if t.repeated:
            fd.label = _REPEATED
        elif t.optional and t.kind != _MESSAGE:
            fd.proto3_optional = True
            fd.oneof_index = len(message.oneof_decl)
            message.oneof_decl.add(name="_" + name)

    def _enum(self, values: list[Any], hint: str) -> _Type:
        """An enum: string values numbered from 0 and named as they are where protobuf
        allows it (so proto3 JSON writes msgspec's strings); int values keep their number."""
        kinds = {type(v) for v in values}
        if len(kinds) != 1 or kinds - {str, int}:
            return _Type(_MESSAGE, self._wkt(VALUE))
        canonical = json.dumps(["enum", values], default=str)
        known = self._seen.get(canonical)
        if known is None:
            known = self._free(_type_name(hint, "Enum"))
            self._seen[canonical] = known
            self._add_enum(known, values)
        return _Type(_ENUM, f"{self.package}.{known}")

    def _add_enum(self, name: str, values: list[Any]) -> None:
        from google.protobuf import descriptor_pb2

        enum = descriptor_pb2.EnumDescriptorProto(name=name)
        prefix = _upper_snake(name)
        if isinstance(values[0], int):
            numbers = {v: v for v in values}
            labels = {v: f"{prefix}_{v}".replace("-", "MINUS_") for v in values}
            if 0 not in labels:  # proto3 enums start at 0
                labels[0] = f"{prefix}_UNSPECIFIED"
        else:
            numbers = dict(enumerate(values))
            labels = {n: self._label(str(v), prefix) for n, v in numbers.items()}
        for number in sorted(labels, key=lambda n: (n != 0, n)):  # proto3: 0 comes first
            label = labels[number]
            self._enum_values.add(label)
            enum.value.add(name=label, number=number)
        self.enum_protos[name] = enum
        self.enums[f"{self.package}.{name}"] = numbers

    def _label(self, value: str, prefix: str) -> str:
        taken = self._enum_values | self.messages.keys() | self.enum_protos.keys() | self.reserved
        free = value not in taken and value not in _KEYWORDS
        if value and ident(value, "") == value and free:
            return value
        label = f"{prefix}_{_upper_snake(ident(value, 'V'))}"
        while label in taken:
            label += "_"
        return label

    def _free(self, name: str) -> str:
        taken = self.messages.keys() | self.enum_protos.keys() | self._enum_values | self.reserved
        candidate, n = name, 1
        while candidate in taken:
            n += 1
            candidate = f"{name}{n}"
        return candidate


def _set_type(fd: Any, t: _Type) -> None:
    fd.type = t.kind
    if t.kind in (_MESSAGE, _ENUM):
        fd.type_name = "." + t.name


# -- names ----------------------------------------------------------------------------------


def ident(text: str, fallback: str) -> str:
    """``text`` as a protobuf identifier (letters, digits, underscores; not a digit first)."""
    out = _NOT_IDENT.sub("_", text)
    if not out:
        return fallback
    if out[0].isdigit():
        out = "_" + out
    return out + "_" if keyword.iskeyword(out) else out


# words that would read as a statement where an enum value's name stands
_KEYWORDS = frozenset(
    [
        "option",
        "reserved",
        "message",
        "enum",
        "extend",
        "extensions",
        "syntax",
        "edition",
        "package",
        "import",
        "service",
        "rpc",
        "returns",
        "stream",
        "oneof",
        "map",
        "optional",
        "repeated",
        "required",
        "group",
        "true",
        "false",
        "inf",
        "nan",
    ]
)


def _type_name(text: str, fallback: str) -> str:
    """A message or enum name: an identifier with a capital first letter (so it is never a
    lowercase keyword such as ``message`` where a field's type stands)."""
    name = ident(text, fallback)
    return name[:1].upper() + name[1:]


def default_json_name(name: str) -> str:
    """protoc's json_name for a field name: underscores dropped, the next letter upper."""
    out, upper = [], False
    for ch in name:
        if ch == "_":
            upper = True
        else:
            out.append(ch.upper() if upper else ch)
            upper = False
    return "".join(out)


def _json_name_ok(key: str) -> bool:
    """Whether protoc takes ``key`` as a json_name: not ``[...]`` (that reads as an
    extension), no NUL. Other keys get the default JSON name (JSON then disagrees there)."""
    return "\x00" not in key and not (key.startswith("[") and key.endswith("]"))


def _field_name(key: str) -> str:
    """A JSON key as a snake_case field name: ``userName`` -> ``user_name``."""
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", ident(key, "field")).lower()
    bare = snake.lstrip("_")
    return snake if bare and bare[0].isalpha() else "f" + snake  # a map entry needs a letter


def _entry_name(field: str) -> str:
    """protoc's name for a map field's entry type: underscores dropped, the letter after one
    (and the first) upper-cased, then ``Entry``."""
    out, upper = [], True
    for ch in field:
        if ch == "_":
            upper = True
        else:
            out.append(ch.upper() if upper else ch)
            upper = False
    return "".join(out) + "Entry"


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _upper_snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).upper()
