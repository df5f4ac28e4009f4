"""How one endpoint's messages travel in gRPC frames: protobuf, or msgspec JSON.

gRPC hides the ``content-type`` subtype from handlers, so the format is the endpoint's:

* protobuf message classes as request/response types: ``application/grpc`` (protobuf), which
  a stub generated from the matching ``.proto`` speaks with no glue;
* a protobuf class pair given for an endpoint with msgspec/dataclass/pydantic types (the seam
  a ``.proto`` generator fills): protobuf on the wire, converted through JSON to the handler's
  types, validated as mucp validates them;
* msgspec/dataclass/pydantic types with messages generated from them
  (:mod:`micro.grpc._protogen`, what the server does by default): protobuf on the wire in
  the generated messages (what reflection describes and ``micro proto`` prints), and
  ``application/grpc+json`` for a client that says it sends JSON;
* anything else: ``application/grpc+json``, the body being what micro's JSON codec makes of
  the value, with the same validation and 400-naming-the-field errors as mucp.

A client that sends JSON to a protobuf endpoint (``micro call``, ``micro.Client`` with plain
dicts) says so in the ``micro-content-type`` metadata; the endpoint then reads and answers
protobuf's JSON mapping.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any

from micro.codec import Codec, lookup
from micro.codec._types import is_proto_class, is_proto_message
from micro.errors import CodecError
from micro.server.handler import NO_REQUEST, EndpointSpec

__all__ = ["CONTENT_KEY", "GRPC_JSON", "GRPC_PROTO", "Wire", "pick_codec"]

GRPC_PROTO = "application/grpc"
GRPC_JSON = "application/grpc+json"
CONTENT_KEY = "micro-content-type"
PROTO_TYPES = frozenset(
    {GRPC_PROTO, "application/grpc+proto", "application/protobuf", "application/x-protobuf"}
)

ProtoPair = tuple[type, type]
Generated = tuple[Callable[[bytes], Any], Callable[[Any], bytes]]
"""An endpoint's generated messages: (request bytes -> request value, response -> bytes)."""


def _strip(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def pick_codec(content_type: str, body: Any, response_type: Any) -> tuple[Codec, bool]:
    """The codec a client encodes with, and whether it is protobuf."""
    proto = content_type in PROTO_TYPES or is_proto_message(body) or is_proto_class(response_type)
    return lookup("application/protobuf" if proto else "application/json"), proto


class Wire:
    """Decodes one endpoint's requests and encodes its responses (bytes <-> values)."""

    __slots__ = (
        "_as_is",
        "_generated",
        "_json",
        "_proto",
        "_req_pb",
        "_rsp_pb",
        "content_type",
        "spec",
    )

    def __init__(
        self,
        spec: EndpointSpec,
        pair: ProtoPair | None = None,
        generated: Generated | None = None,
    ) -> None:
        self.spec = spec
        self._json = lookup("application/json")
        self._proto = lookup("application/protobuf")
        req, rsp = _strip(spec.request_type), _strip(spec.response_type)
        self._req_pb: Any = pair[0] if pair else (req if is_proto_class(req) else None)
        self._rsp_pb: Any = pair[1] if pair else (rsp if is_proto_class(rsp) else None)
        self._as_is = is_proto_class(req)  # the handler takes the protobuf message itself
        proto = self._req_pb is not None or self._rsp_pb is not None
        self._generated = None if proto else generated
        self.content_type = GRPC_PROTO if proto or self._generated else GRPC_JSON

    @property
    def proto(self) -> bool:
        return self.content_type == GRPC_PROTO

    def decode(self, data: bytes, *, json: bool = False) -> Any:
        """The handler's request from a frame's bytes.

        Raises:
            CodecError: the bytes do not decode into the request type (a 400).
        """
        spec = self.spec
        if spec.request_type is NO_REQUEST or (spec.optional and not data.strip()):
            return None
        target = spec.request_type
        pb = self._req_pb
        if pb is None:
            if self._generated is not None and not json:
                return self._generated[0](data)
            return self._json.decode(data, target)
        # protobuf's JSON mapping when the client sent JSON
        message = _from_json(data, pb) if json else self._proto.decode(data, pb)
        if self._as_is:
            return message
        return self._json.decode(_to_json(message), target)

    def encode(self, value: Any, *, json: bool = False) -> bytes:
        """A frame's bytes for one response value.

        Raises:
            CodecError: the value cannot be encoded.
        """
        pb = self._rsp_pb
        if pb is None:
            if self._generated is not None and not json:
                return self._generated[1](value)
            return self._json.encode(value)
        if type(value) is pb and not json:  # the common case, without the codec's checks
            try:
                data: bytes = value.SerializeToString()
            except Exception as exc:  # EncodeError: a proto2 message missing fields
                raise CodecError(f"cannot encode {pb.__qualname__}: {exc}") from None
            return data
        if value is None:
            value = pb()
        if not is_proto_message(value):
            value = _from_json(self._json.encode(value), pb)
        if json:
            return _to_json(value)
        return self._proto.encode(value)


def _to_json(message: Any) -> bytes:
    from google.protobuf import json_format

    text: str = json_format.MessageToJson(message, preserving_proto_field_name=True, indent=None)
    return text.encode()


def _from_json(data: bytes, pb: Any) -> Any:
    from google.protobuf import json_format

    try:
        return json_format.Parse(data, pb(), ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        raise CodecError(f"malformed JSON body for {pb.__name__}: {exc}") from None
