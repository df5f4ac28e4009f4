"""The default transport: go-micro v1's "mucp" over HTTP/1.1 (see ``docs/protocol.md``).

Every client message is one ``POST /`` with the message headers as HTTP headers and
``Content-Length`` framing; every server message is one ``HTTP/1.1 200 OK``. Connections are
kept alive; a stream is any number of messages each way on one connection. Go v1 services,
``curl`` and any HTTP/1.1 client interoperate.

It is built for speed on asyncio Protocols with ``httptools`` (llhttp) parsers: one future
per ``recv`` wait, no task per message, one write per message, cached header names; reading
pauses while unread messages pile up, ``send`` waits while the write buffer is over its
high-water mark.

Headers. Transport-owned headers (``Content-Length``, ``Transfer-Encoding``, ``Host``,
``Connection``, ``Keep-Alive``, ``Expect``, ``Upgrade``) are written by the transport, never
appear in a received :class:`~micro.transport.Message`, and are dropped from a message on
send. Names
arrive canonical (``Micro-Id``); a repeated header keeps its first value, as Go does. Values
are UTF-8; a value may not hold control characters (``send`` raises
:class:`~micro.errors.BadRequest`), and HTTP trims the spaces around a value.

Accepting side. Requests may be pipelined, chunked, or ask ``Expect: 100-continue`` (answered
at once). The transport itself answers only three things, with a ``Micro-Error`` JSON (id
``go.micro.transport``) in the header and the body, ``Connection: close``, then closes:
``400`` for bytes that are not HTTP or a head over ``max_header``, ``405`` for any method but
POST (a browser's ``GET /`` gets a detail saying how to call), ``413`` for a body over
``max_body`` (refused from ``Content-Length`` before the body is read). A request with
``Connection: close`` (or HTTP/1.0) is the last one read: its response says
``Connection: close`` and the connection closes after it. A ``POST`` asking to ``Upgrade``
(``curl --http2``) is served as plain HTTP/1.1. A connection with no request in progress
for ``idle_timeout`` is closed; at ``max_connections`` the longest idle ones are closed to
make room for new ones.

Dialing side. ``1xx`` responses are skipped. A response with ``Connection: close`` (or an
HTTP/1.0 one) is the connection's last. Before a request on a kept-alive connection,
``send`` looks for a close or reset of the server's that waits unread and then raises
without writing. ``answered`` says whether the server may have read the last request (a
byte came back, or the connection then closed in order; a reset with nothing answered
means it was discarded unread), ``cut_off`` whether the connection ended by a reset or
inside a response. A non-200 response without ``Micro-Error`` gets
one made from its status and body (code = the status), so callers see a proper error. A
malformed response fails ``recv`` with ``BadRequest``, a body over ``max_body`` with
``PayloadTooLarge``; both close the socket. Options made for HTTP endpoints other than a
service (``micro proxy``'s ``/rpc``): the request path, fixed headers, and TLS.

Shutdown. :class:`~micro.transport._http_listener.HttpListener` adds ``connections``,
``close_idle()``, ``wait_closed(timeout)`` and ``abort(grace)`` to the Listener interface;
:meth:`HttpTransport.close` aborts every listener it made and closes every socket it dialed.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping

from micro.errors import ConnectError
from micro.transport import DEFAULT_MAX_BODY, Handler, Transport
from micro.transport._http_client import HttpClientSocket
from micro.transport._http_listener import IDLE_TIMEOUT_SECONDS, HttpListener
from micro.transport._http_server import LINGER_SECONDS, READ_TIMEOUT_SECONDS, HttpServerSocket
from micro.transport._http_wire import (
    DEFAULT_DIAL_TIMEOUT,
    DEFAULT_MAX_HEADER,
    TRANSPORT_ID,
    request_prefix,
    split_address,
)

__all__ = ["HttpClientSocket", "HttpListener", "HttpServerSocket", "HttpTransport"]


class HttpTransport(Transport):
    """mucp over HTTP/1.1.

    Args:
        max_body: the largest body accepted, in bytes, both ways (default 4 MiB). A larger
            request is answered ``413`` before its body is read; a larger response fails
            ``recv`` with :class:`~micro.errors.PayloadTooLarge`.
        max_header: the largest request or response head (start line + headers), in bytes
            (default 64 KiB); a larger request head is answered ``400``.
        dial_timeout: seconds ``dial`` waits for a connection when it gets no ``timeout``.
        backlog: the listen backlog of the accepting socket.
        linger: seconds a refused connection (400/405/408/413) keeps discarding the peer's
            bytes after the answer, before it closes.
        read_timeout: seconds a request may take to arrive in full (head and body) from its
            first byte; a slower one is answered ``408`` and the connection closed (default
            30; None or 0 waits forever). Checked by one sweep over the open connections
            every ``min(1, read_timeout / 4, idle_timeout / 4)`` seconds, not a timer per
            request. Idle kept-alive connections are not affected.
        idle_timeout: seconds an accepted connection may go without a request in progress
            (fresh, or kept alive between requests) before it is closed (default 90, above
            the client pool's 60 s TTL; None or 0 keeps it forever). A connection whose
            handler marked it ``busy`` (a stream) is never idle. Same sweep.
        max_connections: the most connections one listener holds (default: 10,000, or 3/4
            of the process's file-descriptor limit when lower, read at ``listen``). At the
            limit the listener closes the connections idle longest (a batch of 1/64 of the
            limit) to make room before it accepts another; while none is idle it stops
            accepting (new peers wait in the backlog). One warning is logged per episode
            (until the count is back under 90 % of the limit).
        path: dialing side: the target of every request (``POST /`` for services; an
            HTTP endpoint such as ``micro proxy``'s ``/rpc`` takes a path of its own).
        headers: dialing side: headers sent with every request (``Authorization``).
        tls: dialing side: connect over TLS with this context (the server's certificate
            checked against the dialed host unless the context says otherwise). A close
            under TLS waits as a TLS record the event loop has to read, so before a request
            on a kept-alive connection with bytes waiting, ``send`` lets the loop turn
            (see ``HttpClientSocket._let_tls_read``).

    Raises:
        ValueError: a bad size, ``path`` or fixed header.
    """

    name = "http"

    def __init__(
        self,
        *,
        max_body: int = DEFAULT_MAX_BODY,
        max_header: int = DEFAULT_MAX_HEADER,
        dial_timeout: float = DEFAULT_DIAL_TIMEOUT,
        backlog: int = 1024,
        linger: float = LINGER_SECONDS,
        read_timeout: float | None = READ_TIMEOUT_SECONDS,
        idle_timeout: float | None = IDLE_TIMEOUT_SECONDS,
        max_connections: int | None = None,
        path: str = "/",
        headers: Mapping[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if max_body < 0 or max_header <= 0:
            raise ValueError("max_body and max_header must be positive")
        if max_connections is not None and max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.max_body = max_body
        self.max_header = max_header
        self.dial_timeout = dial_timeout
        self.backlog = backlog
        self.linger = linger
        self.read_timeout = read_timeout
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        request_prefix("check", path=path, headers=headers)  # a bad path or header: ValueError
        self.path = path
        self.headers = dict(headers or {})
        self.tls = tls
        self._listeners: set[HttpListener] = set()
        self._dialed: set[HttpClientSocket] = set()

    def __repr__(self) -> str:
        return f"HttpTransport(max_body={self.max_body}, dial_timeout={self.dial_timeout})"

    async def dial(self, address: str, *, timeout: float | None = None) -> HttpClientSocket:
        """Connect to ``address`` (``host:port``; ``:port`` means 127.0.0.1).

        Raises:
            ConnectError: refused, unreachable, unresolvable, a failed TLS handshake, or not
                connected within ``timeout`` seconds (``dial_timeout`` when None). The detail
                names the address; ``__cause__`` is the OS's (or TLS's) error.
        """
        host, port = split_address(address, default_host="127.0.0.1")
        wait = self.dial_timeout if timeout is None else timeout
        conn = HttpClientSocket(
            address,
            max_body=self.max_body,
            max_header=self.max_header,
            path=self.path,
            headers=self.headers,
            tls=self.tls is not None,
        )
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(wait):
                await loop.create_connection(lambda: conn, host, port, ssl=self.tls)
        except TimeoutError as exc:
            raise ConnectError(
                f"dial {address}: no connection within {wait:g}s", id=TRANSPORT_ID
            ) from exc
        except OSError as exc:  # also ssl.SSLError: the TLS handshake failed
            raise ConnectError(f"dial {address}: {exc.strerror or exc}", id=TRANSPORT_ID) from exc
        self._dialed.add(conn)
        conn._lost.add_done_callback(lambda _: self._dialed.discard(conn))
        return conn

    async def listen(self, address: str, handler: Handler) -> HttpListener:
        """Bind ``address`` (``host:port``; an empty host means 0.0.0.0, port 0 a free port).

        Raises:
            ConnectError: the address cannot be bound.
        """
        host, port = split_address(address, default_host="0.0.0.0")
        listener = HttpListener(
            handler,
            max_body=self.max_body,
            max_header=self.max_header,
            linger=self.linger,
            read_timeout=self.read_timeout,
            idle_timeout=self.idle_timeout,
            max_connections=self.max_connections,
        )
        try:
            await listener.start(host, port, backlog=self.backlog)
        except OSError as exc:
            raise ConnectError(
                f"listen {address}: {exc.strerror or exc}", id=TRANSPORT_ID
            ) from None
        self._listeners.add(listener)
        return listener

    async def close(self) -> None:
        """Stop every listener, close their connections and the dialed ones (never raises)."""
        listeners, self._listeners = self._listeners, set()
        for listener in listeners:
            await listener.close()
            await listener.abort()
        dialed, self._dialed = self._dialed, set()
        for conn in dialed:
            conn._close_now()
        for conn in dialed:
            await conn.wait_lost()
