"""A stand-in for a go-micro v1.0 greeter behind its HTTP transport, for the client's interop
tests; docs/protocol.md describes what a real one sends.

What it keeps of v1.0's server: every answer is ``HTTP/1.1 200 OK`` repeating the request's
headers, written in small pieces; a JSON body ends with a newline, a protobuf body is the
raw encoding of the message (``application/protobuf``); a handler error travels in
``Micro-Error`` and ``X-Micro-Error`` over an empty body, an unknown method as the plain text
``rpc: can't find method X``; and **after any error answer the server closes the
connection** (v1.0's connection loop returns). Endpoints:

- ``Say.Hello``: ``{"msg": "Hello <name>"}`` (JSON or protobuf, as asked);
- ``Say.Fail``: ``400 bad name "<name>"``, then close;
- ``Say.Drop``: reads the request, then closes without answering (a server that died
  holding the call);
- streams, answered from the opening message: ``Say.Stream`` sends three messages and ends
  as v1.0 does, by closing (it keeps reading what the client still sends, so that the
  close reaches the client as an orderly one whatever the client does after);
  ``Say.Reset`` sends one message and half of the next, then resets the connection;
  ``Say.Cut`` does the same but closes in order;
- any other method: the plain-text error, then close.

``keep_alive=False`` adds ``Connection: close`` to every answer but leaves the connection
open (the client must honour the header itself); ``http10`` answers ``HTTP/1.0`` without
keep-alive, also leaving the connection open.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from dataclasses import dataclass, field

GREETER = "go.micro.srv.greeter"
NODE_METADATA = {
    "broker": "http",
    "protocol": "mucp",
    "registry": "mdns",
    "server": "rpc",
    "transport": "http",
}
"""What a go-micro v1.0 node advertises (docs/protocol.md)."""

STREAMS = frozenset({"Say.Stream", "Say.Reset", "Say.Cut"})


# --------------------------------------------------------------------------- protobuf wire


def varint(n: int) -> bytes:
    """Protobuf's base-128 varint, low groups first."""
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if not n:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


def string_field(number: int, text: str) -> bytes:
    """A proto3 ``string`` field: key (number << 3 | wire type 2), length, UTF-8 bytes.
    proto3 leaves an empty string out."""
    data = text.encode()
    return b"" if not data else varint(number << 3 | 2) + varint(len(data)) + data


def read_string_field(body: bytes, number: int) -> str:
    """The last value of string field ``number`` in a flat message of length-delimited
    fields (the greeter's messages have nothing else)."""
    found, i = "", 0
    while i < len(body):
        key, i = _read_varint(body, i)
        assert key & 7 == 2, f"wire type {key & 7} in a greeter message"
        size, i = _read_varint(body, i)
        if key >> 3 == number:
            found = body[i : i + size].decode()
        i += size
    return found


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        byte = data[i]
        i += 1
        n |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return n, i


# --------------------------------------------------------------------------- the server


@dataclass
class Request:
    header: dict[str, str]
    body: bytes

    @property
    def endpoint(self) -> str:
        return self.header.get("Micro-Endpoint") or self.header.get("Micro-Method", "")

    @property
    def content_type(self) -> str:
        return self.header.get("Content-Type", "application/protobuf")


@dataclass
class GoV1Greeter:
    keep_alive: bool = True
    http10: bool = False
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    address: str = ""
    _server: asyncio.Server | None = None
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def start(self) -> GoV1Greeter:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        host, port = self._server.sockets[0].getsockname()[:2]
        self.address = f"{host}:{port}"
        return self

    async def close(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def received(self, endpoint: str) -> int:
        return sum(1 for r in self.requests if r.endpoint == endpoint)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        try:
            while (request := await read_request(reader)) is not None:
                self.requests.append(request)
                if not await self._answer(request, reader, writer):
                    break
        finally:
            if not writer.transport.is_closing():
                writer.close()

    async def _answer(
        self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; False when the connection is to close after it (as v1.0's
        connection loop returns after any error)."""
        endpoint = request.endpoint
        if endpoint == "Say.Hello":
            name = decode_name(request)
            await self._write(writer, request, encode_msg(request, f"Hello {name}"))
            return True
        if endpoint == "Say.Drop":
            return False
        if endpoint in STREAMS:
            await self._stream(request, reader, writer)
            return False
        if endpoint == "Say.Fail":
            name = decode_name(request)
            error = {"id": GREETER, "code": 400, "detail": f'bad name "{name}"'}
            text = json.dumps({**error, "status": "Bad Request"}, separators=(",", ":"))
        else:
            text = f"rpc: can't find method {endpoint.rpartition('.')[2]}"
        await self._write(writer, request, b"", {"Micro-Error": text, "X-Micro-Error": text})
        return False

    async def _stream(
        self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if request.endpoint == "Say.Stream":
            for n in range(3):
                await self._write(writer, request, encode_msg(request, f"Hello #{n}"))
            writer.write_eof()  # the close as the client sees it; keep reading until it goes
            while await reader.read(65536):
                pass
            return
        await self._write(writer, request, encode_msg(request, "Hello #0"))
        half = self._response(request, encode_msg(request, "Hello #1"))
        writer.write(half[: len(half) // 2])
        await writer.drain()
        if request.endpoint == "Say.Reset":
            reset(writer)

    async def _write(
        self,
        writer: asyncio.StreamWriter,
        request: Request,
        body: bytes,
        extra: dict[str, str] | None = None,
    ) -> None:
        data = self._response(request, body, extra)
        step = max(1, len(data) // 40)  # v1.0 writes its answers unbuffered, in ~40 pieces
        for i in range(0, len(data), step):
            writer.write(data[i : i + step])
            await writer.drain()

    def _response(
        self, request: Request, body: bytes, extra: dict[str, str] | None = None
    ) -> bytes:
        header = {k: v for k, v in request.header.items() if k not in ("Host", "Content-Length")}
        header.update(extra or {})
        if not self.keep_alive:
            header["Connection"] = "close"
        status = "HTTP/1.0 200 OK" if self.http10 else "HTTP/1.1 200 OK"
        lines = [status, f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in sorted(header.items())]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def decode_name(request: Request) -> str:
    if request.content_type == "application/protobuf":
        return read_string_field(request.body, 1)
    return str(json.loads(request.body or b"{}").get("name", ""))


def encode_msg(request: Request, msg: str) -> bytes:
    if request.content_type == "application/protobuf":
        return string_field(1, msg)
    return json.dumps({"msg": msg}, separators=(",", ":")).encode() + b"\n"


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (linger 0) instead of an orderly close."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """One request off the connection, or None once the client closed or reset it."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    header: dict[str, str] = {}
    for line in head.decode().split("\r\n")[1:]:
        if line:
            name, _, value = line.partition(":")
            header.setdefault(name.strip(), value.strip())
    try:
        body = await reader.readexactly(int(header.get("Content-Length", "0")))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return Request(header, body)
