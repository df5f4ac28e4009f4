"""In-process transport: queues instead of sockets. Client and server share one instance."""

from __future__ import annotations

import asyncio
import itertools

from micro.errors import ConnectError, ConnectionClosed
from micro.transport import Handler, Listener, Message, Socket, Transport

__all__ = ["MemoryTransport"]

_CLOSED = Message({"__closed__": "1"})


class _MemorySocket(Socket):
    def __init__(self, local: str, remote: str) -> None:
        self.local = local
        self.remote = remote
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.peer: _MemorySocket | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def send(self, message: Message) -> None:
        if self._closed or self.peer is None or self.peer.closed:
            raise ConnectionClosed("connection closed", id="go.micro.transport")
        self.peer.inbox.put_nowait(Message(dict(message.header), message.body))

    async def recv(self) -> Message:
        if self._closed:
            raise ConnectionClosed("connection closed", id="go.micro.transport")
        message = await self.inbox.get()
        if message is _CLOSED:
            self._closed = True
            raise ConnectionClosed("connection closed by peer", id="go.micro.transport")
        return message

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.inbox.put_nowait(_CLOSED)
        if self.peer is not None and not self.peer.closed:
            self.peer.inbox.put_nowait(_CLOSED)


class _MemoryListener(Listener):
    def __init__(self, transport: MemoryTransport, address: str, handler: Handler) -> None:
        self._transport = transport
        self._address = address
        self.handler = handler
        self.tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        return self._address

    async def close(self) -> None:
        self._transport.listeners.pop(self._address, None)

    def accept(self, server_side: _MemorySocket) -> None:
        task = asyncio.create_task(self._serve(server_side))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _serve(self, sock: _MemorySocket) -> None:
        try:
            await self.handler(sock)
        finally:
            await sock.close()


class MemoryTransport(Transport):
    """Addresses are ``memory:<n>`` style strings; ``host:0`` binds a fresh one."""

    name = "memory"

    def __init__(self) -> None:
        self.listeners: dict[str, _MemoryListener] = {}
        self._ports = itertools.count(10000)

    async def dial(self, address: str, *, timeout: float = 5.0) -> Socket:
        listener = self.listeners.get(address)
        if listener is None:
            raise ConnectError(f"connection refused: {address}", id="go.micro.transport")
        client = _MemorySocket("memory-client", address)
        server = _MemorySocket(address, "memory-client")
        client.peer, server.peer = server, client
        listener.accept(server)
        return client

    async def listen(self, address: str, handler: Handler) -> Listener:
        host, _, port = address.rpartition(":")
        if port in ("", "0"):
            address = f"{host or '127.0.0.1'}:{next(self._ports)}"
        if address in self.listeners:
            raise ConnectError(f"address in use: {address}", id="go.micro.transport")
        listener = _MemoryListener(self, address, handler)
        self.listeners[address] = listener
        return listener
