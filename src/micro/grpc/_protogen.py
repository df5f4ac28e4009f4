"""Protobuf descriptors, ``.proto`` text and dynamic message classes for a micro service.

One path for every source: an endpoint's request and response types become JSON Schema
(:func:`micro.codec.schema.json_schema`, the same schema the registry carries), and the
schema becomes protobuf messages. So ``from_specs`` (a handler's annotations, in process)
and ``from_endpoints`` (the registry's endpoint metadata, what ``micro proto`` reads from a
running service) give the same file for the same types.

The generated file is proto3: ``package`` is the service name, each handler is a
``service <Handler>`` with one ``rpc`` per method, each message field is numbered in
declaration order from 1, and each field's ``json_name`` is the JSON key msgspec (or
pydantic) uses, so proto3's JSON mapping and micro's JSON bodies agree. The type mapping
table is in docs/grpc-proto.md. Requires ``protobuf`` (the ``grpc`` extra).
"""

from __future__ import annotations

import json
import keyword
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from micro.codec._msgspec import dec_hook, enc_hook
from micro.codec.schema import json_schema
from micro.errors import CodecError

if TYPE_CHECKING:
    from google.protobuf.descriptor import Descriptor
    from google.protobuf.descriptor_pb2 import DescriptorProto, FileDescriptorProto
    from google.protobuf.descriptor_pool import DescriptorPool
    from google.protobuf.message import Message

    from micro.registry import Endpoint
    from micro.server.handler import EndpointSpec

__all__ = [
    "ProtoFile",
    "Rpc",
    "from_endpoints",
    "from_schemas",
    "from_specs",
    "make_pool",
    "package_name",
    "render",
]

EMPTY = "google.protobuf.Empty"
STRUCT = "google.protobuf.Struct"
VALUE = "google.protobuf.Value"
LIST_VALUE = "google.protobuf.ListValue"
_WKT_FILES = {
    EMPTY: "google/protobuf/empty.proto",
    STRUCT: "google/protobuf/struct.proto",
    VALUE: "google/protobuf/struct.proto",
    LIST_VALUE: "google/protobuf/struct.proto",
}
# FieldDescriptorProto types and labels
_DOUBLE, _INT64, _BOOL, _STRING, _MESSAGE, _BYTES, _ENUM = 1, 3, 8, 9, 11, 12, 14
_OPTIONAL, _REPEATED = 1, 3
_SCALARS = {_DOUBLE: "double", _INT64: "int64", _BOOL: "bool", _STRING: "string", _BYTES: "bytes"}
_NOT_IDENT = re.compile(r"[^A-Za-z0-9_]")


@dataclass(frozen=True, slots=True)
class Rpc:
    """One endpoint as a gRPC method: ``/<package>.<handler>/<method>``."""

    handler: str
    method: str
    request: str  # full message names
    response: str
    client_streaming: bool = False
    server_streaming: bool = False


@dataclass(frozen=True)
class _Type:
    """A field's protobuf type: a scalar kind, or a message/enum full name."""

    kind: int
    name: str = ""  # for _MESSAGE and _ENUM: the full name (".pkg.Msg" form not used)
    repeated: bool = False
    optional: bool = False
    map_value: _Type | None = None  # a map<string, map_value>


@dataclass
class ProtoFile:
    """A generated ``.proto`` file: descriptor, source text, message classes, converters."""

    package: str
    file: FileDescriptorProto
    rpcs: dict[str, Rpc]  # by endpoint name, ``Handler.Method``
    enums: dict[str, dict[int, Any]] = field(default_factory=dict)  # full name -> number: value
    _pool: DescriptorPool | None = None

    @property
    def services(self) -> list[str]:
        """The full gRPC service names, ``<package>.<Handler>``."""
        return [f"{self.package}.{s.name}" for s in self.file.service]

    def source(self) -> str:
        """The ``.proto`` text of this file (proto3), ready for protoc or buf."""
        return render(self.file)

    def pool(self) -> DescriptorPool:
        """A descriptor pool holding this file and the well-known types it imports."""
        if self._pool is None:
            self._pool = make_pool([self.file])
        return self._pool

    def message_class(self, full_name: str) -> type[Message]:
        """The dynamic message class of ``full_name`` (``greeter.Request``)."""
        from google.protobuf import message_factory

        descriptor = self.pool().FindMessageTypeByName(full_name)
        cls: type[Message] = message_factory.GetMessageClass(descriptor)
        return cls

    def request_class(self, endpoint: str) -> type[Message]:
        return self.message_class(self.rpcs[endpoint].request)

    def response_class(self, endpoint: str) -> type[Message]:
        return self.message_class(self.rpcs[endpoint].response)

    def to_message(self, value: Any, cls: type[Message]) -> Message:
        """``value`` (Struct, dataclass, pydantic model, builtins) as a ``cls`` message.

        Raises:
            CodecError: the value does not fit the message.
        """
        from google.protobuf import json_format

        try:
            data = msgspec.to_builtins(value, enc_hook=enc_hook)
            data = self._enums(data, cls.DESCRIPTOR, to_proto=True)
            return json_format.ParseDict(data, cls(), ignore_unknown_fields=True)
        except Exception as exc:  # ParseError, TypeError from odd values
            raise CodecError(f"cannot convert to {cls.DESCRIPTOR.full_name}: {exc}") from None

    def from_message(self, message: Message, tp: Any = Any) -> Any:
        """``message`` as a value of ``tp`` (msgspec-convertible: Struct, dataclass, dict...).

        Raises:
            CodecError: the message does not fit ``tp``.
        """
        from google.protobuf import json_format

        data = json_format.MessageToDict(
            message, always_print_fields_with_no_presence=True, use_integers_for_enums=True
        )
        data = self._enums(data, message.DESCRIPTOR, to_proto=False)
        try:
            return msgspec.convert(data, tp, strict=False, dec_hook=dec_hook)
        except (msgspec.ValidationError, TypeError, ValueError) as exc:
            raise CodecError(str(exc)) from None

    def _enums(self, data: Any, descriptor: Descriptor, *, to_proto: bool) -> Any:
        """Swap enum values for their numbers (to_proto) or back, walking ``descriptor``."""
        if not self.enums or not isinstance(data, dict):
            return data
        for fd in descriptor.fields:
            key = fd.json_name if fd.json_name in data else fd.name
            if key not in data or data[key] is None:
                continue
            value = data[key]
            target = fd.message_type
            if target is not None and target.GetOptions().map_entry:
                target = target.fields_by_name["value"]
                data[key] = {k: self._one(v, target, to_proto) for k, v in value.items()}
            elif fd.is_repeated and isinstance(value, list):
                data[key] = [self._one(v, fd, to_proto) for v in value]
            else:
                data[key] = self._one(value, fd, to_proto)
        return data

    def _one(self, value: Any, fd: Any, to_proto: bool) -> Any:
        if fd.enum_type is not None:
            values = self.enums.get(fd.enum_type.full_name, {})
            if to_proto:
                numbers = {v: n for n, v in values.items()}
                return numbers.get(value, value)
            return values.get(value, value)
        if fd.message_type is not None and fd.message_type.full_name not in _WKT_FILES:
            return self._enums(value, fd.message_type, to_proto=to_proto)
        return value


def make_pool(files: Iterable[FileDescriptorProto]) -> DescriptorPool:
    """A fresh descriptor pool with ``files`` and the well-known types they may import."""
    from google.protobuf import descriptor_pb2, descriptor_pool, empty_pb2, struct_pb2

    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()
    for module in (empty_pb2, struct_pb2):
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        pool.Add(proto)
        added.add(proto.name)
    for file in files:
        if file.name not in added:
            pool.Add(file)
            added.add(file.name)
    return pool


# -- entry points ---------------------------------------------------------------------------


def package_name(service: str) -> str:
    """A protobuf package for a service name: each dot-separated part made an identifier."""
    parts = [_ident(part, "x") for part in service.split(".") if part]
    return ".".join(parts) or "micro"


def from_specs(
    service: str, specs: Iterable[EndpointSpec], *, package: str | None = None
) -> ProtoFile:
    """The file for a handler's endpoint specs (``micro.server.handler.introspect``)."""
    from micro.server.handler import NO_REQUEST

    rows = []
    for spec in specs:
        if spec.internal:
            continue
        request = None if spec.request_type is NO_REQUEST else json_schema(spec.request_type)
        none = spec.response_type in (None, type(None))
        response = None if none else json_schema(spec.response_type)
        rows.append((spec.name, request, response, spec.kind == "bidi", spec.stream))
    return from_schemas(service, rows, package=package)


def from_endpoints(
    service: str, endpoints: Iterable[Endpoint], *, package: str | None = None
) -> ProtoFile:
    """The file for a service's registry endpoints, from their JSON Schema metadata.

    Subscriber endpoints (``subscriber`` metadata) are left out. A streaming endpoint
    (``stream: true``) becomes a bidirectional rpc: the registry does not say which side
    streams. An endpoint with no schema gets ``google.protobuf.Struct`` (any object).
    """
    rows = []
    for endpoint in endpoints:
        meta = endpoint.metadata or {}
        if meta.get("subscriber") == "true" or "." not in endpoint.name:
            continue
        request = _schema(meta.get("request_schema"), endpoint.request is not None)
        response = _schema(meta.get("response_schema"), endpoint.response is not None)
        stream = meta.get("stream") == "true"
        rows.append((endpoint.name, request, response, stream, stream))
    return from_schemas(service, rows, package=package)


def _schema(text: str | None, present: bool) -> dict[str, Any] | None:
    if text:
        try:
            schema = json.loads(text)
        except ValueError:
            schema = None
        if isinstance(schema, dict):
            return schema
    return {"type": "object"} if present else None


Row = tuple[str, dict[str, Any] | None, dict[str, Any] | None, bool, bool]


def from_schemas(service: str, rows: Iterable[Row], *, package: str | None = None) -> ProtoFile:
    """The file for ``(endpoint, request schema, response schema, client stream, server
    stream)`` rows; a ``None`` schema is ``google.protobuf.Empty``."""
    from google.protobuf import descriptor_pb2

    pkg = package_name(package or service)
    builder = _Builder(pkg)
    rpcs: dict[str, Rpc] = {}
    for name, request, response, client_streaming, server_streaming in rows:
        handler, _, method = name.partition(".")
        base = _ident(handler, "Handler") + _ident(method, "Method")
        rpcs[name] = Rpc(
            handler=handler,
            method=method,
            request=builder.top(request, base + "Request"),
            response=builder.top(response, base + "Response"),
            client_streaming=client_streaming,
            server_streaming=server_streaming,
        )
    file = descriptor_pb2.FileDescriptorProto(
        name=pkg.replace(".", "/") + ".proto", package=pkg, syntax="proto3"
    )
    file.dependency.extend(sorted(builder.imports))
    file.message_type.extend(builder.messages.values())
    file.enum_type.extend(builder.enum_protos.values())
    services: dict[str, Any] = {}
    for rpc in rpcs.values():
        svc = services.get(rpc.handler)
        if svc is None:
            svc = services[rpc.handler] = file.service.add(name=_ident(rpc.handler, "Handler"))
        svc.method.add(
            name=_ident(rpc.method, "Method"),
            input_type="." + rpc.request,
            output_type="." + rpc.response,
            client_streaming=rpc.client_streaming,
            server_streaming=rpc.server_streaming,
        )
    return ProtoFile(package=pkg, file=file, rpcs=rpcs, enums=builder.enums)


# -- JSON Schema -> messages ----------------------------------------------------------------


class _Builder:
    def __init__(self, package: str) -> None:
        self.package = package
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
        self.imports.add(_WKT_FILES[name])
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
        name = self._free(_ident(str(schema.get("title") or hint), "Message"))
        self._seen[canonical] = name
        from google.protobuf import descriptor_pb2

        message = descriptor_pb2.DescriptorProto(name=name)
        self.messages[name] = message  # claimed before the fields: recursive types end
        required = set(schema.get("required", ()))
        used: set[str] = set()
        for number, (key, sub) in enumerate(props.items(), start=1):
            t = self.type_of(sub, defs, name + _camel(_ident(key, "Field")))
            if (
                key not in required
                and t.kind != _MESSAGE
                and not t.repeated
                and t.map_value is None
            ):
                t = _Type(t.kind, t.name, optional=t.optional or _nullable(sub))
            self._field(message, key, number, t, used)
        return f"{self.package}.{name}"

    def _field(self, message: Any, key: str, number: int, t: _Type, used: set[str]) -> None:
        name = _field_name(key)
        while name in used:
            name += "_"
        used.add(name)
        fd = message.field.add(name=name, number=number, json_name=key, label=_OPTIONAL)
        if t.map_value is not None:
            entry = message.nested_type.add(name=_camel(name) + "Entry")
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
            known = self._free(_ident(hint, "Enum"))
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
        for number in sorted(labels):
            label = labels[number]
            self._enum_values.add(label)
            enum.value.add(name=label, number=number)
        self.enum_protos[name] = enum
        self.enums[f"{self.package}.{name}"] = numbers

    def _label(self, value: str, prefix: str) -> str:
        taken = self._enum_values | self.messages.keys() | self.enum_protos.keys()
        if value and _ident(value, "") == value and value not in taken:
            return value
        label = f"{prefix}_{_upper_snake(_ident(value, 'V'))}"
        while label in taken:
            label += "_"
        return label

    def _free(self, name: str) -> str:
        taken = self.messages.keys() | self.enum_protos.keys() | self._enum_values
        candidate, n = name, 1
        while candidate in taken:
            n += 1
            candidate = f"{name}{n}"
        return candidate


def _set_type(fd: Any, t: _Type) -> None:
    fd.type = t.kind
    if t.kind in (_MESSAGE, _ENUM):
        fd.type_name = "." + t.name


def _nullable(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    members = schema.get("anyOf") or schema.get("oneOf") or ()
    return any(isinstance(m, dict) and m.get("type") == "null" for m in members)


# -- names ----------------------------------------------------------------------------------


def _ident(text: str, fallback: str) -> str:
    """``text`` as a protobuf identifier (letters, digits, underscores; not a digit first)."""
    out = _NOT_IDENT.sub("_", text)
    if not out:
        return fallback
    if out[0].isdigit():
        out = "_" + out
    return out + "_" if keyword.iskeyword(out) else out


def _field_name(key: str) -> str:
    """A JSON key as a snake_case field name: ``userName`` -> ``user_name``."""
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", _ident(key, "field")).lower()
    return snake if snake[0] != "_" or len(snake) > 1 else "field"


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _upper_snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).upper()


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


# -- descriptor -> .proto text --------------------------------------------------------------


def render(file: FileDescriptorProto) -> str:
    """The ``.proto`` source of ``file`` (the subset the generator writes)."""
    lines = ['syntax = "proto3";', "", f"package {file.package};", ""]
    if file.dependency:
        lines += [f'import "{dep}";' for dep in file.dependency] + [""]
    for service in file.service:
        lines.append(f"service {service.name} {{")
        local = {m.name for m in service.method}
        for m in service.method:
            req = ("stream " if m.client_streaming else "") + _ref(
                m.input_type, file.package, local
            )
            rsp = ("stream " if m.server_streaming else "") + _ref(
                m.output_type, file.package, local
            )
            lines.append(f"  rpc {m.name}({req}) returns ({rsp});")
        lines += ["}", ""]
    for enum in file.enum_type:
        lines.append(f"enum {enum.name} {{")
        lines += [f"  {v.name} = {v.number};" for v in enum.value]
        lines += ["}", ""]
    for message in file.message_type:
        lines += [*_render_message(message, file.package), ""]
    return "\n".join(lines)


def _render_message(message: Any, package: str) -> list[str]:
    entries = {f".{package}.{message.name}.{n.name}": n for n in message.nested_type}
    local = {fd.name for fd in message.field} | {n.name for n in message.nested_type}
    lines = [f"message {message.name} {{"]
    for fd in message.field:
        entry = entries.get(fd.type_name)
        if entry is not None:
            key, value = entry.field
            types = _field_type(key, package, local), _field_type(value, package, local)
            spec = f"map<{types[0]}, {types[1]}>"
        else:
            label = "repeated " if fd.label == _REPEATED else ""
            label = "optional " if fd.proto3_optional else label
            spec = label + _field_type(fd, package, local)
        option = ""
        if fd.json_name != default_json_name(fd.name):
            option = f" [json_name = {json.dumps(fd.json_name)}]"
        lines.append(f"  {spec} {fd.name} = {fd.number}{option};")
    lines.append("}")
    return lines


def _field_type(fd: Any, package: str, local: set[str]) -> str:
    if fd.type in (_MESSAGE, _ENUM):
        return _ref(fd.type_name, package, local)
    return _SCALARS[fd.type]


def _ref(type_name: str, package: str, local: set[str]) -> str:
    """A type as the text refers to it: short within the package, fully qualified (leading
    dot) where a method, field or nested name of the same scope would shadow it."""
    name = type_name.lstrip(".")
    short = name.removeprefix(package + ".")
    first = short.split(".", 1)[0]
    if first in local or (short == name and name.split(".", 1)[0] in local):
        return type_name
    return short
