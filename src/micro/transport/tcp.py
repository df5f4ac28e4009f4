"""The ``tcp`` transport: micro's own framing, many streams on one TCP connection.

``MICRO_TRANSPORT=tcp``. Micro to micro only (go-micro has no such transport): the fastest way
two micro processes talk. Every dialed :class:`~micro.transport.Socket` is a stream on the
one connection kept per (transport, address); the listener serves each stream the peer opens
with the handler, as if it were a connection of its own. Frames are length-prefixed (layout
in ``docs/protocol.md``, "tcp transport", and :mod:`micro.transport._tcp_wire`); each stream
has a window of credit so a stream whose reader stalls holds back only itself; bodies larger
than a frame are split and put together again.

Failure. ``dial`` raises :class:`~micro.errors.ConnectError` when nothing listens, the
listener refuses the stream (it closed), or no stream opened within the timeout. A
connection that dies fails every stream on it with
:class:`~micro.errors.ConnectionClosed`, and the next ``dial`` opens a new connection. Bytes
that break the format close the connection (a GOAWAY frame with the reason first). A body
over ``max_body`` resets only its stream: the sender's ``recv`` (dialing side) raises
:class:`~micro.errors.PayloadTooLarge`.

TLS: give ``tls_cert`` and ``tls_key`` to listen over TLS, and ``tls_ca`` (or ``tls_cert``)
to dial over TLS, the server's certificate checked against ``tls_ca`` (the system's CAs
when unset). A listener with ``tls_ca`` as well asks dialers for a certificate signed by it.
Or pass ready contexts as ``tls`` (dialing) and ``server_tls`` (listening).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable

from micro.errors import ConnectError, ConnectionClosed
from micro.transport import DEFAULT_MAX_BODY, Handler, Listener, Transport
from micro.transport._http_wire import split_address
from micro.transport._tcp_conn import TRANSPORT_ID, StreamHandler, TcpConnection, TcpStream
from micro.transport._tcp_wire import (
    DEFAULT_MAX_FRAME,
    DEFAULT_MAX_HEADER,
    DEFAULT_WINDOW,
    MIN_MAX_FRAME,
    MIN_WINDOW,
)
from micro.transport._tls import client_context, server_context

__all__ = ["TcpConnection", "TcpListener", "TcpStream", "TcpTransport"]

logger = logging.getLogger("micro.transport.tcp")

DEFAULT_DIAL_TIMEOUT = 5.0
DEFAULT_IDLE_TIMEOUT = 90.0
DEFAULT_MAX_STREAMS = 65536


class TcpListener(Listener):
    """Accepts connections and serves every stream opened on them with the handler."""

    def __init__(self, transport: TcpTransport, handler: Handler) -> None:
        self._transport = transport
        self._handler = handler
        self._server: asyncio.Server | None = None
        self._address = ""
        self.connections: set[TcpConnection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    @property
    def address(self) -> str:
        return self._address

    def _make(self) -> TcpConnection:
        conn = self._transport.new_connection(
            client=False,
            address=self._address,
            on_stream=self._serve,
            on_lost=self.connections.discard,
        )
        if self.closed:
            conn.accepting = False
        self.connections.add(conn)
        return conn

    async def start(self, host: str, port: int, backlog: int, tls: ssl.SSLContext | None) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._make, host, port, backlog=backlog, ssl=tls, reuse_address=True
        )
        sockname = self._server.sockets[0].getsockname()
        host = sockname[0]
        self._address = f"[{host}]:{sockname[1]}" if ":" in host else f"{host}:{sockname[1]}"

    def _serve(self, stream: TcpStream) -> None:
        task = asyncio.get_running_loop().create_task(self._run(stream))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, stream: TcpStream) -> None:
        try:
            await self._handler(stream)
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("handler for the stream from %s failed", stream.remote)
        finally:
            stream.close_now()

    async def close(self) -> None:
        """Stop accepting connections and streams; open streams go on (each connection
        closes once its last stream has)."""
        if self.closed:
            return
        self.closed = True
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.go_away("the listener closed")

    async def abort(self, grace: float = 1.0) -> None:
        """Close every connection now; give the handlers ``grace`` seconds to end, then
        cancel those still running."""
        await self.close()
        for conn in list(self.connections):
            conn.abort()
        tasks = [task for task in self.tasks if not task.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=grace)


class TcpTransport(Transport):
    """Streams multiplexed on one TCP connection per address.

    Args:
        max_body: the largest message body accepted, in bytes (default 4 MiB); a larger
            one is refused from its first frame and its stream reset.
        max_header: the largest header block, in bytes (default 64 KiB).
        max_frame: the largest frame payload this side accepts (default 1 MiB; a peer's
            frame over it is a protocol error). Senders split bodies into frames of at most
            256 KiB and the peer's ``max_frame``.
        window: bytes a stream's peer may send ahead of this side's reading (default 1 MiB).
        max_streams: streams one accepted connection may have open (default 65,536); past
            it a new stream is refused (its ``dial`` raises ConnectError).
        dial_timeout: seconds ``dial`` waits when it gets no ``timeout`` (default 5).
        idle_timeout: seconds a connection with no stream open stays up (default 90; None
            or 0: forever).
        backlog: the listen backlog.
        tls_cert, tls_key: certificate and key files: the listener serves TLS with them
            (and a dialer presents them when the listener asks).
        tls_ca: CA file: dialers check the listener's certificate against it (dialing is
            TLS whenever ``tls_ca`` or ``tls_cert`` is set); a TLS listener with it asks
            dialers for a certificate it signed.
        tls, server_tls: ready contexts for dialing and listening (win over the files).

    Raises:
        ValueError: a bad size, or a key without a certificate.
    """

    name = "tcp"

    def __init__(
        self,
        *,
        max_body: int = DEFAULT_MAX_BODY,
        max_header: int = DEFAULT_MAX_HEADER,
        max_frame: int = DEFAULT_MAX_FRAME,
        window: int = DEFAULT_WINDOW,
        max_streams: int = DEFAULT_MAX_STREAMS,
        dial_timeout: float = DEFAULT_DIAL_TIMEOUT,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        backlog: int = 1024,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        tls_ca: str | None = None,
        tls: ssl.SSLContext | None = None,
        server_tls: ssl.SSLContext | None = None,
    ) -> None:
        if max_body < 0 or max_header <= 0:
            raise ValueError("max_body and max_header must be positive")
        if max_frame < MIN_MAX_FRAME or max_frame > 2**31:
            raise ValueError(f"max_frame must be between {MIN_MAX_FRAME} and 2 GiB")
        if window < MIN_WINDOW or window > 2**31:
            raise ValueError(f"window must be between {MIN_WINDOW} and 2 GiB")
        if max_header + 8 > min(max_frame, window // 2):
            raise ValueError("max_header must fit in a frame and in half a window")
        if max_streams < 1:
            raise ValueError("max_streams must be at least 1")
        if tls_key and not tls_cert:
            raise ValueError("tls_key needs tls_cert")
        self.max_body = max_body
        self.max_header = max_header
        self.max_frame = max_frame
        self.window = window
        self.max_streams = max_streams
        self.dial_timeout = dial_timeout
        self.idle_timeout = idle_timeout or None
        self.backlog = backlog
        self.tls = tls if tls is not None else client_context(tls_cert, tls_key, tls_ca)
        self.server_tls = (
            server_tls if server_tls is not None else server_context(tls_cert, tls_key, tls_ca)
        )
        self._conns: dict[str, TcpConnection] = {}
        self._connecting: dict[str, asyncio.Future[TcpConnection]] = {}
        self._listeners: set[TcpListener] = set()
        self._all: set[TcpConnection] = set()

    def __repr__(self) -> str:
        return f"TcpTransport(max_body={self.max_body}, tls={self.tls is not None})"

    async def dial(self, address: str, *, timeout: float | None = None) -> TcpStream:
        """A new stream to ``address`` (``host:port``; ``:port`` means 127.0.0.1), on the
        connection already open to it or a new one.

        Raises:
            ConnectError: refused, unreachable, a failed TLS handshake, the listener
                refused the stream, or no stream within ``timeout`` seconds
                (``dial_timeout`` when None). The detail names the address.
        """
        wait = self.dial_timeout if timeout is None else timeout
        conn: TcpConnection | None = None
        try:
            async with asyncio.timeout(wait):
                for attempt in range(3):
                    conn = await self._connection(address)
                    try:
                        return await conn.open_stream()
                    except ConnectError:
                        # the connection went away (or stopped taking streams) under us:
                        # a new one says whether the listener is still there
                        if (conn.accepting and not conn.lost) or conn.error or attempt == 2:
                            raise
                        if self._conns.get(address) is conn:
                            del self._conns[address]
        except TimeoutError as exc:
            if conn is not None and not conn.greeted:
                # the peer accepted but never said HELLO: not a micro tcp listener (or a
                # stuck one); the next dial must not wait on this connection again
                conn.abort()
                if self._conns.get(address) is conn:
                    del self._conns[address]
            raise ConnectError(
                f"dial {address}: no stream within {wait:g}s", id=TRANSPORT_ID
            ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _connection(self, address: str) -> TcpConnection:
        conn = self._conns.get(address)
        if conn is not None and conn.accepting and not conn.lost:
            return conn
        pending = self._connecting.get(address)
        if pending is None:
            pending = asyncio.ensure_future(self._connect(address))
            self._connecting[address] = pending
            pending.add_done_callback(lambda f: self._connected(address, f))
        return await asyncio.shield(pending)

    def _connected(self, address: str, done: asyncio.Future[TcpConnection]) -> None:
        if self._connecting.get(address) is done:
            del self._connecting[address]
        if not done.cancelled() and done.exception() is None:
            conn = done.result()
            if not conn.lost:
                self._conns[address] = conn

    def new_connection(
        self,
        *,
        client: bool,
        address: str,
        on_lost: Callable[[TcpConnection], None],
        on_stream: StreamHandler | None = None,
    ) -> TcpConnection:
        """A connection protocol with this transport's limits (a dialed or accepted one)."""
        return TcpConnection(
            client=client,
            address=address,
            max_body=self.max_body,
            max_header=self.max_header,
            max_frame=self.max_frame,
            window=self.window,
            max_streams=self.max_streams,
            idle_timeout=self.idle_timeout,
            on_stream=on_stream,
            on_lost=on_lost,
        )

    async def _connect(self, address: str) -> TcpConnection:
        host, port = split_address(address, default_host="127.0.0.1")
        loop = asyncio.get_running_loop()

        def lost(conn: TcpConnection) -> None:
            self._all.discard(conn)
            if self._conns.get(address) is conn:
                del self._conns[address]

        def make() -> TcpConnection:
            return self.new_connection(client=True, address=address, on_lost=lost)

        try:
            _, conn = await loop.create_connection(make, host, port, ssl=self.tls)
        except OSError as exc:  # also ssl.SSLError: the TLS handshake failed
            raise ConnectError(f"dial {address}: {exc.strerror or exc}", id=TRANSPORT_ID) from exc
        self._all.add(conn)
        return conn

    async def listen(self, address: str, handler: Handler) -> TcpListener:
        """Bind ``address`` (``host:port``; an empty host means 0.0.0.0, port 0 a free one).

        Raises:
            ConnectError: the address cannot be bound.
        """
        host, port = split_address(address, default_host="0.0.0.0")
        listener = TcpListener(self, handler)
        try:
            await listener.start(host, port, self.backlog, self.server_tls)
        except OSError as exc:
            raise ConnectError(
                f"listen {address}: {exc.strerror or exc}", id=TRANSPORT_ID
            ) from None
        self._listeners.add(listener)
        return listener

    def connection(self, address: str) -> TcpConnection | None:
        """The open connection to ``address``, if any."""
        return self._conns.get(address)

    async def close(self) -> None:
        """Close every listener and connection (never raises)."""
        listeners, self._listeners = self._listeners, set()
        for listener in listeners:
            await listener.abort()
        for pending in self._connecting.values():
            pending.cancel()
        conns, self._all = self._all, set()
        self._conns.clear()
        for conn in conns:
            conn.close()
        waits = [asyncio.ensure_future(conn.wait_closed()) for conn in conns]
        if waits:
            _, late = await asyncio.wait(waits, timeout=1.0)
            for wait in late:
                wait.cancel()
            for conn in conns:
                if not conn.lost:
                    conn.abort()
