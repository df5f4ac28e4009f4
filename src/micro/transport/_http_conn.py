"""What the client and server ends of an HTTP connection share: an asyncio Protocol that is
also the :class:`~micro.transport.Socket`.

Parsed messages go to the one task waiting in ``recv`` (a single future per wait) or, when
nobody waits, into a deque; reading pauses while that deque holds too much. ``send`` writes
one buffer and waits only when the transport's write buffer is over its high-water mark.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

from micro.errors import ConnectionClosed, MicroError
from micro.transport import Message, Socket
from micro.transport._http_wire import (
    NAMES,
    TRANSPORT_ID,
    header_name,
    header_value,
    join_address,
)

# Reading pauses when this many parsed messages wait for recv() (or max_body bytes of them).
QUEUE_HIGH = 32
QUEUE_LOW = 8


def _fresh(exc: MicroError) -> MicroError:
    """A new instance per raise, so tracebacks do not pile up on one exception object."""
    return type(exc)(exc.detail, id=exc.id, code=exc.code, status=exc.status)


class HttpConnection(Socket, asyncio.Protocol):
    """One TCP connection speaking HTTP/1.1; subclasses add the parser callbacks but on_header."""

    def __init__(self, *, max_body: int, max_header: int) -> None:
        self.max_body = max_body
        self.max_header = max_header
        self.transport: asyncio.Transport | None = None
        self._queue: collections.deque[Message] = collections.deque()
        self._queued_bytes = 0
        self._waiter: asyncio.Future[Message] | None = None
        self._exc: MicroError | None = None  # set once no further message will arrive
        self._read_paused = False
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._loop = asyncio.get_running_loop()
        self._lost: asyncio.Future[None] = self._loop.create_future()
        # the message being parsed
        self._headers: dict[str, str] = {}
        self._chunks: list[bytes] = []
        self._size = 0  # body bytes so far
        self._in_message = False
        self._in_head = False
        self._head_bytes = 0
        # framing read from the head, consumed (and reset) by on_headers_complete
        self._content_length = -1
        self._chunked = False

    # ------------------------------------------------------------------ Socket API

    @property
    def closed(self) -> bool:
        """True once no further message will arrive: either side closed (or half-closed)."""
        return self._exc is not None

    async def recv(self) -> Message:
        queue = self._queue
        if queue:
            message = queue.popleft()
            self._queued_bytes -= len(message.body)
            if self._read_paused and len(queue) <= QUEUE_LOW:
                self._resume()
            self._took(message)
            return message
        if self._exc is not None:
            raise _fresh(self._exc)
        if self._waiter is not None:
            raise RuntimeError("recv() called while another recv() is waiting")
        waiter: asyncio.Future[Message] = self._loop.create_future()
        self._waiter = waiter
        try:
            message = await waiter
        except asyncio.CancelledError:
            # cancelled after a message was handed over but before this task resumed:
            # put it back so that the next recv gets it
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                message = waiter.result()
                queue.appendleft(message)
                self._queued_bytes += len(message.body)
            raise
        finally:
            self._waiter = None
        self._took(message)
        return message

    async def close(self) -> None:
        self._close_now()

    async def wait_lost(self) -> None:
        """Wait until the connection is gone (after ``close`` or the peer's close)."""
        await asyncio.shield(self._lost)

    def _close_now(self, *, force: bool = False) -> None:
        self.abort_reads(ConnectionClosed("connection closed", id=TRANSPORT_ID))
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.close()

    # ------------------------------------------------------------------ hooks for subclasses

    def _took(self, message: Message) -> None:
        """Called with each message handed out by recv()."""

    def _deliver(self, message: Message) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(message)
            return
        self._queue.append(message)
        self._queued_bytes += len(message.body)
        if not self._read_paused and (
            len(self._queue) >= QUEUE_HIGH or self._queued_bytes >= self.max_body
        ):
            transport = self.transport
            if transport is not None and not transport.is_closing():
                self._read_paused = True
                transport.pause_reading()

    def _resume(self) -> None:
        self._read_paused = False
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.resume_reading()

    def abort_reads(self, exc: MicroError, *, drop_queued: bool = False) -> None:
        """No message will arrive after the queued ones: wake the waiter with ``exc``."""
        if drop_queued:
            self._queue.clear()
            self._queued_bytes = 0
        if self._exc is None:
            self._exc = exc
        waiter = self._waiter  # a waiter only exists while the queue is empty
        if waiter is not None and not waiter.done():
            waiter.set_exception(_fresh(exc))
        self._headers = {}
        self._chunks = []
        self._size = 0
        self._in_message = self._in_head = False

    def on_message_begin(self) -> None:
        self._headers = {}
        self._in_message = self._in_head = True
        self._head_bytes = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        key = NAMES.get(name)
        if key is None:
            key = NAMES.learn(name)
        if key:
            try:
                text = value.decode()
            except UnicodeDecodeError:
                text = header_value(value)
            self._headers.setdefault(key, text)
        elif self._in_head:  # a header the transport consumes (ignored in trailers)
            key = header_name(name)
            if key == "Content-Length":
                self._content_length = int(value)
            elif key == "Transfer-Encoding":
                self._chunked = True
            else:
                self._hop_header(key, value)

    def _hop_header(self, key: str, value: bytes) -> None:
        """Any other header of the head the transport consumes; a side that needs one reads it."""

    def _take_body(self) -> bytes:
        chunks = self._chunks
        if not chunks:
            return b""
        self._chunks = []
        self._size = 0
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    # ------------------------------------------------------------------ write side

    def _check_writable(self) -> asyncio.Transport:
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ConnectionClosed(f"connection to {self.remote} is closed", id=TRANSPORT_ID)
        return transport

    def _write(self, transport: asyncio.Transport, head: bytes, body: bytes) -> None:
        if len(body) < 65536:
            transport.write(head + body if body else head)
        else:
            transport.writelines((head, body))

    async def _drain(self) -> None:
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._drain_waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._drain_waiters:
                self._drain_waiters.remove(waiter)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drainers(None)

    def _wake_drainers(self, exc: BaseException | None) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                if exc is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(exc)

    # ------------------------------------------------------------------ protocol events

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.local = join_address(transport.get_extra_info("sockname"))
        self.remote = join_address(transport.get_extra_info("peername"))

    def connection_lost(self, exc: Exception | None) -> None:
        detail = f"connection to {self.remote} closed"
        if exc is not None:
            detail = f"{detail}: {exc}"
        self._write_paused = False
        self._wake_drainers(ConnectionClosed(detail, id=TRANSPORT_ID))
        self.abort_reads(ConnectionClosed(detail, id=TRANSPORT_ID))
        if not self._lost.done():
            self._lost.set_result(None)
