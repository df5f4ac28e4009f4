"""go-micro's legacy envelopes at the server: json-rpc and proto-rpc requests.

go-micro v0.x clients (and v1 clients calling a node without ``protocol`` metadata) send
``application/json-rpc`` or ``application/proto-rpc`` bodies and may send no ``Micro-*``
routing headers at all: the method is in the envelope. The router takes the envelope off
(:func:`unwrap`), serves the inner request as a plain JSON or protobuf one, and the
:class:`EnvelopeSocket` it answers through puts the reply (or the error text) back in an
envelope of the same kind.
"""

from __future__ import annotations

from micro.codec import Envelope, EnvelopeCodec
from micro.transport import Message, Socket

__all__ = ["EnvelopeSocket", "unwrap"]

_ROUTING = ("Micro-Endpoint", "Micro-Method", "X-Micro-Endpoint", "X-Micro-Method")


def unwrap(message: Message, codec: EnvelopeCodec) -> tuple[Message, Envelope]:
    """The inner request of an enveloped one, and its envelope.

    The routing headers, when the client sent none, come from the envelope's method, and
    ``Micro-Id`` from its id.

    Raises:
        CodecError: the body is no well-formed envelope.
    """
    envelope = codec.unpack(message.body, response=False)
    header = dict(message.header)
    header["Content-Type"] = codec.inner.content_type
    if not any(header.get(name) for name in _ROUTING):
        header["Micro-Endpoint"] = header["Micro-Method"] = envelope.method
    if envelope.id and not (header.get("Micro-Id") or header.get("X-Micro-Id")):
        header["Micro-Id"] = envelope.id
    return Message(header, envelope.body), envelope


class EnvelopeSocket(Socket):
    """The served socket, seen through an envelope: what is sent goes out enveloped."""

    def __init__(self, sock: Socket, codec: EnvelopeCodec, envelope: Envelope) -> None:
        self._sock = sock
        self._codec = codec
        self._envelope = envelope
        self.local, self.remote = sock.local, sock.remote

    async def send(self, message: Message) -> None:
        header = dict(message.header)
        header["Content-Type"] = self._codec.content_type
        error = header.get("Micro-Error", "")
        reply = self._envelope._replace(body=message.body, error=error)
        await self._sock.send(Message(header, self._codec.pack(reply, response=True)))

    async def recv(self) -> Message:
        return await self._sock.recv()

    async def close(self) -> None:
        await self._sock.close()

    @property
    def closed(self) -> bool:
        return self._sock.closed
