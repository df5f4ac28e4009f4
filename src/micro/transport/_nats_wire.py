"""What the nats transport puts on the wire: go-plugins' JSON body plus micro's NATS headers.

A transport message is the NATS message body, encoded as go-plugins v1 encodes
``transport.Message`` with its JSON codec: ``{"Header": {...}, "Body": "<base64>"}``. What
micro adds travels in NATS headers, which a Go peer never reads: :data:`CONTROL` names what a
message is (absent on a Go peer's messages), :data:`INBOX` the dialer's inbox in an ``open``,
and :data:`PART` (``i/n``) each piece of a message cut to fit the server's ``max_payload``.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import msgspec

from micro.errors import BadRequest
from micro.transport import Message

__all__ = [
    "ACK",
    "CLOSE",
    "CONTROL",
    "DATA",
    "INBOX",
    "OPEN",
    "PART",
    "PING",
    "decode",
    "encode",
    "encoded_limit",
    "is_no_responders",
    "split",
]

CONTROL = "Micro-Nats"
INBOX = "Micro-Nats-Inbox"
PART = "Micro-Nats-Part"

DATA = "1"  # a transport message from a micro peer
OPEN = "open"  # dialer -> listener subject: a new connection (reply: <inbox>.p)
ACK = "ack"  # listener -> <inbox>.p: accepted; its reply subject is the connection's own
PING = "ping"  # "are you there": a "no responders" answer means the peer is gone
CLOSE = "close"  # either side: the connection is closed

HEADER_ROOM = 64 * 1024  # what a message's headers may add to its encoded body


class _Wire(msgspec.Struct, forbid_unknown_fields=True):
    """The layout exactly as go-plugins writes it; anything else takes :func:`_decode_loose`."""

    Header: dict[str, str] | None
    Body: bytes | None  # msgspec reads and writes bytes as standard, padded base64


_encode_wire = msgspec.json.Encoder().encode
_decode_wire = msgspec.json.Decoder(_Wire).decode


def encode(message: Message) -> bytes:
    """go-plugins' JSON layout: ``Header`` (string map) and ``Body`` (standard base64)."""
    return _encode_wire(_Wire(message.header, message.body))


def decode(data: bytes) -> Message:
    """The message in a NATS body.

    Raises:
        BadRequest: not go-plugins' JSON layout.
    """
    try:
        wire = _decode_wire(data)
    except msgspec.DecodeError:  # other key case, non-string values, bad base64...
        return _decode_loose(data)
    return Message(wire.Header if wire.Header is not None else {}, wire.Body or b"")


def _decode_loose(data: bytes) -> Message:
    """What a Go peer may also send (keys in any case, as Go's decoder reads them)."""
    try:
        raw: Any = json.loads(data)
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        # Go's decoder matches keys case-insensitively; take what a Go peer may send
        fields = {str(k).lower(): v for k, v in raw.items()}
        header = fields.get("header") or {}
        body = fields.get("body") or ""
        if not isinstance(header, dict) or not isinstance(body, str):
            raise ValueError("Header must be an object and Body a string")
        return Message(
            {str(k): str(v) for k, v in header.items()},
            base64.b64decode(body, validate=True),
        )
    except (ValueError, binascii.Error) as exc:
        raise BadRequest(
            f"a NATS transport message is not {{Header, Body}} JSON: {exc}",
            id="go.micro.transport",
        ) from None


def encoded_limit(max_body: int) -> int:
    """The largest encoded message a ``max_body`` allows (base64 plus header room)."""
    return 4 * ((max_body + 2) // 3) + HEADER_ROOM


def split(data: bytes, size: int) -> list[bytes]:
    """``data`` cut into pieces of at most ``size`` bytes (one piece when it fits)."""
    if len(data) <= size:
        return [data]
    return [data[i : i + size] for i in range(0, len(data), size)]


def is_no_responders(headers: dict[str, str] | None) -> bool:
    """The server's "no responders" status: nothing subscribes to the subject published to."""
    return bool(headers) and headers.get("Status") == "503"  # type: ignore[union-attr]
