"""A scripted mucp server and a recording selector and transport, for the client tests.

``FakeServer`` answers per ``docs/protocol.md`` over any transport; each endpoint gets a
behaviour (``echo`` by default) that turns the request into a reply, or ``None`` to close
the connection without answering.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import msgspec

from micro.errors import ConnectionClosed, MicroError, ServiceNotFound
from micro.registry import Node, Registry, Service
from micro.selector import Filter, Next, Selector
from micro.transport import Listener, Message, Socket, Transport
from micro.transport.memory import MemoryTransport

Behaviour = Callable[[Message], Awaitable[Message | None]]
StreamHandler = Callable[[Socket, Message], Awaitable[None]]


def reply_to(request: Message, body: Any = None, **extra: str) -> Message:
    """A response echoing the request's routing headers, with ``body`` as JSON."""
    header: dict[str, str] = {
        key: request.header[key]
        for key in ("Content-Type", "Micro-Id", "Micro-Service", "Micro-Endpoint", "Micro-Method")
        if key in request.header
    }
    header.update(extra)
    return Message(header, b"" if body is None else msgspec.json.encode(body))


async def echo(request: Message) -> Message:
    """The request's body back, in its content type."""
    response = reply_to(request)
    response.body = request.body
    return response


def answer(body: Any) -> Behaviour:
    async def behaviour(request: Message) -> Message:
        return reply_to(request, body)

    return behaviour


def fail(error: MicroError | str, *, legacy: bool = False) -> Behaviour:
    """Reply with ``Micro-Error`` (``X-Micro-Error`` when ``legacy``) and an empty body."""
    text = error.to_json() if isinstance(error, MicroError) else error

    async def behaviour(request: Message) -> Message:
        return reply_to(request, **{"X-Micro-Error" if legacy else "Micro-Error": text})

    return behaviour


async def hang_up(request: Message) -> None:
    return None


def slow(seconds: float, then: Behaviour = echo) -> Behaviour:
    async def behaviour(request: Message) -> Message | None:
        await asyncio.sleep(seconds)
        return await then(request)

    return behaviour


def gated(gate: asyncio.Event, then: Behaviour = echo) -> Behaviour:
    async def behaviour(request: Message) -> Message | None:
        await gate.wait()
        return await then(request)

    return behaviour


def sequence(*behaviours: Behaviour) -> Behaviour:
    """One behaviour per request in turn; the last one repeats."""
    it = itertools.chain(behaviours, itertools.repeat(behaviours[-1]))

    async def behaviour(request: Message) -> Message | None:
        return await next(it)(request)

    return behaviour


class FakeServer:
    """Serves scripted endpoints; records requests and connections."""

    def __init__(self, transport: Transport, name: str = "greeter") -> None:
        self.transport = transport
        self.name = name
        self.handlers: dict[str, Behaviour] = {}
        self.streams: dict[str, StreamHandler] = {}  # these take over the connection
        self.requests: list[Message] = []
        self.connections = 0
        self.finished = 0  # connections whose serving loop ended
        self.listener: Listener | None = None
        self.registry: Registry | None = None
        self.node: Node | None = None

    @property
    def address(self) -> str:
        assert self.listener is not None
        return self.listener.address

    async def start(self, registry: Registry | None = None) -> FakeServer:
        self.listener = await self.transport.listen("127.0.0.1:0", self._serve)
        if registry is not None:
            self.registry = registry
            self.node = Node(id=f"{self.name}-{self.address}", address=self.address)
            await registry.register(Service(self.name, nodes=[self.node]))
        return self

    async def stop(self) -> None:
        if self.registry is not None and self.node is not None:
            await self.registry.deregister(Service(self.name, nodes=[self.node]))
        if self.listener is not None:
            await self.listener.close()

    async def _serve(self, sock: Socket) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    request = await sock.recv()
                except ConnectionClosed:
                    return
                self.requests.append(request)
                endpoint = request.header.get("Micro-Endpoint", "")
                if endpoint in self.streams:
                    try:
                        await self.streams[endpoint](sock, request)
                    except ConnectionClosed:
                        pass
                    return
                response = await self.handlers.get(endpoint, echo)(request)
                if response is None:
                    return
                try:
                    await sock.send(response)
                except ConnectionClosed:
                    return
        finally:
            self.finished += 1


class RecordingTransport(MemoryTransport):
    """A memory transport that keeps every socket it dialed."""

    def __init__(self) -> None:
        super().__init__()
        self.dialed: list[Socket] = []

    async def dial(self, address: str, *, timeout: float = 5.0) -> Socket:
        sock = await super().dial(address, timeout=timeout)
        self.dialed.append(sock)
        return sock


class RecordingSelector(Selector):
    """Offers ``nodes`` in turn; records select() and mark() calls."""

    name = "recording"

    def __init__(self, nodes: Sequence[Node]) -> None:
        self.nodes = list(nodes)
        self.selects: list[tuple[str, tuple[Filter, ...], dict[str, str]]] = []
        self.marks: list[tuple[str, str, BaseException | None]] = []
        self.started = 0
        self.closed = 0

    async def start(self) -> None:
        self.started += 1

    async def close(self) -> None:
        self.closed += 1

    async def select(
        self,
        service: str,
        *,
        filters: Sequence[Filter] = (),
        metadata: Mapping[str, str] | None = None,
    ) -> Next:
        self.selects.append((service, tuple(filters), dict(metadata or {})))
        if not self.nodes:
            raise ServiceNotFound(f"service {service}: not found", id="go.micro.registry")
        return itertools.cycle(self.nodes).__next__

    def mark(self, service: str, node: Node, error: BaseException | None) -> None:
        self.marks.append((service, node.address, error))

    def reset(self, service: str) -> None:
        pass
