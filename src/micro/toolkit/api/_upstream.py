"""A lean pooled HTTP/1.1 client for the reverse proxies (``micro web``'s ``/[name]/...``,
``micro api``'s ``http``/``web`` handlers).

Why not httpx or aiohttp: a reverse proxy makes one upstream request per request it serves,
so the client's own cost per request bounds the proxy's throughput. Measured at 32 in flight
on one core, httpx managed ~130 requests/s (its pool checks every pooled socket per request)
and aiohttp's client ~3,400/s alone (~300 µs a request, before the proxy's server side);
this client (an :class:`asyncio.Protocol` per connection, httptools' response parser, the
request head written in one write) costs a fraction of that. See docs/decisions.md.

What it does, and only that:

- :meth:`Pool.request` sends one request to ``host:port`` on a kept-alive connection of that
  address (a new one when none is idle) and returns the :class:`Answer` as soon as its head
  has come; the body is read with :meth:`Answer.read` or streamed with
  :meth:`Answer.chunks`, with back-pressure (reading from the socket pauses while 64 KB wait
  unread). :meth:`Answer.close` gives the connection back (when the answer was read whole
  and the service keeps it alive) or closes it.
- Request bodies: ``bytes`` (``Content-Length``) or an async iterable (chunked), written with
  the transport's flow control.
- Answers: ``Content-Length``, chunked, or read until the connection closes; 1xx interim
  answers are skipped; a HEAD answer has no body.
- Errors: :class:`ConnectFailed` (refused, unreachable, bad address, connect timeout, which
  is also :class:`ConnectTimeout`: nothing was sent, another node may be tried),
  :class:`UpstreamTimeout` (no answer, or a stalled body, within the read timeout),
  :class:`BadAnswer` (not HTTP, cut short, connection lost). A request that finds its reused
  connection closed by the service before any answer is sent again once on a new
  connection when it is idempotent and its body is bytes.
- The pool is bounded (``max_connections`` open at once, 0: no bound; a request waits for a
  free one), keeps at most ``max_idle`` idle connections per address, and closes those idle
  longer than ``idle_ttl``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
from collections.abc import AsyncIterable, AsyncIterator
from typing import cast

import httptools

__all__ = [
    "Answer",
    "BadAddress",
    "BadAnswer",
    "ConnectFailed",
    "ConnectTimeout",
    "Pool",
    "UpstreamError",
    "UpstreamTimeout",
]

BUFFER_HIGH = 64 * 1024
"""Unread answer bytes at which reading from the socket pauses."""
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_NO_BODY_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS", "TRACE", "CONNECT"})


class UpstreamError(Exception):
    """The upstream request failed."""


class ConnectFailed(UpstreamError):
    """No connection to the address (refused, unreachable, bad address, timeout); nothing
    of the request was sent."""


class ConnectTimeout(ConnectFailed):
    """No connection (or no free place in the pool) within the connect timeout."""


class BadAddress(ConnectFailed):
    """The address is not ``host:port``."""


class UpstreamTimeout(UpstreamError):
    """The service did not answer (or stopped sending its body) within the read timeout."""


class BadAnswer(UpstreamError):
    """The service's answer was not valid HTTP/1.1, was cut short, or never came."""


class _Stale(BadAnswer):
    """A reused connection closed before any answer byte: the request may go again."""


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> ``(host, port)``.

    Raises:
        BadAddress: no host, or no port in 1..65535.
    """
    host, sep, port = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadAddress(f"bad address {address!r}: want host:port")
    if any(c in host for c in "[]/ @") or not host.isprintable():
        raise BadAddress(f"bad address {address!r}: want host:port")
    return host, int(port)


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one request at a time, its answer parsed as it comes."""

    def __init__(self, pool: Pool, address: str) -> None:
        self.pool = pool
        self.address = address
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.requests = 0  # requests sent on it (a failure on a reused one may be stale)
        self.busy = False  # a request is in flight
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._reset()
        self._write_ready: asyncio.Future[None] | None = None
        self._paused_writing = False
        self._last_read = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_only = False  # the request was HEAD: the answer ends after its head
        self._head_done = False
        self._keep_alive = False
        self._interim = False
        self._complete = False
        self._error: BaseException | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._paused_reading = False
        self._waiter: asyncio.Future[None] | None = None
        self._seen_bytes = False

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._seen_bytes = True
        self._last_read = self.loop.time()
        if not self.busy or self._complete or self._error is not None:
            self._fail(BadAnswer("data after the answer"))  # not HTTP/1.1 as we speak it
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(BadAnswer("the service switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(BadAnswer(f"invalid HTTP answer: {exc}"))

    def eof_received(self) -> bool | None:
        return None  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        if self._head_done and not self._complete and self._error is None:
            if self._until_close():
                self._complete = True  # the body ran until the connection closed
                self._wake()
            else:
                self._fail(BadAnswer("the connection closed before the answer ended"))
        elif not self._complete and self._error is None:
            if self.requests > 1 and not self._seen_bytes:
                self._fail(_Stale("the kept-alive connection was closed by the service"))
            else:
                self._fail(BadAnswer("the connection closed before an answer"))
        self._release_writer(exc)
        self.pool._forget(self)

    def pause_writing(self) -> None:
        self._paused_writing = True

    def resume_writing(self) -> None:
        self._paused_writing = False
        self._release_writer(None)

    # -- httptools callbacks --------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._interim:
            self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._interim = True  # 100 Continue and friends: the real answer follows
            self.headers = []
            return
        self.status = status
        self._keep_alive = self._parser.should_keep_alive()  # reset when the answer ends
        self._head_done = True
        if self.head_only:
            self._complete = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.head_only:
            return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered >= BUFFER_HIGH and not self._paused_reading and self.transport:
            self._paused_reading = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        self._complete = True
        self._wake()

    # -- the request ----------------------------------------------------------------------

    async def send(self, head: bytes, body: bytes | AsyncIterable[bytes] | None) -> None:
        """Write the request: head and a bytes body in one write, an iterable chunked."""
        transport = self.transport
        assert transport is not None
        self.requests += 1
        self.busy = True
        self._last_read = self.loop.time()
        if body is None or isinstance(body, bytes):
            transport.write(head + body if body else head)
            return
        transport.write(head)
        async for chunk in body:
            if self._error is not None or self.closed:
                return  # the service answered or hung up already: its answer tells
            if chunk:
                transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                if self._paused_writing:
                    await self._drain()
        if not self.closed:
            transport.write(b"0\r\n\r\n")

    async def _drain(self) -> None:
        while self._paused_writing and not self.closed:
            self._write_ready = self.loop.create_future()
            await self._write_ready

    def _release_writer(self, exc: Exception | None) -> None:
        waiter, self._write_ready = self._write_ready, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def head(self) -> None:
        """Wait for the answer's head."""
        while not self._head_done:
            await self._wait()

    async def next_chunk(self) -> bytes:
        """The next piece of the body, b"" at its end."""
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._paused_reading and self._buffered < BUFFER_HIGH // 2:
                    self._paused_reading = False
                    if self.transport is not None:
                        self.transport.resume_reading()
                return chunk
            if self._complete:
                return b""
            await self._wait()

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        self._waiter = waiter = self.loop.create_future()
        if self._timer is None:
            self._timer = self.loop.call_at(self._last_read + self.pool.read_timeout, self._check)
        try:
            await waiter
        finally:
            self._waiter = None
        if self._error is not None:
            raise self._error

    def _check(self) -> None:
        """The read timer: fail the waiting request when nothing came for the timeout."""
        self._timer = None
        if self._waiter is None:
            return
        due = self._last_read + self.pool.read_timeout
        if self.loop.time() >= due:
            self._fail(UpstreamTimeout(f"no answer within {self.pool.read_timeout:g} s"))
            self.close()
        else:
            self._timer = self.loop.call_at(due, self._check)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._wake()
        if not self.closed and self.transport is not None:
            self.transport.close()
            self.closed = True

    def _until_close(self) -> bool:
        """Whether the body is delimited by the connection's end (no length, not chunked)."""
        for name, value in self.headers:
            if name == b"content-length" or (
                name == b"transfer-encoding" and b"chunked" in value.lower()
            ):
                return False
        return True

    def reusable(self) -> bool:
        """Whether the answer was read whole and the connection may carry another request."""
        return (
            self._complete
            and not self.closed
            and self._error is None
            and not self.head_only
            and not self._chunks
            and self._keep_alive
        )

    def finished(self) -> None:
        """The request is over: back to the pool, or closed."""
        self._cancel_timer()
        self.busy = False
        if self.reusable():
            self._reset()
            self.pool._idle(self)
        else:
            self.close()

    def close(self) -> None:
        self._cancel_timer()
        if not self.closed and self.transport is not None:
            self.transport.close()
        self.closed = True


class Answer:
    """The service's answer: ``status``, ``headers`` (names lower-case, as sent), its body
    through :meth:`read` or :meth:`chunks`; :meth:`close` when done (idempotent)."""

    def __init__(self, conn: _Connection) -> None:
        self._conn: _Connection | None = conn
        self.status = conn.status
        self.headers = conn.headers

    def content_length(self) -> int | None:
        """The declared body length, None when not declared (or not a number)."""
        for name, value in self.headers:
            if name == b"content-length":
                return int(value) if value.isdigit() else None
        return None

    async def read(self) -> bytes:
        """The whole body (then the connection goes back to the pool)."""
        conn = self._conn
        if conn is None:
            return b""
        parts = []
        try:
            while chunk := await conn.next_chunk():
                parts.append(chunk)
        finally:
            self.close()
        return b"".join(parts)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it comes; the connection is given back (or closed) at its end or when
        the iteration stops early.

        Raises:
            UpstreamTimeout: nothing came within the read timeout.
            BadAnswer: the body was cut short or malformed.
        """
        conn = self._conn
        if conn is None:
            return
        try:
            while chunk := await conn.next_chunk():
                yield chunk
        finally:
            self.close()

    def close(self) -> None:
        """Release the connection: reused if the answer was read whole, else closed."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.finished()


class Pool:
    """Kept-alive connections per ``host:port``; see the module notes.

    Args:
        connect_timeout: seconds to open a connection (and to wait for a free one).
        read_timeout: seconds the service may take to answer, and between body pieces.
        max_connections: connections open at once over all addresses (0: no bound).
        max_idle: idle connections kept per address.
        idle_ttl: seconds an idle connection is kept.
    """

    def __init__(
        self,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        max_connections: int = 0,
        max_idle: int = 100,
        idle_ttl: float = 30.0,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self.max_idle = max_idle
        self.idle_ttl = idle_ttl
        self._idle_conns: dict[str, collections.deque[_Connection]] = {}
        self._open = 0
        self._freed: asyncio.Event | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    def open_connections(self) -> int:
        """Connections open now (busy and idle)."""
        return self._open

    def idle_connections(self, address: str | None = None) -> int:
        """Idle connections, of ``address`` or all."""
        if address is not None:
            return len(self._idle_conns.get(address, ()))
        return sum(len(conns) for conns in self._idle_conns.values())

    async def request(
        self,
        method: str,
        address: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes | AsyncIterable[bytes] | None = None,
    ) -> Answer:
        """Send ``method target`` to ``address`` (``host:port``) with ``headers`` (no
        ``Host``, no framing headers: this sets them) and ``body``; the answer once its head
        came. Close the answer when done with it.

        Raises:
            ConnectFailed, UpstreamTimeout, BadAnswer: see the module notes.
            Whatever ``body`` raises while it is read.
        """
        if self._closed:
            raise ConnectFailed("the client is closed")
        head = _head(method, address, target, headers, body)
        retry = method in _IDEMPOTENT and (body is None or isinstance(body, bytes))
        while True:
            conn = await self._acquire(address)
            conn.head_only = method == "HEAD"
            try:
                await conn.send(head, body)
                await conn.head()
            except _Stale:
                conn.close()
                if retry:
                    retry = False
                    continue
                raise BadAnswer("the connection closed before an answer") from None
            except BaseException:
                conn.close()
                raise
            return Answer(conn)

    async def _acquire(self, address: str) -> _Connection:
        """An idle connection to ``address``, else a new one (waiting for a free place when
        the pool is full: another's idle connection is closed, or a busy one comes back)."""
        conn = self._idle_conn(address)
        if conn is not None:
            return conn
        host, port = split_address(address)
        try:
            async with asyncio.timeout(self.connect_timeout):
                while self.max_connections and self._open >= self.max_connections:
                    if self._close_one_idle():
                        continue
                    self._freed = self._freed or asyncio.Event()
                    self._freed.clear()
                    await self._freed.wait()
                    conn = self._idle_conn(address)
                    if conn is not None:
                        return conn
                return await self._connect(address, host, port)
        except TimeoutError:
            raise ConnectTimeout(f"no connection within {self.connect_timeout:g} s") from None
        except OSError as exc:
            raise ConnectFailed(exc.strerror or str(exc) or type(exc).__name__) from None

    def _idle_conn(self, address: str) -> _Connection | None:
        """The most recently used idle connection to ``address`` still usable, if any."""
        idle = self._idle_conns.get(address)
        if not idle:
            return None
        now = asyncio.get_running_loop().time()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self.idle_ttl:
                return conn
            conn.close()
        return None

    async def _connect(self, address: str, host: str, port: int) -> _Connection:
        self._open += 1
        try:
            _, conn = await asyncio.get_running_loop().create_connection(
                lambda: _Connection(self, address), host, port
            )
        except BaseException:
            self._open -= 1
            self._notify()
            raise
        return conn

    def _close_one_idle(self) -> bool:
        for conns in self._idle_conns.values():
            if conns:
                conns.popleft().close()
                return True
        return False

    def _idle(self, conn: _Connection) -> None:
        """A connection done with its request, kept alive."""
        conns = self._idle_conns.setdefault(conn.address, collections.deque())
        if self._closed or len(conns) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = conn.loop.time()
        conns.append(conn)
        self._notify()  # a request waiting for a place may take it
        if self._sweeper is None:
            self._sweeper = conn.loop.call_later(self.idle_ttl, self._sweep)

    def _sweep(self) -> None:
        """Close the connections idle longer than the TTL; again later while some remain."""
        self._sweeper = None
        now = asyncio.get_running_loop().time()
        for address, conns in list(self._idle_conns.items()):
            while conns and (conns[0].closed or now - conns[0].idle_since >= self.idle_ttl):
                conns.popleft().close()
            if not conns:
                del self._idle_conns[address]
        if self._idle_conns:
            self._sweeper = asyncio.get_running_loop().call_later(self.idle_ttl / 2, self._sweep)

    def _forget(self, conn: _Connection) -> None:
        """A connection closed (by either side)."""
        self._open -= 1
        conns = self._idle_conns.get(conn.address)
        if conns is not None:
            with contextlib.suppress(ValueError):
                conns.remove(conn)
        self._notify()

    def _notify(self) -> None:
        if self._freed is not None:
            self._freed.set()

    async def close(self) -> None:
        """Close the idle connections; the busy ones close when their answers are done."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conns in self._idle_conns.values():
            while conns:
                conns.popleft().close()
        self._idle_conns.clear()


def _head(
    method: str,
    address: str,
    target: str,
    headers: list[tuple[bytes, bytes]],
    body: bytes | AsyncIterable[bytes] | None,
) -> bytes:
    """The request line, ``Host``, the headers and the body's framing header, as bytes."""
    if not _TOKEN.fullmatch(method) or not target.startswith("/") or not target.isprintable():
        raise ValueError(f"bad request line {method!r} {target!r}")
    lines = [f"{method} {target} HTTP/1.1\r\nhost: {address}\r\n".encode("latin-1")]
    lines.extend(name + b": " + value + b"\r\n" for name, value in headers)
    if isinstance(body, bytes):
        if body or method not in _NO_BODY_METHODS:
            lines.append(b"content-length: %d\r\n" % len(body))
    elif body is not None:
        lines.append(b"transfer-encoding: chunked\r\n")
    elif method not in _NO_BODY_METHODS:
        lines.append(b"content-length: 0\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)
