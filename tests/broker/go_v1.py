"""A go-micro v1.0 HTTP broker publisher, simulated from what a v1.0 program was seen doing.

It finds subscribers as v1.0's broker does: service ``topic:<topic>``, each node read as
``Address`` plus a separate ``Port`` (v1.0's ``registry.Node``), and posts to
``http://<Address>:<Port>/_sub?id=<node id>``: every node of version ``ff.http.broadcast``,
one random node of any other version (a queue group). The request is byte for byte the one
captured from a v1.0 program (headers in Go's order, the body as Go's JSON encoder writes it). Go's
``net/http`` splits that URL's host from its port at the last colon, so an address that
already holds a port yields a host name that cannot resolve: the failure the Go program hit.

Where a node comes from decides how v1.0 reads it:

* mDNS: ``Address`` from the A record, ``Port`` from the SRV record, as
  :func:`registry_lookup` gives them from this project's mDNS reader;
* a JSON value (etcd): Go's ``encoding/json`` into v1.0's structs, keys matched without regard
  to case, unknown keys ignored, a missing ``port`` left 0 (:func:`read_go_v1_json`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from micro.errors import ServiceNotFound
from micro.registry import Node, Registry, Service, split_host_port

BROADCAST = "ff.http.broadcast"


class GoNode(NamedTuple):
    """A node as go-micro v1.0's ``registry.Node`` holds it."""

    id: str
    address: str
    port: int
    secure: bool = False


Found = dict[str, list[GoNode]]
"""The nodes of one service name by version."""
Lookup = Callable[[str], Awaitable[Found]]


def registry_lookup(registry: Registry) -> Lookup:
    """v1.0's view of ``registry``'s nodes, with host and port apart as mDNS gives them."""

    async def lookup(name: str) -> Found:
        try:
            services = await registry.get_service(name)
        except ServiceNotFound:
            return {}
        found: Found = {}
        for service in services:
            for node in service.nodes:
                host, port = split_host_port(node.address)
                secure = node.metadata.get("secure") == "true"
                found.setdefault(service.version, []).append(GoNode(node.id, host, port, secure))
        return found

    return lookup


def read_go_v1_json(values: list[bytes]) -> Found:
    """Registry values (one service JSON each) decoded as go-micro v1.0 decodes them."""
    found: Found = {}
    for value in values:
        service = _lower(json.loads(value))
        for raw in service.get("nodes") or []:
            node = _lower(raw)
            port = node.get("port", 0)
            if not isinstance(port, int):  # Go: "cannot unmarshal ... into Go struct field"
                raise ValueError(f"port {port!r} is not a number")
            secure = (node.get("metadata") or {}).get("secure") == "true"
            found.setdefault(service["version"], []).append(
                GoNode(node["id"], node["address"], port, secure)
            )
    return found


def _lower(raw: dict[str, Any]) -> dict[str, Any]:
    return {key.lower(): value for key, value in raw.items()}


def go_url(node: GoNode) -> str:
    """v1.0's ``fmt.Sprintf("%s://%s:%d%s?%s", scheme, Address, Port, "/_sub", "id=...")``."""
    scheme = "https" if node.secure else "http"
    query = urllib.parse.urlencode({"id": node.id})
    return f"{scheme}://{node.address}:{node.port}/_sub?{query}"


def go_body(topic: str, payload: bytes, *, message_id: str, service: str) -> bytes:
    """A v1.0 client's publication: Go writes a struct's fields in order, a map's keys sorted."""
    header = {
        ":topic": topic,
        "Content-Type": "application/json",
        "Micro-From-Service": service,
        "Micro-Id": message_id,
        "Micro-Topic": topic,
    }
    publication = {
        "Header": dict(sorted(header.items())),
        "Body": base64.b64encode(payload).decode(),
    }
    return json.dumps(publication, separators=(",", ":")).encode()


class GoV1Publisher:
    """``publish`` as go-micro v1.0's HTTP broker does it, but reporting what v1.0 swallows."""

    def __init__(self, lookup: Lookup, *, service: str = "go.micro.cli.greeter") -> None:
        self.lookup = lookup
        self.service = service

    async def publish(self, topic: str, payload: bytes) -> list[tuple[str, int | str]]:
        """One publication; per target URL, the HTTP status or why it could not be sent.

        Go v1.0 returns nil whatever happens; the list is what it would have seen.
        """
        found = await self.lookup("topic:" + topic)
        body = go_body(topic, payload, message_id=str(uuid.uuid4()), service=self.service)
        targets = [
            node
            for version, nodes in sorted(found.items())
            for node in (nodes if version == BROADCAST else [random.choice(nodes)])
        ]
        return [(go_url(node), await self._post(go_url(node), body)) for node in targets]

    async def _post(self, url: str, body: bytes) -> int | str:
        parts = urllib.parse.urlsplit(url)
        host, _, port = parts.netloc.rpartition(":")  # as Go's net/http splits it
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
        except OSError as exc:
            return f"dial {parts.netloc}: {exc}"
        try:
            writer.write(_request(parts, body))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            await reader.readexactly(_content_length(head))  # v1.0 discards the body
            return int(head.split(b" ", 2)[1])
        finally:
            writer.close()
            await writer.wait_closed()


def _request(parts: urllib.parse.SplitResult, body: bytes) -> bytes:
    return (
        f"POST {parts.path}?{parts.query} HTTP/1.1\r\n"
        f"Host: {parts.netloc}\r\n"
        "User-Agent: Go-http-client/1.1\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Content-Type: application/json\r\n"
        "Accept-Encoding: gzip\r\n"
        "\r\n"
    ).encode() + body


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


class GoV1Subscriber:
    """A go-micro v1.0 broker endpoint with one subscription: it records each publication
    posted to its node id and answers ``200`` with an empty body, whatever happened, as v1.0's
    ``net/http`` handler does."""

    def __init__(self, topic: str, *, queue: str | None = None) -> None:
        self.topic = topic
        self.version = queue or BROADCAST
        self.id = f"broker-{uuid.uuid4()}.{uuid.uuid4()}"
        self.received: list[dict[str, Any]] = []  # the publications' JSON
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> GoV1Subscriber:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def address(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def entry(self) -> Service:
        """The registry entry v1.0 writes: ``topic:<topic>``, metadata only ``secure``."""
        node = Node(id=self.id, address=self.address, metadata={"secure": "false"})
        return Service(name="topic:" + self.topic, version=self.version, nodes=[node])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                body = await reader.readexactly(_content_length(head))
                target = head.split(b" ", 2)[1].decode()
                query = urllib.parse.urlsplit(target).query
                publication = json.loads(body)
                if urllib.parse.parse_qs(query).get("id") == [self.id] and (
                    publication["Header"].get(":topic") == self.topic
                ):
                    self.received.append(publication)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
