"""``application/octet-stream``: the body passed through untouched (go-micro's ``bytes``).

Encoding takes ``bytes``, ``bytearray``, ``memoryview``, or ``str`` (written as UTF-8);
decoding gives ``bytes`` (or ``bytearray``, or ``str`` when the data is valid UTF-8).
"""

from __future__ import annotations

from typing import Any

from micro.codec import Buffer, Codec
from micro.errors import CodecError

__all__ = ["BytesCodec"]

_CARRIED = (Any, object, bytes, bytearray, str)


class BytesCodec(Codec):
    """Opaque bodies (``application/octet-stream``)."""

    content_type = "application/octet-stream"
    name = "bytes"

    def carries(self, tp: Any) -> bool:
        return tp in _CARRIED

    def encode(self, obj: Any) -> bytes:
        if isinstance(obj, bytes):
            return obj
        if isinstance(obj, bytearray | memoryview):
            return bytes(obj)
        if isinstance(obj, str):
            return obj.encode()
        raise CodecError(
            f"application/octet-stream encodes bytes or str, got {type(obj).__qualname__}"
        )

    def decode(self, data: Buffer, type: Any = Any) -> Any:
        if type is Any or type is bytes or type is object:
            return data if isinstance(data, bytes) else bytes(data)
        if type is bytearray:
            return bytearray(data)
        if type is str:
            try:
                return bytes(data).decode()
            except UnicodeDecodeError as exc:
                raise CodecError(f"body is not valid UTF-8: {exc}") from None
        name = getattr(type, "__qualname__", None) or repr(type)
        raise CodecError(f"application/octet-stream decodes into bytes or str, not {name}")
