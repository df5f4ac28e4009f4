"""The accepting side of the HTTP transport: one :class:`HttpServerSocket` per connection,
parsed with ``httptools.HttpRequestParser``, owned by an
:class:`~micro.transport._http_listener.HttpListener`.

The transport answers on its own only what a handler could not: bytes that are not HTTP
(400), a method other than POST (405), a body over ``max_body`` (413), a request whose head
and body do not arrive in full within ``read_timeout`` seconds of its first byte (408: a
stalled or deliberately slow client never holds a handler's memory for long). It writes the
response with ``Connection: close``, half-closes, discards what the peer still sends for a
short while (so the kernel does not turn the close into a reset that eats the answer), then
closes. The handler's ``recv`` raises :class:`~micro.errors.ConnectionClosed`.

A socket notes when it was last active (a request began, a response went) and whether it is
:attr:`~HttpServerSocket.idle`; its listener closes the ones idle too long, or idle longest
when it needs room.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import httptools

from micro.errors import ConnectionClosed
from micro.transport import Message
from micro.transport._http_conn import HttpConnection
from micro.transport._http_wire import (
    CONTINUE,
    RESPONSE_CLOSE_PREFIX,
    RESPONSE_PREFIX,
    TRANSPORT_ID,
    encode,
    error_response,
)

if TYPE_CHECKING:
    from micro.transport._http_listener import HttpListener

logger = logging.getLogger("micro.transport.http")

LINGER_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 30.0
_POST = b"POST"


class _Refuse(Exception):
    """Raised inside a parser callback to stop parsing and answer with a status."""

    def __init__(self, status: int, detail: str, allow: str = "") -> None:
        super().__init__(detail)
        self.status, self.detail, self.allow = status, detail, allow


class HttpServerSocket(HttpConnection):
    """An accepted connection: ``recv`` yields each request, ``send`` writes a 200 response.

    A request sent with ``Connection: close`` (or HTTP/1.0 without keep-alive) is the last
    one read; the response to it carries ``Connection: close`` and the connection closes after.
    """

    def __init__(self, listener: HttpListener) -> None:
        super().__init__(max_body=listener.max_body, max_header=listener.max_header)
        self._listener = listener
        self._parser = httptools.HttpRequestParser(self)
        self._expect = False
        self._upgrade = False
        self._upgrade_length = -1  # body length of a POST that also asked for an Upgrade
        self._upgrade_headers: dict[str, str] = {}
        self._ignore_input = False  # refused, or past a Connection: close request
        self._linger: asyncio.TimerHandle | None = None
        self._close_at: Message | None = None
        self._close_after_send = False
        self._refusal: _Refuse | None = None
        self._began = 0.0  # loop time the request being read began; 0: none (read_timeout)
        self._active = self._loop.time()  # the last request began or response went (idle)
        self._fresh = True  # no request has begun yet

    @property
    def idle(self) -> bool:
        """True when no request is in progress: none queued or half read, the handler waits
        in ``recv`` (or has not started on a connection that sent nothing yet), and it has
        not marked the connection ``busy`` (a stream).
        """
        return (
            (self._waiter is not None or self._fresh)
            and not self._queue
            and not self._in_message
            and self._upgrade_length < 0
            and self._exc is None
            and not self.busy
        )

    async def send(self, message: Message) -> None:
        transport = self._check_writable()
        self._active = self._loop.time()
        body = message.body
        if self._close_after_send:
            self._write(transport, encode(RESPONSE_CLOSE_PREFIX, message.header, body), body)
            self._ignore_input = True
            self.abort_reads(ConnectionClosed("connection closed", id=TRANSPORT_ID))
            transport.close()
            return
        self._write(transport, encode(RESPONSE_PREFIX, message.header, body), body)
        if self._write_paused:
            await self._drain()

    def _close_now(self, *, force: bool = False) -> None:
        if self._linger is None or force:  # else a refusal is being flushed; its timer closes
            super()._close_now(force=force)

    def _took(self, message: Message) -> None:
        if message is self._close_at:
            self._close_after_send = True

    def _check_writable(self) -> asyncio.Transport:
        if self._linger is not None:
            raise ConnectionClosed(f"connection to {self.remote} is closed", id=TRANSPORT_ID)
        return super()._check_writable()

    # ------------------------------------------------------------------ protocol events

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._listener._attach(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger is not None:
            self._linger.cancel()
        self._listener._detach(self)
        super().connection_lost(exc)

    def eof_received(self) -> bool:
        if self._ignore_input:
            return False
        # A half-close: answer what was asked, then the handler's recv ends the connection.
        self.abort_reads(ConnectionClosed(f"{self.remote} closed the connection", id=TRANSPORT_ID))
        return True

    def data_received(self, data: bytes) -> None:
        if self._ignore_input:
            return
        if self._upgrade_length >= 0:
            data = self._raw_body(data)
            if not data:
                return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._start_raw_body(data[upgrade.args[0] :])
            return
        except httptools.HttpParserError as exc:
            if self._close_at is None:
                self._refuse_error(exc)
            return  # else llhttp refuses data after `Connection: close`: dropped
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header:
                self._refuse(400, f"request head exceeds the {self.max_header} byte limit")

    def _refuse_error(self, exc: Exception) -> None:
        refusal, self._refusal = self._refusal, None
        if refusal is not None:
            self._refuse(refusal.status, refusal.detail, refusal.allow)
            return
        if isinstance(exc, httptools.HttpParserCallbackError):
            logger.error("HTTP request callback failed", exc_info=exc.__context__ or exc)
        self._refuse(400, f"malformed HTTP request: {exc}")

    def _refuse(self, status: int, detail: str, allow: str = "") -> None:
        self._ignore_input = True
        self._read_done()
        reason = f"refused a request from {self.remote} with {status}: {detail}"
        self.abort_reads(ConnectionClosed(reason, id=TRANSPORT_ID), drop_queued=True)
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(error_response(status, detail, allow=allow))
        if self._read_paused:
            self._resume()
        if transport.can_write_eof():
            transport.write_eof()
        self._linger = self._loop.call_later(self._listener.linger, transport.close)

    def _read_done(self) -> None:
        self._began = 0.0

    def _read_timed_out(self, timeout: float) -> None:
        self._refuse(408, f"request not received in full within {timeout:g}s of its first byte")

    # ------------------------------------------------------------------ parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._fresh = False
        self._active = now = self._loop.time()
        if self._listener.read_timeout and not self._began:
            self._began = now  # the listener's sweep enforces the limit

    def _hop_header(self, key: str, value: bytes) -> None:
        if key == "Expect":
            self._expect = value.lower() == b"100-continue"
        elif key == "Upgrade":
            self._upgrade = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        method = self._parser.get_method()
        if method != _POST:
            self._stop(
                405,
                f"method {method.decode('latin-1')} not allowed: this is a micro RPC endpoint "
                "(go-micro mucp); POST / with Micro-Service and Micro-Endpoint headers",
                allow="POST",
            )
        length, self._content_length = self._content_length, -1
        if length > self.max_body:
            self._stop(
                413, f"request body of {length} bytes exceeds the {self.max_body} byte limit"
            )
        if self._upgrade or self._chunked or self._expect:
            self._special_head(length)

    def _special_head(self, length: int) -> None:
        chunked, self._chunked = self._chunked, False
        self._upgrade = False
        if self._parser.should_upgrade():
            if chunked:
                self._stop(400, "protocol upgrade with a chunked body is not supported")
            self._upgrade_length = max(length, 0)
        if self._expect and self.transport is not None:
            self.transport.write(CONTINUE)
        self._expect = False

    def on_body(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._size += len(chunk)
        if self._size > self.max_body:
            self._stop(413, f"request body exceeds the {self.max_body} byte limit")

    def on_message_complete(self) -> None:
        self._in_message = False
        if self._upgrade_length < 0:
            self._read_done()
        if self._close_at is not None:
            return  # pipelined after a Connection: close request: never answered, dropped
        if self._upgrade_length >= 0:  # the body follows as "upgraded" bytes
            self._upgrade_headers = self._headers
            return
        message = Message(self._headers, self._take_body())
        if not self._parser.should_keep_alive():
            self._close_at = message
            self._ignore_input = True
        self._deliver(message)

    def _stop(self, status: int, detail: str, allow: str = "") -> None:
        self._refusal = _Refuse(status, detail, allow)
        raise self._refusal

    # ------------------------------------------------------------------ POST + Upgrade
    # httptools skips the body of a request that asks for an Upgrade and hands back the rest
    # as "upgraded" bytes. We never upgrade: read the body by its Content-Length ourselves,
    # then carry on with a fresh parser.

    def _start_raw_body(self, rest: bytes) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._in_message = True
        rest = self._raw_body(rest)
        if rest:
            self.data_received(rest)

    def _raw_body(self, data: bytes) -> bytes:
        """Take the Upgrade request's body bytes; return what follows the body."""
        need = self._upgrade_length - self._size
        take = data[:need] if need > 0 else b""
        if take:
            self._chunks.append(take)
            self._size += len(take)
        if len(take) < need:
            return b""
        self._upgrade_length = -1
        self._in_message = False
        self._read_done()
        message = Message(self._upgrade_headers, self._take_body())
        self._upgrade_headers = {}
        self._deliver(message)
        return data[len(take) :]
