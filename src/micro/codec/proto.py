"""``application/protobuf``: the body is the raw protobuf encoding of one message.

As go-micro's ``proto`` codec: no length prefix, one message per transport message. Decoding
needs the generated message class (the bytes do not say what they are); decoding into
``bytes`` hands the body over untouched, and encoding accepts raw bytes too, so a proxy can
pass protobuf bodies along without their classes. Requires the ``protobuf`` package
(``pip install 'pymicro-toolkit[proto]'``), which is imported only when a message is seen.
"""

from __future__ import annotations

from typing import Any

from micro.codec import Buffer, Codec
from micro.codec._types import is_proto_class, is_proto_message
from micro.errors import CodecError

__all__ = ["ProtoCodec"]

_RAW = (bytes, bytearray, memoryview)


class ProtoCodec(Codec):
    """Protobuf bodies (``application/protobuf``, alias ``application/x-protobuf``)."""

    content_type = "application/protobuf"
    name = "proto"

    def carries(self, tp: Any) -> bool:
        return tp is Any or tp is object or tp is bytes or tp is bytearray or is_proto_class(tp)

    def encode(self, obj: Any) -> bytes:
        if is_proto_message(obj):
            try:
                data: bytes = obj.SerializeToString()
            except Exception as exc:  # e.g. EncodeError for a proto2 message missing fields
                raise CodecError(f"cannot encode {type(obj).__qualname__}: {exc}") from None
            return data
        if isinstance(obj, _RAW):
            return bytes(obj)
        raise CodecError(
            f"application/protobuf needs a protobuf message to encode, got {type(obj).__qualname__}"
        )

    def decode(self, data: Buffer, type: Any = Any) -> Any:
        if is_proto_class(type):
            try:
                return type.FromString(bytes(data) if isinstance(data, memoryview) else data)
            except Exception as exc:  # DecodeError, or RuntimeError from some backends
                raise CodecError(f"malformed protobuf body for {type.__name__}: {exc}") from None
        if type is bytes:
            return bytes(data)
        if type is bytearray:
            return bytearray(data)
        name = getattr(type, "__qualname__", None) or repr(type)
        raise CodecError(
            f"application/protobuf decodes only into a protobuf message class (or bytes), "
            f"not {name}"
        )
