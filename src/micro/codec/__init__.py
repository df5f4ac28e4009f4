"""Codec: turns request and response objects into body bytes, chosen by content type.

    application/json          JsonCodec (msgspec; the default)
    application/msgpack       MsgpackCodec
    application/protobuf      ProtoCodec (protobuf message classes)
    application/octet-stream  BytesCodec (the body untouched)

``decode(data, type)`` validates against ``type``: a msgspec Struct, a dataclass, a TypedDict,
a ``dict``, a pydantic model (when pydantic is installed) or a protobuf message class. A
body that does not fit raises :class:`CodecError` (a 400), whose detail says where.
"""

from __future__ import annotations

import abc
from typing import Any

from micro.errors import CodecError

__all__ = ["DEFAULT_CONTENT_TYPE", "Codec", "CodecError", "lookup", "register", "supported"]

DEFAULT_CONTENT_TYPE = "application/json"


class Codec(abc.ABC):
    """Encodes and decodes message bodies of one content type. Stateless, shareable."""

    content_type: str = ""
    name: str = ""

    @abc.abstractmethod
    def encode(self, obj: Any) -> bytes:
        """Encode ``obj``.

        Raises:
            CodecError: the object cannot be encoded by this codec.
        """

    @abc.abstractmethod
    def decode(self, data: bytes, type: Any = Any) -> Any:
        """Decode ``data`` into an instance of ``type`` (``Any``: plain builtins).

        Raises:
            CodecError: the data is malformed or does not match ``type``.
        """


_codecs: dict[str, Codec] = {}


def register(codec: Codec, *aliases: str) -> None:
    """Make ``codec`` serve its content type (and ``aliases``)."""
    for content_type in (codec.content_type, *aliases):
        _codecs[content_type] = codec


def _load_builtin() -> None:
    from micro.codec import bytes as bytes_codec
    from micro.codec import json as json_codec
    from micro.codec import msgpack as msgpack_codec
    from micro.codec import proto as proto_codec

    register(json_codec.JsonCodec())
    register(msgpack_codec.MsgpackCodec(), "application/x-msgpack")
    register(proto_codec.ProtoCodec(), "application/x-protobuf")
    register(bytes_codec.BytesCodec())


def lookup(content_type: str) -> Codec:
    """The codec for a ``Content-Type`` value (parameters such as charset are ignored).

    Raises:
        CodecError: no codec serves that content type (the message lists the known ones).
    """
    if not _codecs:
        _load_builtin()
    key = content_type.partition(";")[0].strip().lower() or DEFAULT_CONTENT_TYPE
    codec = _codecs.get(key)
    if codec is None:
        known = ", ".join(sorted(_codecs))
        raise CodecError(f"Unsupported Content-Type: {content_type} (known: {known})")
    return codec


def supported() -> list[str]:
    """The content types with a codec."""
    if not _codecs:
        _load_builtin()
    return sorted(_codecs)
