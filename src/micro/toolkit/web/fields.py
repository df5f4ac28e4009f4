"""Field trees: one shape for an endpoint's request or response, whatever described it.

The registry describes a type twice over: as JSON Schema in the endpoint metadata
(``request_schema``/``response_schema``, written by micro; pydantic, msgspec and protobuf
schemas alike) and as go-micro's Value tree (``name``, ``type``, ``values``), the only one
Go services send. :func:`build` prefers the schema and falls back to the tree, and returns::

    Field = {"name", "type" (display type), "kind": object|array|string|integer|number|
             boolean|any, "required": bool, "fields": [Field], "items": Field|None,
             "enum": [...]|None, "description": str|None}

Nothing here raises: a schema that cannot be read falls back to the Value tree, and an
unknown type is ``any``. Recursive types stop at ``MAX_DEPTH``.
"""

from __future__ import annotations

import json
from typing import Any

from micro.registry import Value

__all__ = ["MAX_DEPTH", "build", "from_schema", "from_value"]

MAX_DEPTH = 8
"""Nesting kept in a tree (a recursive type is cut off here, not followed forever)."""

_INTEGERS = {
    "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64",
    "uintptr", "rune", "byte", "Duration",
}  # fmt: skip
_NUMBERS = {"float", "float32", "float64", "double", "Decimal"}
_STRINGS = {"string", "str", "[]uint8", "[]byte", "bytes", "Time", "datetime", "date", "UUID"}
_BOOLEANS = {"bool", "boolean"}
_ANYS = {"interface{}", "any", "Any", "object", "null", "None", ""}
_SCHEMA_KINDS = {"object", "array", "string", "integer", "number", "boolean"}


def _field(
    name: str,
    type_: str,
    kind: str,
    *,
    required: bool = False,
    fields: list[dict[str, Any]] | None = None,
    items: dict[str, Any] | None = None,
    enum: list[Any] | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "type": type_,
        "kind": kind,
        "required": required,
        "fields": fields or [],
        "items": items,
        "enum": enum,
        "description": description,
    }


def build(schema_text: str | None, value: Value | None) -> dict[str, Any] | None:
    """The Field tree of one request or response (None when the endpoint has none)."""
    if schema_text:
        try:
            schema = json.loads(schema_text)
        except (ValueError, RecursionError):
            schema = None
        if isinstance(schema, dict) and schema:
            name = value.name if value is not None else ""
            return from_schema(schema, name=name)
    if value is None:
        return None
    return from_value(value)


# -- JSON Schema --------------------------------------------------------------------------


def from_schema(schema: dict[str, Any], name: str = "") -> dict[str, Any]:
    """The Field tree of a JSON Schema (local ``$ref``s resolved, ``T | None`` unwrapped)."""
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        found = schema.get(key)
        if isinstance(found, dict):
            defs.update(found)
    return _schema_field(schema, name, False, defs, 0, frozenset())


def _resolve(
    schema: Any, defs: dict[str, Any], seen: frozenset[str]
) -> tuple[dict[str, Any], str, frozenset[str]]:
    """(the schema behind any ``$ref``, its definition name, the refs followed so far)."""
    title = ""
    while isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
        ref = schema["$ref"]
        key = ref.rsplit("/", 1)[-1]
        if ref in seen or key not in defs:
            return {}, title or key, seen
        seen, title = seen | {ref}, key
        merged = {k: v for k, v in schema.items() if k != "$ref"}
        target = defs[key]
        schema = {**target, **merged} if isinstance(target, dict) else merged
    return (schema if isinstance(schema, dict) else {}), title, seen


def _unwrap_null(schema: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [T, null]`` -> T (an optional field), keeping the outer description."""
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list):
            rest = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
            if len(rest) == 1 and isinstance(rest[0], dict):
                outer = {k: v for k, v in schema.items() if k != key}
                return {**rest[0], **outer}
    return schema


def _schema_kind(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    if isinstance(kind, str) and kind in _SCHEMA_KINDS:
        return kind
    if "properties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return _kind_of_value(enum[0])
    if "const" in schema:
        return _kind_of_value(schema["const"])
    return "any"


def _kind_of_value(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "any"


def _schema_field(
    raw: Any,
    name: str,
    required: bool,
    defs: dict[str, Any],
    depth: int,
    seen: frozenset[str],
) -> dict[str, Any]:
    schema, ref_name, seen = _resolve(raw, defs, seen)
    schema = _unwrap_null(schema)
    if "$ref" in schema:  # an optional reference: ``anyOf: [{$ref}, null]``
        schema, title, seen = _resolve(schema, defs, seen)
        ref_name = title or ref_name
    kind = _schema_kind(schema)
    description = schema.get("description")
    description = description if isinstance(description, str) else None
    enum = schema.get("enum")
    enum = list(enum) if isinstance(enum, list) else None
    if enum is None and "const" in schema:
        enum = [schema["const"]]
    title = str(schema["title"]) if isinstance(schema.get("title"), str) else ""
    display = ref_name or title or (kind if kind != "any" else "any")
    field = _field(name, display, kind, required=required, enum=enum, description=description)
    if depth >= MAX_DEPTH:
        return field
    if kind == "object":
        props = schema.get("properties")
        needed = schema.get("required")
        needed = set(needed) if isinstance(needed, list) else set()
        if isinstance(props, dict):
            field["fields"] = [
                _schema_field(sub, str(key), key in needed, defs, depth + 1, seen)
                for key, sub in props.items()
            ]
        elif isinstance(schema.get("additionalProperties"), dict):
            inner = _schema_field(schema["additionalProperties"], "", False, defs, depth + 1, seen)
            field["type"] = ref_name or title or f"map[string]{inner['type']}"
            field["items"] = inner
    elif kind == "array":
        items = schema.get("items")
        if not isinstance(items, dict):
            prefix = schema.get("prefixItems")
            items = prefix[0] if isinstance(prefix, list) and prefix else {}
        inner = _schema_field(items, "", False, defs, depth + 1, seen)
        field["items"] = inner
        if not ref_name and not title:
            field["type"] = "[]" + inner["type"]
    elif kind not in ("any",) and not ref_name:
        fmt = schema.get("format")
        field["type"] = f"{kind} ({fmt})" if isinstance(fmt, str) and fmt else kind
    return field


# -- go-micro Value trees -----------------------------------------------------------------


def _value_kind(type_: str, has_values: bool) -> str:
    base = type_.lstrip("*")
    if base in _STRINGS:
        return "string"
    if base in _INTEGERS:
        return "integer"
    if base in _NUMBERS:
        return "number"
    if base in _BOOLEANS:
        return "boolean"
    if base.startswith("[]") or base in ("list", "tuple", "set"):
        return "array"
    if base.startswith("map[") or base == "dict" or has_values:
        return "object"
    if base in _ANYS:
        return "any"
    return "object"  # a named struct whose fields the tree left out (depth limit)


def from_value(value: Value, depth: int = 0) -> dict[str, Any]:
    """The Field tree of a go-micro Value (``[]T`` -> array of T, Go/Python scalar names)."""
    children = value.values or []
    kind = _value_kind(value.type, bool(children))
    field = _field(value.name, value.type or "any", kind)
    if depth >= MAX_DEPTH:
        return field
    if kind == "array":
        if children:
            field["items"] = from_value(children[0], depth + 1)
        else:
            elem = value.type.lstrip("*")[2:] if value.type.startswith(("[]", "*[]")) else ""
            field["items"] = _field("", elem or "any", _value_kind(elem, False))
    elif kind == "object":
        field["fields"] = [from_value(child, depth + 1) for child in children]
    return field
