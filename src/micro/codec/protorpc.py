"""``application/proto-rpc``: go-micro's legacy netstring envelope around a protobuf body.

A message is two netstrings, each a 4-byte big-endian length then that many bytes: first a
header, then the protobuf body (length 0 for none). The header is a protobuf message of
go-micro's ``protorpc`` package::

    message Request  { optional string service_method = 1; optional fixed64 seq = 2; }
    message Response { optional string service_method = 1; optional fixed64 seq = 2;
                       optional string error = 3; }

Those three fields are read and written here directly (no generated classes, no protobuf
import for the envelope). Events are bare protobuf, as with ``application/protobuf``.
"""

from __future__ import annotations

import struct

from micro.codec import Envelope, EnvelopeCodec
from micro.codec.proto import ProtoCodec
from micro.errors import CodecError

__all__ = ["ProtoRpcCodec", "read_header", "write_header"]

_SIZE = struct.Struct(">I")
_FIXED64 = struct.Struct("<Q")
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def write_header(method: str, seq: int, error: str | None) -> bytes:
    """The Request (``error`` None) or Response header message."""
    name = method.encode()
    out = b"\x0a" + _varint(len(name)) + name + b"\x11" + _FIXED64.pack(seq)
    if error is not None:
        text = error.encode()
        out += b"\x1a" + _varint(len(text)) + text
    return out


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise CodecError("malformed proto-rpc header: bad varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def read_header(data: bytes) -> tuple[str, int, str]:
    """``(service_method, seq, error)`` of a header message; unknown fields are skipped.

    Raises:
        CodecError: the bytes are no protobuf message of that shape.
    """
    method, seq, error, at = "", 0, "", 0
    while at < len(data):
        key, at = _read_varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            _, at = _read_varint(data, at)
        elif wire == _I64:
            if at + 8 > len(data):
                raise CodecError("malformed proto-rpc header: truncated fixed64")
            if number == 2:
                (seq,) = _FIXED64.unpack_from(data, at)
            at += 8
        elif wire == _LEN:
            size, at = _read_varint(data, at)
            if at + size > len(data):
                raise CodecError("malformed proto-rpc header: truncated field")
            if number in (1, 3):
                try:
                    text = data[at : at + size].decode()
                except UnicodeDecodeError:
                    raise CodecError("malformed proto-rpc header: invalid UTF-8") from None
                method, error = (text, error) if number == 1 else (method, text)
            at += size
        elif wire == _I32:
            at += 4
        else:
            raise CodecError(f"malformed proto-rpc header: wire type {wire}")
    if at != len(data):
        raise CodecError("malformed proto-rpc header: truncated field")
    return method, seq, error


def _netstrings(data: bytes) -> tuple[bytes, bytes]:
    view = memoryview(data)
    parts = []
    for _ in range(2):
        if len(view) < 4:
            raise CodecError("malformed proto-rpc envelope: truncated length")
        (size,) = _SIZE.unpack_from(view)
        if len(view) < 4 + size:
            raise CodecError(f"malformed proto-rpc envelope: {size} bytes announced")
        parts.append(bytes(view[4 : 4 + size]))
        view = view[4 + size :]
    if len(view):
        raise CodecError(f"malformed proto-rpc envelope: {len(view)} bytes after the body")
    return parts[0], parts[1]


def _seq(text: str) -> int:
    """go-micro's id(): a decimal id, else 0."""
    try:
        return int(text) & 0xFFFFFFFFFFFFFFFF
    except ValueError:
        return 0


class ProtoRpcCodec(EnvelopeCodec):
    """proto-rpc envelopes (``application/proto-rpc``)."""

    content_type = "application/proto-rpc"
    name = "proto-rpc"

    def __init__(self) -> None:
        self.inner = ProtoCodec()

    def pack(self, envelope: Envelope, *, response: bool) -> bytes:
        error = envelope.error if response else None
        header = write_header(envelope.method, _seq(envelope.id), error)
        body = b"" if envelope.error else bytes(envelope.body)
        return _SIZE.pack(len(header)) + header + _SIZE.pack(len(body)) + body

    def unpack(self, data: bytes, *, response: bool) -> Envelope:
        header, body = _netstrings(data)
        method, seq, error = read_header(header)
        if not response and not method:
            raise CodecError("malformed proto-rpc envelope: no service_method")
        return Envelope(method, str(seq), body, error)
