"""A simulated go-micro v1.0 peer: the greeter server and a stream client (HTTP, JSON codec).

It behaves as docs/protocol.md ("What a go-micro v1.0 peer sends") records of an unmodified
go-micro v1.0 program; ``tests/interop/test_go_v1_peer.py`` checks it against the captured
bytes of ``tests/transport/go_wire.py``.

:class:`GoV1Server`, the greeter ``Say`` with ``Hello``, ``Fail``, ``Stream`` and ``Echo``:

- every response repeats the headers of the connection's *first* request (less ``Host`` and
  ``Content-Length``) with the message's own set over them, sorted, in small pieces;
- a handler error is status 200 with the error JSON in ``Micro-Error`` and ``X-Micro-Error``
  and no body, an unknown method the plain text ``rpc: can't find method X``; either way
  the connection is closed after it;
- a stream's opening body never reaches the handler. ``Say.Stream`` (a server stream as
  protoc-gen-micro generates it) takes its request from the first stream message and
  answers it three times; ``Say.Echo`` (bidirectional) answers every message until reading
  fails. Each handler's reads are kept in :attr:`GoV1Server.received`;
- a stream ends with the server closing the connection (there is no ``EOS``), and a client
  message with ``Micro-Error: EOS`` is read like any other: its empty body is a zero request.

:class:`GoV1Client` opens a stream as the generated v1.0 client does: a new connection, a
POST with a zero-value placeholder body and neither ``Micro-Id`` nor ``Micro-Stream``, then
the request as the first stream message. ``Micro-Error: EOS`` reads as the end (``EOF``),
the connection closing as ``unexpected EOF``; closing the stream sends nothing.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from micro.registry import Endpoint, Node, Service, Value

__all__ = [
    "NODE_METADATA",
    "SERVICE",
    "GoError",
    "GoV1Client",
    "GoV1Server",
    "GoV1Stream",
    "Received",
    "StreamEnd",
    "read_message",
]

SERVICE = "go.micro.srv.greeter"
CLIENT_SERVICE = "go.micro.cli.greeter"
NODE_METADATA = {
    "broker": "http",
    "protocol": "mucp",
    "registry": "mdns",
    "server": "rpc",  # what tells a v1.0 node (before v1.7) apart from later ones
    "transport": "http",
}
_PIECE = 24  # bytes per write: Go's unbuffered writes arrive in dozens of segments


class GoError(Exception):
    """A ``Micro-Error`` a v1.0 client read (its text as given)."""


class StreamEnd(Exception):
    """A v1.0 client stream ended: ``EOF`` (the server's ``EOS``) or ``unexpected EOF``."""


def canonical(name: str) -> str:
    """Go's canonical header key: ``micro-id`` -> ``Micro-Id``."""
    return "-".join(part.capitalize() for part in name.split("-"))


async def read_message(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes] | None:
    """One HTTP/1.1 message: its first line, headers and body; None when the peer closed."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise
        return None
    except ConnectionError:
        return None
    first, *lines = head.decode("latin-1").split("\r\n")
    header = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            header[canonical(name.strip())] = value.strip()
    body = await reader.readexactly(int(header.get("Content-Length", "0")))
    return first, header, body


def _write_head(first: str, header: Mapping[str, str], body: bytes, *, request: bool) -> bytes:
    """A message as Go's net/http writes it: its own fields first, then sorted headers."""
    lines = [first]
    if request:
        lines += [f"Host: {header['Host']}", "User-Agent: Go-http-client/1.1"]
        lines.append(f"Content-Length: {len(body)}")
    elif body:
        lines.append(f"Content-Length: {len(body)}")
    skip = {"Host", "User-Agent", "Content-Length"} if request else {"Content-Length"}
    lines += [f"{k}: {v}" for k, v in sorted(header.items()) if k not in skip]
    if not request and not body:
        lines.append("Content-Length: 0")
    return "".join(line + "\r\n" for line in lines).encode() + b"\r\n" + body


def _encode(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"  # Go's encoder adds \n


def _request(body: bytes) -> dict[str, Any]:
    """A ``Request`` decoded as v1.0 does: an empty body leaves the zero value."""
    decoded = json.loads(body) if body else {}
    return {"name": decoded.get("name", "")}


@dataclass
class Received:
    """One request a stream handler read: its endpoint, headers and decoded body."""

    endpoint: str
    header: dict[str, str]
    request: dict[str, Any]


class _Conn:
    """One served connection: reads messages, answers over the first request's headers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.echo: dict[str, str] | None = None

    async def read(self) -> tuple[dict[str, str], bytes] | None:
        message = await read_message(self.reader)
        if message is None:
            return None
        _, header, body = message
        header = {k: v for k, v in header.items() if k not in ("Host", "Content-Length")}
        if self.echo is None:  # v1.0 answers on the hijacked first request's header map
            self.echo = dict(header)
        return header, body

    async def send(self, header: Mapping[str, str], body: bytes = b"") -> None:
        assert self.echo is not None
        self.echo.update(header)  # Header.Set on the shared map: values stick
        data = _write_head("HTTP/1.1 200 OK", self.echo, body, request=False)
        for at in range(0, len(data), _PIECE):
            self.writer.write(data[at : at + _PIECE])
            await self.writer.drain()


_ROUTING = ("Micro-Id", "Micro-Service", "Micro-Method", "Micro-Endpoint")


def _routing(header: Mapping[str, str], *names: str) -> dict[str, str]:
    """The headers v1.0's codec sets on an answer, each plain and as ``X-``: a unary answer
    sets the id only, a stream message every routing header."""
    out = {}
    for name in names:
        value = header.get(name) or header.get("X-" + name)
        if value:
            out[name] = out["X-" + name] = value
    return out


@dataclass
class GoV1Server:
    """The v1.0 greeter on a loopback port (see the module docstring)."""

    received: list[Received] = field(default_factory=list)
    connections: int = 0
    ended: int = 0  # connections closed
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def address(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    async def start(self) -> GoV1Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def close(self) -> None:
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def service(self, name: str = SERVICE) -> Service:
        """The registration v1.0 writes for this node (endpoints as Go reflects them)."""
        request = Value("Request", "Request", [Value("name", "string")])
        response = Value("Response", "Response", [Value("msg", "string")])
        unary = {"stream": "false"}
        stream = {"stream": "true"}
        context, stream_value = Value("Context", "Context"), Value("Stream", "Stream")
        endpoints = [
            Endpoint("Say.Echo", context, stream_value, stream),
            Endpoint("Say.Fail", request, response, unary),
            Endpoint("Say.Hello", request, response, unary),
            Endpoint("Say.Stream", context, stream_value, stream),
        ]
        node = Node(f"{name}-{uuid.uuid4()}", self.address, dict(NODE_METADATA))
        return Service(name, endpoints=endpoints, nodes=[node])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        conn = _Conn(reader, writer)
        try:
            while (message := await conn.read()) is not None:
                if not await self._dispatch(conn, *message):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()
            self.ended += 1

    async def _dispatch(self, conn: _Conn, header: dict[str, str], body: bytes) -> bool:
        """Serve one request; False when v1.0 would close the connection after it."""
        endpoint = header.get("Micro-Endpoint") or header.get("Micro-Method") or ""
        if endpoint == "Say.Hello":
            reply = {**_routing(header, "Micro-Id"), "Content-Type": "application/json"}
            await conn.send(reply, _encode({"msg": f"Hello {_request(body)['name']}"}))
            return True
        if endpoint in ("Say.Stream", "Say.Echo"):  # the opening body is not read
            reply = {**_routing(header, *_ROUTING), "Content-Type": "application/json"}
            await self._stream(conn, endpoint, reply)
            return False
        if endpoint == "Say.Fail":
            detail = f'bad name "{_request(body)["name"]}"'
            error = {"id": SERVICE, "code": 400, "detail": detail, "status": "Bad Request"}
            text = json.dumps(error, separators=(",", ":"))
        else:
            text = f"rpc: can't find method {endpoint.partition('.')[2]}"
        await conn.send({**header, "Micro-Error": text, "X-Micro-Error": text})
        return False

    async def _stream(self, conn: _Conn, endpoint: str, reply: dict[str, str]) -> None:
        while (message := await conn.read()) is not None:  # the handler's Recv
            header, body = message
            request = _request(body)
            self.received.append(Received(endpoint, header, request))
            if endpoint == "Say.Stream":
                for n in range(3):
                    await conn.send(reply, _encode({"msg": f"Hello {request['name']} #{n}"}))
                return  # the handler returned: v1.0 closes, no EOS
            await conn.send(reply, _encode({"msg": f"echo {request['name']}"}))


@dataclass
class GoV1Stream:
    """One stream a :class:`GoV1Client` opened."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    header: dict[str, str]
    sent: bytearray = field(default_factory=bytearray)  # every byte written, for byte tests

    async def send(self, obj: Any) -> None:
        data = _write_head("POST / HTTP/1.1", self.header, _encode(obj), request=True)
        self.sent += data
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self) -> Any:
        """The next message; raises StreamEnd or GoError as v1.0's client reports them."""
        message = await read_message(self.reader)
        if message is None:
            raise StreamEnd("unexpected EOF")
        _, header, body = message
        error = header.get("Micro-Error") or header.get("X-Micro-Error")
        if error == "EOS":
            raise StreamEnd("EOF")
        if error:
            raise GoError(error)
        return json.loads(body)

    async def read_all(self) -> tuple[list[Any], str]:
        """Every message until the end, and how it ended."""
        items = []
        while True:
            try:
                items.append(await self.recv())
            except StreamEnd as end:
                return items, str(end)

    async def close(self) -> None:
        """v1.0's Close: the connection closes, nothing is sent."""
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass


class GoV1Client:
    """Opens streams to ``address`` as go-micro v1.0's generated client does."""

    def __init__(self, address: str, *, service: str = SERVICE) -> None:
        self.address = address
        self.service = service

    async def stream(self, endpoint: str, request: Any, *, placeholder: Any = None) -> GoV1Stream:
        """Open with the zero value (``{"name":""}``), then send ``request`` (if not None)."""
        host, port = self.address.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        header = {"Host": self.address, "Timeout": "5000000000"}
        header |= {"Accept": "application/json", "Content-Type": "application/json"}
        header["Micro-From-Service"] = CLIENT_SERVICE
        for name, value in (
            ("Micro-Service", self.service),
            ("Micro-Method", endpoint),
            ("Micro-Endpoint", endpoint),
        ):
            header[name] = header["X-" + name] = value
        stream = GoV1Stream(reader, writer, header)
        await stream.send({"name": ""} if placeholder is None else placeholder)
        if request is not None:
            await stream.send(request)
        return stream
