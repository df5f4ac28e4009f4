"""The HTTP broker's receiving side: the transport's HTTP/1.1 server, taught the request target.

It reuses :mod:`micro.transport._http_server` (httptools, keep-alive, pipelining, 400/413
refusals) and adds what a broker endpoint needs: the request target (``/_sub?id=...``,
handed over as the pseudo-header ``:target``), a broker-specific 405, and answers with a
status other than 200 (``send_status``).
"""

from __future__ import annotations

from micro.errors import MicroError, status_text
from micro.transport import Handler, Message
from micro.transport._http_listener import HttpListener
from micro.transport._http_server import HttpServerSocket
from micro.transport._http_wire import RESPONSE_PREFIX, encode

__all__ = ["TARGET", "BrokerListener", "BrokerSocket"]

TARGET = ":target"
_POST = b"POST"
_OK = Message({}, b"")


class BrokerSocket(HttpServerSocket):
    """An accepted connection to the broker endpoint."""

    _target = b""

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._target = b""

    def on_url(self, url: bytes) -> None:
        self._target += url

    def on_headers_complete(self) -> None:
        method = self._parser.get_method()
        if method != _POST:
            self._stop(
                405,
                f"method {method.decode('latin-1')} not allowed: this is a micro HTTP broker "
                "endpoint; publish with POST /_sub?id=<subscriber id>",
                allow="POST",
            )
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._headers[TARGET] = self._target.decode("latin-1")
        super().on_message_complete()

    async def send_ok(self) -> None:
        """Answer ``200 OK`` with an empty body, as go-micro's broker does."""
        await self.send(_OK)

    async def send_error(self, error: MicroError) -> None:
        """Answer with ``error.code`` as the status, its JSON as body and ``Micro-Error``."""
        text = error.to_json()
        body = text.encode()
        code = error.code if 400 <= error.code <= 599 else 500
        head = f"HTTP/1.1 {code} {status_text(code) or 'Error'}\r\n"
        header = {"Content-Type": "application/json", "Micro-Error": text}
        if self._close_after_send:  # the peer's last request: the plain path closes after it
            await self.send(Message(header, body))
            return
        prefix = head + RESPONSE_PREFIX.split("\r\n", 1)[1]
        transport = self._check_writable()
        self._write(transport, encode(prefix, header, body), body)
        if self._write_paused:
            await self._drain()


class BrokerListener(HttpListener):
    """An :class:`HttpListener` whose connections are :class:`BrokerSocket`."""

    def __init__(self, handler: Handler, *, max_body: int, max_header: int) -> None:
        super().__init__(handler, max_body=max_body, max_header=max_header)

    def _accept(self) -> BrokerSocket:
        return BrokerSocket(self)
