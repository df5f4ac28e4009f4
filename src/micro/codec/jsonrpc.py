"""``application/json-rpc``: go-micro's legacy JSON-RPC 1.0 envelope around a JSON body.

A request is ``{"method": "Handler.Method", "params": [<request>], "id": <id>}``; a response
``{"id": "<id>", "result": <response>, "error": null}``, or with the error's text and a
``null`` result. go-micro v1 servers answer the id as a string and end the document with a
newline; so does this codec. Events (publications) are bare JSON, as with
``application/json``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from micro.codec import Envelope, EnvelopeCodec
from micro.codec.json import JsonCodec
from micro.errors import CodecError

__all__ = ["JsonRpcCodec"]


class _Request(msgspec.Struct):
    method: str
    params: list[msgspec.Raw] | None = None
    id: Any = None


class _Response(msgspec.Struct):
    id: Any = None
    result: msgspec.Raw = msgspec.Raw(b"null")
    error: str | None = None


_requests = msgspec.json.Decoder(_Request)
_responses = msgspec.json.Decoder(_Response)
_encode = msgspec.json.Encoder().encode
_NULL = b"null"


def _id_text(value: Any) -> str:
    """go-micro's ``fmt.Sprintf("%v", id)``: numbers and strings as they read."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _raw_id(text: str) -> msgspec.Raw:
    """A request id back as JSON: a number when it is one, else a string."""
    return msgspec.Raw(text.encode() if text.isdigit() else _encode(text))


class JsonRpcCodec(EnvelopeCodec):
    """JSON-RPC envelopes (``application/json-rpc``)."""

    content_type = "application/json-rpc"
    name = "json-rpc"

    def __init__(self) -> None:
        self.inner = JsonCodec()

    def pack(self, envelope: Envelope, *, response: bool) -> bytes:
        body = bytes(envelope.body).strip() or _NULL
        if not response:
            return _encode(
                {
                    "method": envelope.method,
                    "params": [msgspec.Raw(body)],
                    "id": _raw_id(envelope.id),
                }
            )
        error = envelope.error or None
        result = _NULL if error else body
        return _encode({"id": envelope.id, "result": msgspec.Raw(result), "error": error}) + b"\n"

    def unpack(self, data: bytes, *, response: bool) -> Envelope:
        try:
            if response:
                rsp = _responses.decode(data)
                body = bytes(rsp.result)
                return Envelope(
                    "", _id_text(rsp.id), b"" if body == _NULL else body, rsp.error or ""
                )
            req = _requests.decode(data)
        except msgspec.DecodeError as exc:
            raise CodecError(f"malformed json-rpc envelope: {exc}") from None
        if not req.method:
            raise CodecError("malformed json-rpc envelope: no method")
        params = req.params or []
        if len(params) > 1:
            raise CodecError(f"json-rpc params must hold one request, got {len(params)}")
        body = bytes(params[0]) if params else b""
        return Envelope(req.method, _id_text(req.id), b"" if body == _NULL else body)
