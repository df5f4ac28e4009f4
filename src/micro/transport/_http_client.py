"""The dialing side of the HTTP transport: ``send`` writes ``POST /``, ``recv`` returns the
next response parsed by ``httptools.HttpResponseParser``.

Any number of responses may follow one request (a stream), in any segmentation. Interim
``1xx`` responses are skipped. A response whose status is not 200 and that carries no
``Micro-Error`` gets one made from its status and body, so the client's ordinary error path
sees a proper error (code = the HTTP status).
"""

from __future__ import annotations

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


class _Stop(Exception):
    """Raised inside a parser callback to stop parsing with ``error``."""

    def __init__(self, error: MicroError) -> None:
        super().__init__(error.detail)
        self.error = error


class HttpClientSocket(HttpConnection):
    """A dialed connection to ``address`` (also the ``Host`` header of every request)."""

    def __init__(self, address: str, *, max_body: int, max_header: int) -> None:
        super().__init__(max_body=max_body, max_header=max_header)
        self.address = address
        self.remote = address
        self._prefix = request_prefix(address)
        self._parser = httptools.HttpResponseParser(self)
        self._status = 200
        self._until_eof = False  # no length and not chunked: the body ends with the connection
        self._stop_error: MicroError | None = None  # set by a callback that stops the parser
        self._failed = False
        self._answered = False  # a byte arrived since the last send

    @property
    def answered(self) -> bool:
        return self._answered

    async def send(self, message: Message) -> None:
        self._answered = False
        if self._exc is not None:  # no answer could ever be read: do not send
            raise ConnectionClosed(f"connection to {self.remote} is closed", id=TRANSPORT_ID)
        transport = self._check_writable()
        body = message.body
        self._write(transport, encode(self._prefix, message.header, body), body)
        if self._write_paused:
            await self._drain()

    # ------------------------------------------------------------------ protocol events

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
        if self._until_eof and self._in_message:
            self.on_message_complete()
        self.abort_reads(ConnectionClosed(f"{self.remote} closed the connection", id=TRANSPORT_ID))
        return False

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
