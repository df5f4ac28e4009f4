"""Sans-IO pieces of go-micro's HTTP broker protocol (docs/broker.md, "The HTTP broker").

A publication is ``POST /_sub?id=<subscriber node id>`` with ``Content-Type:
application/json`` and the body ``{"Header": {..., ":topic": "<topic>"}, "Body": "<base64>"}``
(Go field names; Go writes a nil map or slice as ``null``).
"""

from __future__ import annotations

import urllib.parse

import msgspec

from micro.errors import BadRequest
from micro.transport import Message

__all__ = [
    "BROADCAST",
    "BROKER_ID",
    "PATH",
    "SERVICE",
    "decode_publication",
    "encode_publication",
    "request_head",
    "subscriber_id",
]

SERVICE = "go.micro.http.broker"
"""The registry service go-micro v1.18+ registers every subscription under."""
LEGACY_PREFIX = "topic:"
"""go-micro v1.0 to v1.12 registered a subscription as service ``topic:<topic>``."""
BROADCAST = "ff.http.broadcast"
"""The version of a broadcast subscription (a queue subscription's version is the queue)."""
PATH = "/_sub"
BROKER_ID = "go.micro.broker"


class _Publication(msgspec.Struct):
    Header: dict[str, str] | None = None
    Body: bytes | None = None


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_Publication)


def encode_publication(topic: str, message: Message) -> bytes:
    """The JSON body of one publication."""
    header = dict(message.header)
    header[":topic"] = topic
    return _encoder.encode(_Publication(header, message.body))


def decode_publication(data: bytes) -> tuple[str, Message]:
    """``(topic, message)`` from a publication body; ``:topic`` is removed from the header.

    Raises:
        BadRequest: the body is not a publication.
    """
    try:
        pub = _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"not an HTTP broker publication: {exc}", id=BROKER_ID) from None
    header = pub.Header or {}
    topic = header.pop(":topic", "")
    return topic, Message(header, pub.Body or b"")


def subscriber_id(target: str) -> str:
    """The ``id`` query parameter of a request target (``/_sub?id=...``); "" when absent."""
    path, _, query = target.partition("?")
    if path != PATH:
        return ""
    values = urllib.parse.parse_qs(query).get("id")
    return values[0] if values else ""


def request_head(address: str, node_id: str) -> str:
    """The start of a publication request to ``node_id`` at ``address``, up to
    ``Content-Length: `` (the transport's encoder completes it)."""
    query = urllib.parse.urlencode({"id": node_id})
    return f"POST {PATH}?{query} HTTP/1.1\r\nHost: {address}\r\nContent-Length: "
