"""Codec: turns request and response objects into body bytes, chosen by content type.

    application/json          JsonCodec (msgspec; the default)
    application/msgpack       MsgpackCodec
    application/protobuf      ProtoCodec (protobuf message classes)
    application/octet-stream  BytesCodec (the body untouched)
    application/json-rpc      JsonRpcCodec (go-micro's legacy JSON-RPC envelope)
    application/proto-rpc     ProtoRpcCodec (go-micro's legacy netstring envelope)

``decode(data, type)`` validates against ``type``: a msgspec Struct, a dataclass, a TypedDict,
a ``dict``, a pydantic model (when pydantic is installed) or a protobuf message class. A
body that does not fit raises :class:`CodecError` (a 400), whose detail says where. An empty
body decodes as an empty object (``{}``), as go-micro clients send for an empty request.
Endpoint schemas for the registry come from :mod:`micro.codec.schema`.

The legacy codecs are envelope codecs (:class:`EnvelopeCodec`): a request's or response's
body is an envelope that carries the method, a sequence id and (for responses) the error
beside the inner body; events and the inner bodies are bare JSON or protobuf, as in go-micro.
"""

from __future__ import annotations

import abc
from typing import Any, NamedTuple

from micro.errors import CodecError

__all__ = [
    "DEFAULT_CONTENT_TYPE",
    "Buffer",
    "Codec",
    "CodecError",
    "Envelope",
    "EnvelopeCodec",
    "lookup",
    "register",
    "supported",
]

DEFAULT_CONTENT_TYPE = "application/json"

Buffer = bytes | bytearray | memoryview
"""What the built-in codecs' ``decode`` takes (micro itself only ever passes ``bytes``)."""


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

    def carries(self, tp: Any) -> bool:
        """Whether values of type ``tp`` can go through this codec at all.

        False only when they surely cannot (a msgspec Struct in protobuf): the server then
        answers 400, naming the content types the endpoint speaks, without calling the
        handler. The default is True: whether a value encodes is found out when it is.
        """
        return True


class Envelope(NamedTuple):
    """What a legacy RPC envelope carries around its inner body."""

    method: str  # Handler.Method
    id: str  # the sequence number, as go-micro carries it in Micro-Id
    body: bytes  # the inner body (JSON or protobuf); empty for none
    error: str = ""  # a response's error text ("" for success)


class EnvelopeCodec(Codec):
    """A codec whose RPC bodies are envelopes (go-micro's json-rpc and proto-rpc).

    ``encode``/``decode`` handle the bare inner body (events are sent bare, and the server
    decodes a request's inner body with them); ``pack``/``unpack`` add and take off the
    envelope. Envelopes are sans-IO: bytes in, bytes out.
    """

    inner: Codec

    def encode(self, obj: Any) -> bytes:
        return self.inner.encode(obj)

    def decode(self, data: bytes, type: Any = Any) -> Any:
        return self.inner.decode(data, type)

    def carries(self, tp: Any) -> bool:
        return self.inner.carries(tp)

    @abc.abstractmethod
    def pack(self, envelope: Envelope, *, response: bool) -> bytes:
        """The envelope as bytes (a request's, or with ``response`` a response's)."""

    @abc.abstractmethod
    def unpack(self, data: bytes, *, response: bool) -> Envelope:
        """Read an envelope.

        Raises:
            CodecError: the bytes are no well-formed envelope (a 400 at the server).
        """


_codecs: dict[str, Codec] = {}
_builtin_loaded = False


def register(codec: Codec, *aliases: str) -> None:
    """Make ``codec`` serve its content type (and ``aliases``), replacing any built-in one."""
    _ensure_builtin()
    for content_type in (codec.content_type, *aliases):
        _codecs[content_type.lower()] = codec


def _ensure_builtin() -> None:
    global _builtin_loaded
    if _builtin_loaded:
        return
    _builtin_loaded = True
    from micro.codec import bytes as bytes_codec
    from micro.codec import json as json_codec
    from micro.codec import jsonrpc, protorpc
    from micro.codec import msgpack as msgpack_codec
    from micro.codec import proto as proto_codec

    builtin: list[tuple[Codec, tuple[str, ...]]] = [
        (json_codec.JsonCodec(), ()),
        (msgpack_codec.MsgpackCodec(), ("application/x-msgpack",)),
        (proto_codec.ProtoCodec(), ("application/x-protobuf",)),
        (bytes_codec.BytesCodec(), ()),
        (jsonrpc.JsonRpcCodec(), ()),
        (protorpc.ProtoRpcCodec(), ()),
    ]
    for codec, aliases in builtin:
        for content_type in (codec.content_type, *aliases):
            _codecs.setdefault(content_type, codec)


def lookup(content_type: str) -> Codec:
    """The codec for a ``Content-Type`` value (parameters such as charset are ignored).

    An empty value means :data:`DEFAULT_CONTENT_TYPE`.

    Raises:
        CodecError: no codec serves that content type (the message lists the known ones).
    """
    codec = _codecs.get(content_type)  # the common case: a bare, known content type
    if codec is not None:
        return codec
    _ensure_builtin()
    key = content_type.partition(";")[0].strip().lower() or DEFAULT_CONTENT_TYPE
    codec = _codecs.get(key)
    if codec is None:
        known = ", ".join(sorted(_codecs))
        raise CodecError(f"Unsupported Content-Type: {content_type} (known: {known})")
    return codec


def supported() -> list[str]:
    """The content types with a codec."""
    _ensure_builtin()
    return sorted(_codecs)
