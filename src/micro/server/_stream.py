"""The server's side of a stream over one transport connection (see docs/protocol.md)."""

from __future__ import annotations

import asyncio
from typing import Any

from micro.codec import Codec, CodecError
from micro.errors import ConnectionClosed, InternalServerError, MicroError
from micro.server import EndOfStream, Stream
from micro.transport import Message, Socket, get_header

__all__ = ["EOS", "ServerStream"]

EOS = "EOS"
_INBOX_SIZE = 256  # messages read ahead of the handler; then the socket is not read


class ServerStream(Stream[Any, Any]):
    """Sends through the socket; a reader task (:meth:`pump`) feeds :meth:`recv` (a
    bidirectional stream) or :meth:`request` (a server stream's one message).

    ``pump`` returns when the client closes the connection, which is how the server learns
    that a stream's client went away while its handler waits on something else.
    """

    def __init__(
        self,
        sock: Socket,
        codec: Codec,
        *,
        endpoint: str,
        service: str,
        request_type: Any,
        reply_header: dict[str, str],
        reads: bool,
        takes_request: bool = False,
    ) -> None:
        self._sock = sock
        self._codec = codec
        self._endpoint = endpoint
        self._service = service
        self._request_type = request_type
        self._header = reply_header
        self._reads = reads
        self.takes_request = takes_request
        self._inbox: asyncio.Queue[Message | str] | None = (
            asyncio.Queue(_INBOX_SIZE) if reads or takes_request else None
        )
        self._taken = False  # a message was queued (a server stream takes just one)
        self._end: str | None = None  # EOS, "" (connection closed) or the client's error

    @property
    def content_type(self) -> str:
        """The client's content type, which every message of the stream carries."""
        return self._header["Content-Type"]

    async def recv(self) -> Any:
        if self._end is None:
            if self._inbox is None or not self._reads:
                raise EndOfStream("this endpoint streams to the client only")
            item = await self._inbox.get()
            if isinstance(item, Message):
                return self._decode(item.body)
            self._end = item
        if self._end == EOS:
            raise EndOfStream
        if not self._end:
            raise ConnectionClosed("the client closed the stream", id=self._service)
        raise MicroError.parse(self._end)

    async def send(self, message: Any) -> None:
        try:
            body = self._codec.encode(message)
        except CodecError as exc:
            raise InternalServerError(f"{self._endpoint}: {exc.detail}", id=self._service) from None
        await self._sock.send(Message(dict(self._header), body))

    async def end(self, error: MicroError | None) -> None:
        """Send the last message: ``EOS``, or the error that ended the handler."""
        header = dict(self._header)
        header["Micro-Error"] = header["X-Micro-Error"] = EOS if error is None else str(error)
        await self._sock.send(Message(header, b""))

    async def request(self) -> Message | None:
        """A server stream's request: the client's first message after the opening one.

        go-micro v1 clients open a stream with a placeholder body and send the request as
        the first stream message. None when the client ended its half (``EOS``) without
        sending one: the opening body then stands in.

        Raises:
            ConnectionClosed: the client went away first.
            MicroError: the client ended the stream with this error.
        """
        assert self._inbox is not None, "this stream takes no request message"
        item = await self._inbox.get()
        if isinstance(item, Message):
            return item
        if item == EOS:
            return None
        if not item:
            raise ConnectionClosed("the client closed the stream", id=self._service)
        raise MicroError.parse(item)

    async def pump(self) -> None:
        """Read the client's messages until the connection closes; keep those taken."""
        while True:
            try:
                message = await self._sock.recv()
            except (MicroError, OSError):
                self._put("")
                return
            if self._inbox is None or (self._taken and not self._reads):
                continue  # a server stream reads nothing after its request
            self._taken = True
            error = get_header(message.header, "Micro-Error")
            await self._inbox.put(error or message)

    def _put(self, item: str) -> None:
        if self._inbox is not None:
            try:
                self._inbox.put_nowait(item)
            except asyncio.QueueFull:
                self._end = item

    def _decode(self, body: bytes) -> Any:
        try:
            return self._codec.decode(body, self._request_type)
        except CodecError as exc:
            if not exc.id:
                exc.id = self._service
            raise
