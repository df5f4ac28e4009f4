"""The dialing side of the HTTP transport: ``send`` writes ``POST /``, ``recv`` returns the
next response parsed by ``httptools.HttpResponseParser``.

Any number of responses may follow one request (a stream), in any segmentation. Interim
``1xx`` responses are skipped. A response whose status is not 200 and that carries no
``Micro-Error`` gets one made from its status and body, so the client's ordinary error path
sees a proper error (code = the HTTP status).

How the connection ends is kept, because callers act on it:

- A response saying ``Connection: close`` (or an HTTP/1.0 one without keep-alive) is the
  last: the socket counts as closed once it is read, so a pool never reuses it.
- Before a request on a connection that answered the last one, ``send`` asks the kernel
  whether the server's close (or reset) already waits unread, which the event loop may not
  have got to yet (go-micro v1.0 closes after every error answer): if so nothing is written
  and ``send`` raises, so the request was provably never read.
- ``answered`` is False after a ``send`` only until a byte arrives or the connection closes
  in order (a server may read a request, then close without answering); a reset with
  nothing answered leaves it False, since the server's system discarded the request unread.
- ``cut_off``: the connection ended by a reset, or in the middle of a response, rather than
  by a close between messages.
"""

from __future__ import annotations

import asyncio
import select
import socket
from collections.abc import Mapping
from typing import Any

import httptools

from micro.errors import BadRequest, ConnectionClosed, MicroError, PayloadTooLarge
from micro.transport import Message
from micro.transport._http_conn import HttpConnection
from micro.transport._http_wire import (
    TRANSPORT_ID,
    encode,
    request_prefix,
    status_error,
)

_NO_BODY = frozenset({204, 304})
_PEEK = socket.MSG_PEEK | getattr(socket, "MSG_DONTWAIT", 0)
_Raw = tuple[int, int, int, int]  # descriptor, family, type, protocol
_TLS_TURNS = 4


class _Stop(Exception):
    """Raised inside a parser callback to stop parsing with ``error``."""

    def __init__(self, error: MicroError) -> None:
        super().__init__(error.detail)
        self.error = error


class HttpClientSocket(HttpConnection):
    """A dialed connection to ``address`` (also the ``Host`` header of every request)."""

    def __init__(
        self,
        address: str,
        *,
        max_body: int,
        max_header: int,
        path: str = "/",
        headers: Mapping[str, str] | None = None,
        tls: bool = False,
    ) -> None:
        super().__init__(max_body=max_body, max_header=max_header)
        self.address = address
        self.remote = address
        self._prefix = request_prefix(address, path=path, headers=headers)
        self._tls = tls  # the connection is wrapped in TLS (see _let_tls_read)
        self._parser = httptools.HttpResponseParser(self)
        self._status = 200
        self._until_eof = False  # no length and not chunked: the body ends with the connection
        self._stop_error: MicroError | None = None  # set by a callback that stops the parser
        self._failed = False
        self._answered = False  # since the last send: a byte arrived, or an orderly close
        self._cut_off = False
        self._raw: _Raw | None = None  # the OS socket, to look for a close that waits

    @property
    def answered(self) -> bool:
        """Whether the server may have read the last request: a byte came back since the
        last ``send``, or the connection then closed in order. False while nothing happened,
        and after a reset with nothing answered (the request was discarded unread)."""
        return self._answered

    @property
    def cut_off(self) -> bool:
        """True once the connection ended by a reset, or with a response only partly read."""
        return self._cut_off

    async def send(self, message: Message) -> None:
        if self._answered and self._exc is None and self._take_waiting_end() and self._tls:
            await self._let_tls_read()
        self._answered = False
        if self._exc is not None:  # no answer could ever be read: do not send
            raise ConnectionClosed(f"connection to {self.remote} is closed", id=TRANSPORT_ID)
        transport = self._check_writable()
        body = message.body
        self._write(transport, encode(self._prefix, message.header, body), body)
        if self._write_paused:
            await self._drain()

    # ------------------------------------------------------------------ protocol events

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._raw = _raw_socket(transport)

    def data_received(self, data: bytes) -> None:
        self._answered = True
        if self._failed:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(BadRequest(f"{self.remote} switched protocols", id=TRANSPORT_ID))
            return
        except httptools.HttpParserError as exc:
            error, self._stop_error = self._stop_error, None
            if error is None:
                error = BadRequest(
                    f"malformed HTTP response from {self.remote}: {exc}", id=TRANSPORT_ID
                )
            self._fail(error)
            return
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header:
                self._fail(
                    BadRequest(
                        f"response head from {self.remote} exceeds the {self.max_header} "
                        "byte limit",
                        id=TRANSPORT_ID,
                    )
                )

    def eof_received(self) -> bool:
        self._peer_closed()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self._exc is None:  # not after a close we saw or made
            self._failed_by(exc)
        super().connection_lost(exc)

    def _failed_by(self, exc: Exception) -> None:
        """The connection broke (a reset, mostly) before any orderly end."""
        self._cut_off = True
        if not isinstance(exc, ConnectionResetError | BrokenPipeError):
            self._answered = True  # not a reset: the request may have been read

    def _peer_closed(self) -> None:
        """The server closed its side (FIN): no message follows the ones parsed so far."""
        if self._until_eof and self._in_message:
            self.on_message_complete()
        self._answered = True
        if self._in_message:
            self._cut_off = True
            reason = f"{self.remote} closed the connection in the middle of a response"
        else:
            reason = f"{self.remote} closed the connection"
        self.abort_reads(ConnectionClosed(reason, id=TRANSPORT_ID))

    def _take_waiting_end(self) -> bool:
        """Act now on a close or reset that waits unread in the kernel (the loop has not
        run since it arrived): the request about to be sent would never be read.

        Returns True when bytes wait unread instead (data, or under TLS a close: a TLS
        close is a record like any other until the TLS layer has read it)."""
        transport, raw = self.transport, self._raw
        if raw is None or transport is None or transport.is_closing():
            return False
        end = _waiting_end(raw)
        if end is None or end is False:
            return end is False
        if isinstance(end, OSError):
            self._failed_by(end)
            detail = f"connection to {self.remote} closed: {end}"
            self.abort_reads(ConnectionClosed(detail, id=TRANSPORT_ID))
        else:
            self._peer_closed()
        transport.close()
        return False

    async def _let_tls_read(self) -> None:
        """Let the event loop read what waits before a request goes out under TLS.

        A server closing an idle TLS connection sends a close_notify record and keeps the
        TCP connection open until the reply, so only the TLS layer, once it reads the
        record, can tell the close from data (asyncio's TLS layer then calls
        ``eof_received`` at once). Two turns of the loop suffice: the first polls the
        socket and queues its reader behind this task, the second runs it; a few more
        are allowed while bytes still wait (reading paused by a full queue never ends,
        so the turns are bounded)."""
        raw = self._raw
        for _ in range(_TLS_TURNS):
            await asyncio.sleep(0)
            if self._exc is not None or raw is None or not _readable(raw[0]):
                return

    def _fail(self, error: MicroError) -> None:
        """The peer sent something that is not a response: fail recv with ``error``, close."""
        self._failed = True
        self.abort_reads(error)
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.close()

    # ------------------------------------------------------------------ parser callbacks

    def on_headers_complete(self) -> None:
        self._in_head = False
        status = self._status = self._parser.get_status_code()
        length, self._content_length = self._content_length, -1
        chunked, self._chunked = self._chunked, False
        if length > self.max_body:
            self._stop(
                PayloadTooLarge(
                    f"response body of {length} bytes exceeds the {self.max_body} byte limit",
                    id=TRANSPORT_ID,
                )
            )
        self._until_eof = length < 0 and not chunked and status >= 200
        self._until_eof = self._until_eof and status not in _NO_BODY

    def on_body(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._size += len(chunk)
        if self._size > self.max_body:
            self._stop(
                PayloadTooLarge(
                    f"response body exceeds the {self.max_body} byte limit", id=TRANSPORT_ID
                )
            )

    def on_message_complete(self) -> None:
        self._in_message = self._until_eof = False
        status = self._status
        if status == 200:
            self._deliver(Message(self._headers, self._take_body()))
        elif status >= 200:
            self._deliver_status(status)
        else:  # 1xx interim response (100 Continue): not a message
            self._take_body()
            return
        if not self._parser.should_keep_alive():  # Connection: close, or HTTP/1.0
            reason = f"{self.remote} closes the connection after its last response"
            self.abort_reads(ConnectionClosed(reason, id=TRANSPORT_ID))

    def _deliver_status(self, status: int) -> None:
        headers, body = self._headers, self._take_body()
        if "Micro-Error" not in headers and "X-Micro-Error" not in headers:
            headers["Micro-Error"] = status_error(status, body)
        self._deliver(Message(headers, body))

    def _stop(self, error: MicroError) -> None:
        self._stop_error = error
        raise _Stop(error)


def _raw_socket(transport: asyncio.BaseTransport) -> _Raw | None:
    """What :func:`_waiting_end` needs, read once (the socket object's attributes are slow)."""
    raw = transport.get_extra_info("socket")
    if raw is None or not hasattr(select, "poll"):
        return None
    return raw.fileno(), int(raw.family), int(raw.type), raw.proto


def _readable(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def _waiting_end(raw: _Raw) -> OSError | bool | None:
    """What waits first in the socket's receive queue, without taking it: ``True`` for the
    peer's close, an error for its reset, ``False`` for data, None for nothing. The common
    answer, nothing, costs one ``poll``."""
    fd, family, kind, proto = raw
    if not _readable(fd):
        return None
    try:
        probe = socket.socket(family, kind, proto, fd)
    except OSError:
        return None
    try:
        closed = probe.recv(1, _PEEK) == b""
    except (BlockingIOError, InterruptedError):
        return None
    except OSError as exc:
        return exc
    finally:
        probe.detach()  # the descriptor belongs to the transport
    return closed
