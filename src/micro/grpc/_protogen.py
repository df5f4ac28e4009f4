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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from micro.codec._msgspec import dec_hook, enc_hook
from micro.codec.schema import json_schema
from micro.errors import CodecError
from micro.grpc._protoschema import (
    EMPTY,
    VALUE,
    WKT_FILES,
    SchemaBuilder,
    ident,
    value_schema,
)
from micro.grpc._prototext import default_json_name, render

if TYPE_CHECKING:
    from google.protobuf.descriptor import Descriptor
    from google.protobuf.descriptor_pb2 import FileDescriptorProto
    from google.protobuf.descriptor_pool import DescriptorPool
    from google.protobuf.message import Message

    from micro.registry import Endpoint, Value
    from micro.server.handler import EndpointSpec

__all__ = [
    "EMPTY",
    "ProtoFile",
    "Rpc",
    "default_json_name",
    "from_endpoints",
    "from_schemas",
    "from_specs",
    "make_pool",
    "package_name",
    "render",
]


@dataclass(frozen=True, slots=True)
class Rpc:
    """One endpoint as a gRPC method: ``/<package>.<handler>/<method>``."""

    handler: str
    method: str
    request: str  # full message names
    response: str
    client_streaming: bool = False
    server_streaming: bool = False


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

        if value is None and cls.DESCRIPTOR.full_name != VALUE:
            return cls()  # no response (Empty), or an optional request not sent
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

        if tp is None or tp is type(None):
            return None
        data = json_format.MessageToDict(
            message, always_print_fields_with_no_presence=True, use_integers_for_enums=True
        )
        data = self._enums(data, message.DESCRIPTOR, to_proto=False)
        try:
            return msgspec.convert(data, tp, strict=False, dec_hook=dec_hook)
        except (msgspec.ValidationError, TypeError, ValueError) as exc:
            raise CodecError(str(exc)) from None

    def decoder(self, full_name: str, tp: Any = Any) -> Callable[[bytes], Any]:
        """A function from the wire bytes of message ``full_name`` to a value of ``tp``: a
        gRPC request deserializer for a handler typed with ``tp``.

        The function raises :class:`CodecError` on bytes that are no such message or a
        message that does not fit ``tp``.
        """
        cls = self.message_class(full_name)

        def decode(data: bytes) -> Any:
            try:
                message = cls.FromString(data)
            except Exception as exc:  # DecodeError, or odd bytes the parser rejects
                raise CodecError(f"malformed {full_name} message: {exc}") from None
            return self.from_message(message, tp)

        return decode

    def encoder(self, full_name: str) -> Callable[[Any], bytes]:
        """A function from a value to the wire bytes of message ``full_name``: a gRPC
        response serializer (raises :class:`CodecError` for a value that does not fit)."""
        cls = self.message_class(full_name)

        def encode(value: Any) -> bytes:
            data: bytes = self.to_message(value, cls).SerializeToString()
            return data

        return encode

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
        if fd.message_type is not None and fd.message_type.full_name not in WKT_FILES:
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
    parts = [ident(part, "x") for part in service.split(".") if part]
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
    streams. An endpoint with no JSON Schema (a go-micro service's) is read from its Value
    tree; one with neither takes or returns ``google.protobuf.Empty``.
    """
    rows = []
    for endpoint in endpoints:
        meta = endpoint.metadata or {}
        if meta.get("subscriber") == "true" or "." not in endpoint.name:
            continue
        request = _schema(meta.get("request_schema"), endpoint.request)
        response = _schema(meta.get("response_schema"), endpoint.response)
        stream = meta.get("stream") == "true"
        rows.append((endpoint.name, request, response, stream, stream))
    return from_schemas(service, rows, package=package)


def _schema(text: str | None, value: Value | None) -> dict[str, Any] | None:
    """The endpoint's JSON Schema, else one from its Value tree (a Go service's), else none."""
    if text:
        try:
            schema = json.loads(text)
        except ValueError:
            schema = None
        if isinstance(schema, dict):
            return schema
    return None if value is None else value_schema(value)


Row = tuple[str, dict[str, Any] | None, dict[str, Any] | None, bool, bool]


def from_schemas(service: str, rows: Iterable[Row], *, package: str | None = None) -> ProtoFile:
    """The file for ``(endpoint, request schema, response schema, client stream, server
    stream)`` rows; a ``None`` schema is ``google.protobuf.Empty``."""
    from google.protobuf import descriptor_pb2

    pkg = package_name(package or service)
    rows = list(rows)
    handlers = {ident(name.partition(".")[0], "Handler") for name, *_ in rows}
    builder = SchemaBuilder(pkg, reserved=handlers)
    rpcs: dict[str, Rpc] = {}
    for name, request, response, client_streaming, server_streaming in rows:
        handler, _, method = name.partition(".")
        base = ident(handler, "Handler") + ident(method, "Method")
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
            svc = services[rpc.handler] = file.service.add(name=ident(rpc.handler, "Handler"))
        svc.method.add(
            name=ident(rpc.method, "Method"),
            input_type="." + rpc.request,
            output_type="." + rpc.response,
            client_streaming=rpc.client_streaming,
            server_streaming=rpc.server_streaming,
        )
    return ProtoFile(package=pkg, file=file, rpcs=rpcs, enums=builder.enums)
