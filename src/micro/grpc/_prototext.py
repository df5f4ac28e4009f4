"""Descriptor -> ``.proto`` source: the subset of proto3 the generator writes.

Types are written short inside the package and fully qualified (leading dot) where a
method, field or nested name of the same scope would shadow them; ``json_name`` is written
only where it differs from protoc's own.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from micro.grpc._protoschema import SCALARS, default_json_name

if TYPE_CHECKING:
    from google.protobuf.descriptor_pb2 import FileDescriptorProto

__all__ = ["default_json_name", "render"]

_MESSAGE, _ENUM, _REPEATED = 11, 14, 3


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
    return SCALARS[fd.type]


def _ref(type_name: str, package: str, local: set[str]) -> str:
    """A type as the text refers to it: short within the package, fully qualified (leading
    dot) where a method, field or nested name of the same scope would shadow it."""
    name = type_name.lstrip(".")
    short = name.removeprefix(package + ".")
    first = short.split(".", 1)[0]
    if first in local or (short == name and name.split(".", 1)[0] in local):
        return type_name
    return short
