"""Connections kept open per address, so that sequential calls share one connection.

Per address a LIFO stack of idle connections (the most recently used is reused first, so
surplus connections age out): at most ``size`` idle, a connection older than ``ttl`` is
closed when it would be checked out, and a connection that failed or whose exchange was cut
short (error, cancellation) is closed instead of returned. The number of connections in use
is not bounded: each call in flight holds one.

A connection the server closed is never reused: one whose last response said
``Connection: close`` (or was HTTP/1.0) counts as closed and is not kept, and one whose
close arrived while it sat idle is dropped at checkout. A close that the event loop has not
read yet is caught by the HTTP transport itself, which looks for it before writing a request
on a kept-alive connection and then raises without writing (the caller dials again).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from micro.errors import ConnectError, MicroError, TransportMismatch
from micro.registry import Node
from micro.transport import Socket, Transport

__all__ = ["Conn", "Pool", "check_transport"]


class Conn:
    """A dialed socket with its address and birth time; ``reused`` after its first call."""

    __slots__ = ("address", "created", "reused", "socket")

    def __init__(self, address: str, socket: Socket, created: float) -> None:
        self.address = address
        self.socket = socket
        self.created = created
        self.reused = False


class Pool:
    """Idle connections per address over one transport."""

    def __init__(
        self,
        transport: Transport,
        *,
        size: int = 100,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transport = transport
        self.size = size
        self.ttl = ttl
        self._clock = clock
        self._idle: dict[str, list[Conn]] = {}
        self._closed = False

    def idle(self, address: str) -> int:
        """How many idle connections to ``address`` are kept."""
        return len(self._idle.get(address, ()))

    def take(self, address: str) -> Conn | None:
        """The most recently used idle connection to ``address`` if it is fit for use.

        The fast path of :meth:`get`: it never waits, and leaves a stale connection where
        it is for :meth:`get` to close.
        """
        stack = self._idle.get(address)
        if stack:
            conn = stack[-1]
            if not conn.socket.closed and self._clock() - conn.created <= self.ttl:
                stack.pop()
                conn.reused = True
                return conn
        return None

    async def get(self, address: str, *, timeout: float) -> Conn:
        """An idle connection to ``address``, or a new one.

        Raises:
            ConnectError: dialing failed or took longer than ``timeout`` seconds.
        """
        stack = self._idle.get(address)
        if stack:
            now = self._clock()
            while stack:
                conn = stack.pop()
                if conn.socket.closed or now - conn.created > self.ttl:
                    await _close(conn.socket)
                    continue
                conn.reused = True
                return conn
        return await self.connect(address, timeout=timeout)

    async def connect(self, address: str, *, timeout: float) -> Conn:
        """A new connection to ``address``, to be given back with :meth:`put`.

        Raises:
            ConnectError: dialing failed or took longer than ``timeout`` seconds.
        """
        return Conn(address, await self.dial(address, timeout=timeout), self._clock())

    async def dial(self, address: str, *, timeout: float) -> Socket:
        """A new connection, not pooled (streams use these).

        Raises:
            ConnectError: dialing failed or took longer than ``timeout`` seconds.
        """
        try:
            return await self.transport.dial(address, timeout=timeout)
        except MicroError:
            raise
        except (OSError, TimeoutError) as exc:
            detail = f"connection error: {address}: {type(exc).__name__}: {exc}"
            raise ConnectError(detail, id="go.micro.client.transport") from exc

    def put(self, conn: Conn) -> bool:
        """Give back a connection whose exchange completed.

        Returns False when the pool does not keep it (full, closed, expired or broken): the
        caller then closes it with :meth:`discard`.
        """
        if self._closed or conn.socket.closed:
            return False
        stack = self._idle.get(conn.address)
        if stack is None:
            stack = self._idle[conn.address] = []
        if len(stack) >= self.size or self._clock() - conn.created > self.ttl:
            return False
        stack.append(conn)
        return True

    async def discard(self, conn: Conn) -> None:
        """Close a connection that failed or whose exchange was cut short."""
        await _close(conn.socket)

    async def close(self) -> None:
        """Close every idle connection; connections in use are closed when given back."""
        self._closed = True
        idle, self._idle = self._idle, {}
        for stack in idle.values():
            for conn in stack:
                await _close(conn.socket)


async def _close(socket: Socket) -> None:
    try:
        await socket.close()
    except Exception:  # close() must not raise; a broken backend must not break the caller
        pass


def check_transport(node: Node, speaks: str) -> None:
    """Refuse a node whose ``transport`` metadata names another transport than ``speaks``
    (a node with no such metadata, as a fixed address, is taken as it is).

    Raises:
        TransportMismatch: naming both transports and the setting that picks the client's.
    """
    theirs = node.metadata.get("transport") if node.metadata else None
    if theirs and theirs != speaks:
        raise TransportMismatch(
            f"node {node.id} ({node.address}) speaks the {theirs} transport, this client "
            f"the {speaks} transport: set MICRO_TRANSPORT={theirs} (or transport={theirs!r})",
            id="go.micro.client",
        )
