"""``application/json``: the default codec, go-micro's plain JSON body.

Built on msgspec: one shared encoder, one cached decoder per target type. Decoding validates
against the type (Struct, dataclass, TypedDict, builtins, pydantic model, protobuf message)
and fails with a :class:`~micro.errors.CodecError` that names the JSON path::

    Expected `str`, got `int` - at `$.name`

Wire notes (go-micro v1 compatibility):

* go-micro ends its JSON bodies with a newline; decoding accepts that, encoding writes none.
* An empty body decodes as ``{}`` (so a type with required fields still fails, naming them).
* Protobuf messages use ``json_format``: encoded with the proto field names (what Go's
  ``encoding/json`` writes for generated structs), decoded like jsonpb (JSON or proto names,
  unknown fields ignored).
"""

from __future__ import annotations

import msgspec

from micro.codec._msgspec import MsgspecCodec

__all__ = ["JsonCodec"]


class JsonCodec(MsgspecCodec):
    """JSON bodies (``application/json``)."""

    content_type = "application/json"
    name = "json"
    format_name = "JSON"
    _empty = b"{}"

    def __init__(self) -> None:
        super().__init__(msgspec.json)
