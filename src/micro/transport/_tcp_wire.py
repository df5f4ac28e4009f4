"""The ``tcp`` transport's frame codec, sans-IO: bytes in, frames out; frames in, bytes out.

The layout is documented in ``docs/protocol.md`` ("tcp transport"). Every frame is a
10-byte head, then ``length`` bytes of payload::

    length u32 | kind u8 | flags u8 | stream id u32 | payload

all integers big-endian. A message (headers + body) is one ``MESSAGE`` frame (header block
length u32, body length u32, the header block, the first body bytes), followed by ``DATA``
frames until the body's declared length has arrived. The header block is the UTF-8 text
``name NUL value NUL name NUL value`` (empty: no headers).

Nothing here touches a socket or the event loop; :class:`FrameDecoder` is fed whatever
arrived and returns whole frames as ``(kind, flags, stream_id, payload)`` tuples, raising
:class:`ProtocolError` on the first byte that breaks the format or a limit.
"""

from __future__ import annotations

import struct
from itertools import chain

_chain = chain.from_iterable

__all__ = [
    "ACK",
    "CLOSE",
    "DATA",
    "DEFAULT_MAX_FRAME",
    "DEFAULT_MAX_HEADER",
    "DEFAULT_WINDOW",
    "GOAWAY",
    "HEAD",
    "HELLO",
    "KIND_NAMES",
    "MAGIC",
    "MESSAGE",
    "MESSAGE_HEAD",
    "MIN_MAX_FRAME",
    "MIN_WINDOW",
    "OPEN",
    "PING",
    "RESET",
    "VERSION",
    "WINDOW",
    "FrameDecoder",
    "ProtocolError",
    "decode_goaway",
    "decode_hello",
    "decode_message_head",
    "decode_reset",
    "encode_frame",
    "encode_goaway",
    "encode_header_block",
    "encode_hello",
    "encode_reset",
    "parse_header_block",
]

# -- frame kinds ----------------------------------------------------------------------------
HELLO = 0  # id 0, first frame each way: MAGIC, version, max frame, initial window
OPEN = 1  # dialer: open stream id; listener: the same with ACK (accepted)
MESSAGE = 2  # the first frame of a message: sizes, header block, first body bytes
DATA = 3  # more body bytes of the message in progress on the stream
CLOSE = 4  # the sender is done with the stream (both directions)
RESET = 5  # the stream is aborted: code u16 + UTF-8 reason
WINDOW = 6  # u32 more bytes the sender of WINDOW is ready to receive on the stream
PING = 7  # id 0, 8 opaque bytes; answered with the same bytes and ACK
GOAWAY = 8  # id 0: last stream id u32, code u16, reason; no new streams on this connection

KIND_NAMES = {
    HELLO: "HELLO",
    OPEN: "OPEN",
    MESSAGE: "MESSAGE",
    DATA: "DATA",
    CLOSE: "CLOSE",
    RESET: "RESET",
    WINDOW: "WINDOW",
    PING: "PING",
    GOAWAY: "GOAWAY",
}

ACK = 0x01  # flag of OPEN and PING answers

MAGIC = b"MTCP"
VERSION = 1
DEFAULT_MAX_FRAME = 1024 * 1024  # the largest payload a peer accepts unless told otherwise
MIN_MAX_FRAME = 16 * 1024
DEFAULT_MAX_HEADER = 64 * 1024  # the largest header block
DEFAULT_WINDOW = 1024 * 1024  # bytes a stream may have in flight to its receiver
MIN_WINDOW = 64 * 1024

HEAD = struct.Struct("!IBBI")  # length, kind, flags, stream id
MESSAGE_HEAD = struct.Struct("!II")  # header block length, body length
_HELLO = struct.Struct("!4sBII")  # magic, version, max frame, window
_U32 = struct.Struct("!I")
_RESET = struct.Struct("!H")
_GOAWAY = struct.Struct("!IH")
_MESSAGE_FRAME = struct.Struct("!IBBIII")  # HEAD + MESSAGE_HEAD in one pack

HEAD_SIZE = HEAD.size
MESSAGE_HEAD_SIZE = MESSAGE_HEAD.size
U32 = _U32
MESSAGE_FRAME = _MESSAGE_FRAME


class ProtocolError(Exception):
    """The bytes break the frame format or a limit; the connection cannot continue."""


Frame = tuple[int, int, int, bytes]
"""``(kind, flags, stream_id, payload)``."""


def encode_frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One frame's bytes."""
    return HEAD.pack(len(payload), kind, flags, stream_id) + payload


def encode_hello(max_frame: int, window: int) -> bytes:
    """The HELLO frame announcing this side's limits."""
    return encode_frame(HELLO, 0, 0, _HELLO.pack(MAGIC, VERSION, max_frame, window))


def decode_hello(payload: bytes) -> tuple[int, int]:
    """``(max_frame, window)`` of a peer's HELLO.

    Raises:
        ProtocolError: not a HELLO of this protocol, another version, or limits too small.
    """
    if len(payload) < _HELLO.size:
        raise ProtocolError(f"HELLO of {len(payload)} bytes, want {_HELLO.size}")
    magic, version, max_frame, window = _HELLO.unpack_from(payload)
    if magic != MAGIC:
        raise ProtocolError(f"not a micro tcp peer (HELLO magic {magic!r})")
    if version != VERSION:
        raise ProtocolError(f"protocol version {version}, this side speaks {VERSION}")
    if max_frame < MIN_MAX_FRAME or window < MIN_WINDOW:
        raise ProtocolError(
            f"peer limits too small (max frame {max_frame} < {MIN_MAX_FRAME} "
            f"or window {window} < {MIN_WINDOW})"
        )
    return max_frame, window


def encode_reset(stream_id: int, code: int, reason: str) -> bytes:
    return encode_frame(RESET, 0, stream_id, _RESET.pack(code) + reason.encode()[:1024])


def decode_reset(payload: bytes) -> tuple[int, str]:
    """``(code, reason)``; a payload too short for a code reads as code 0."""
    if len(payload) < _RESET.size:
        return 0, ""
    (code,) = _RESET.unpack_from(payload)
    return code, payload[_RESET.size :].decode("utf-8", "replace")


def encode_goaway(last_id: int, code: int, reason: str) -> bytes:
    return encode_frame(GOAWAY, 0, 0, _GOAWAY.pack(last_id, code) + reason.encode()[:1024])


def decode_goaway(payload: bytes) -> tuple[int, int, str]:
    """``(last_id, code, reason)``.

    Raises:
        ProtocolError: the payload is too short.
    """
    if len(payload) < _GOAWAY.size:
        raise ProtocolError(f"GOAWAY of {len(payload)} bytes, want at least {_GOAWAY.size}")
    last_id, code = _GOAWAY.unpack_from(payload)
    return last_id, code, payload[_GOAWAY.size :].decode("utf-8", "replace")


def encode_header_block(header: dict[str, str]) -> bytes:
    """``name NUL value NUL ...`` as UTF-8.

    Raises:
        ValueError: a name is empty, or a name or value holds a NUL character.
    """
    if not header:
        return b""
    text = "\0".join(_chain(header.items()))
    if text.count("\0") != 2 * len(header) - 1:
        raise ValueError("a header name or value holds a NUL character")
    if "" in header:
        raise ValueError("a header name is empty")
    return text.encode("utf-8", "surrogateescape")


def parse_header_block(block: bytes) -> dict[str, str]:
    """The headers of a block (a repeated name keeps its first value).

    Raises:
        ProtocolError: an odd number of fields, or an empty name.

    Bytes that are not UTF-8 come through as surrogates (``surrogateescape``), as in the
    http transport, so the server can answer them with a proper error.
    """
    if not block:
        return {}
    parts = block.decode("utf-8", "surrogateescape").split("\0")
    if len(parts) % 2:
        raise ProtocolError("header block has a name without a value")
    header = dict(zip(parts[::2], parts[1::2], strict=True))
    if len(header) * 2 != len(parts):  # a repeated name: its first value wins
        header = {}
        for i in range(0, len(parts), 2):
            header.setdefault(parts[i], parts[i + 1])
    if "" in header:
        raise ProtocolError("header block has an empty name")
    return header


def decode_message_head(payload: bytes, max_header: int) -> tuple[int, int]:
    """``(header block length, body length)`` of a MESSAGE frame's payload.

    Raises:
        ProtocolError: the payload is too short for its sizes, or the block is over
            ``max_header``.
    """
    if len(payload) < MESSAGE_HEAD_SIZE:
        raise ProtocolError(f"MESSAGE frame of {len(payload)} bytes has no sizes")
    block_len, body_len = MESSAGE_HEAD.unpack_from(payload)
    if block_len > max_header:
        raise ProtocolError(f"header block of {block_len} bytes is over the limit {max_header}")
    if MESSAGE_HEAD_SIZE + block_len > len(payload):
        raise ProtocolError("MESSAGE frame shorter than its header block")
    if len(payload) - MESSAGE_HEAD_SIZE - block_len > body_len:
        raise ProtocolError("MESSAGE frame holds more body than it declares")
    return block_len, body_len


class FrameDecoder:
    """Feed bytes, get whole frames.

    Args:
        max_frame: the largest payload accepted; a longer frame is a :class:`ProtocolError`
            raised as soon as its head arrives (before its payload is buffered).

    After a :class:`ProtocolError` the decoder is broken: every later ``feed`` raises again.
    """

    __slots__ = ("_buf", "_error", "max_frame")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._error: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet make a whole frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        """The frames ``data`` completes, in order.

        Raises:
            ProtocolError: an unknown kind, or a payload over ``max_frame``.
        """
        if self._error is not None:
            raise self._error
        buf = self._buf
        if buf:
            buf += data
            view: bytes | bytearray = buf
        else:
            view = data
        frames: list[Frame] = []
        pos = 0
        end = len(view)
        unpack = HEAD.unpack_from
        max_frame = self.max_frame
        while end - pos >= HEAD_SIZE:
            length, kind, flags, stream_id = unpack(view, pos)
            if length > max_frame:
                self._fail(f"frame of {length} bytes is over the limit {max_frame}")
            if kind > GOAWAY:
                self._fail(f"unknown frame kind {kind}")
            stop = pos + HEAD_SIZE + length
            if stop > end:
                break
            frames.append((kind, flags, stream_id, bytes(view[pos + HEAD_SIZE : stop])))
            pos = stop
        if buf:
            del buf[:pos]
        elif pos < end:
            buf += data[pos:]
        return frames

    def _fail(self, reason: str) -> None:
        self._error = ProtocolError(reason)
        self._buf.clear()
        raise self._error
