"""One ``tcp`` connection (an asyncio Protocol) and the streams multiplexed on it.

Both ends use :class:`TcpConnection`; ``client`` says which end it is. A dialed or accepted
:class:`TcpStream` is a :class:`~micro.transport.Socket`. The frame layout is in
:mod:`micro.transport._tcp_wire` and ``docs/protocol.md``.

Speed: frames are decoded straight from ``data_received`` (no task per frame), a small
message is one ``struct`` pack and one buffer append, and everything written in one turn of
the event loop leaves in one ``transport.write`` (flushed by one ``call_soon``, or at once
when the batch passes :data:`FLUSH_BYTES`). Reading never pauses: per-stream windows bound
what a peer may send, so a stalled stream holds back only itself.
"""

from __future__ import annotations

import asyncio
import logging
import socket as _socket
from collections import deque
from collections.abc import Callable
from itertools import chain
from typing import Any, cast

from micro.errors import BadRequest, ConnectError, ConnectionClosed, MicroError, PayloadTooLarge
from micro.transport import Message, Socket
from micro.transport._tcp_wire import (
    ACK,
    CLOSE,
    DATA,
    GOAWAY,
    HEAD,
    HELLO,
    MESSAGE,
    MESSAGE_FRAME,
    MESSAGE_HEAD,
    MESSAGE_HEAD_SIZE,
    OPEN,
    PING,
    RESET,
    U32,
    WINDOW,
    FrameDecoder,
    ProtocolError,
    decode_goaway,
    decode_hello,
    decode_message_head,
    decode_reset,
    encode_frame,
    encode_goaway,
    encode_header_block,
    encode_hello,
    encode_reset,
    parse_header_block,
)

__all__ = ["StreamHandler", "TcpConnection", "TcpStream"]

_unpack_message_head = MESSAGE_HEAD.unpack_from
_chain = chain.from_iterable

logger = logging.getLogger("micro.transport.tcp")

TRANSPORT_ID = "go.micro.transport"
FLUSH_BYTES = 256 * 1024  # a batch this large is written at once
CHUNK = 256 * 1024  # the largest body slice put in one frame
_MESSAGE_HEAD_SIZE = MESSAGE_HEAD_SIZE

# RESET and GOAWAY codes
REFUSED = 503  # the listener takes no new streams (closed, or at its limit)
TOO_LARGE = 413
BAD = 400
CANCEL = 499


class TcpStream(Socket):
    """One virtual connection: a dialed or accepted socket on a shared TCP connection."""

    __slots__ = (
        "_conn",
        "_credit",
        "_credit_waiter",
        "_error",
        "_inbox",
        "_need",
        "_opening",
        "_partial",
        "_partial_header",
        "_partial_held",
        "_recv_left",
        "_sending",
        "_unacked",
        "_waiter",
        "busy",
        "id",
        "local",
        "remote",
    )

    def __init__(self, conn: TcpConnection, stream_id: int) -> None:
        self._conn = conn
        self.id = stream_id
        self.local = conn.local
        self.remote = conn.remote
        self.busy = False
        self._inbox: deque[tuple[Message, int]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._error: tuple[type[MicroError], str] | None = None
        self._credit = conn.peer_window  # bytes we may still send
        self._credit_waiter: asyncio.Future[None] | None = None
        self._recv_left = conn.window  # bytes the peer may still send us
        self._unacked = 0  # bytes consumed, not yet given back with WINDOW
        self._partial: bytearray | None = None
        self._partial_header: dict[str, str] = {}
        self._partial_held = 0  # bytes of the partial message not yet given back
        self._need = 0
        self._sending: asyncio.Lock | None = None
        self._opening: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"TcpStream(id={self.id}, remote={self.remote!r}, closed={self.closed})"

    @property
    def closed(self) -> bool:
        return self._error is not None

    @property
    def connection(self) -> TcpConnection:
        return self._conn

    # -- receiving ------------------------------------------------------------------------

    async def recv(self) -> Message:
        inbox = self._inbox
        while True:
            if inbox:
                message, held = inbox.popleft()
                if held:
                    self._consumed(held)
                if self._partial_held and not inbox:
                    # caught up: the message in progress may now take the whole window
                    self._consumed(self._partial_held)
                    self._partial_held = 0
                return message
            if self._error is not None:
                cls, detail = self._error
                raise cls(detail, id=TRANSPORT_ID)
            waiter = self._conn.loop.create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                self._waiter = None

    def _consumed(self, n: int) -> None:
        self._unacked += n
        if self._unacked >= self._conn.window_half and self._error is None:
            self._conn.write(HEAD.pack(4, WINDOW, 0, self.id) + U32.pack(self._unacked))
            self._recv_left += self._unacked
            self._unacked = 0

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _deliver(self, message: Message, held: int) -> None:
        self._inbox.append((message, held))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _on_message(self, payload: bytes) -> None:
        conn = self._conn
        size = len(payload)
        if size < _MESSAGE_HEAD_SIZE or self._partial is not None:
            decode_message_head(payload, conn.max_header)  # raises: too short
            raise ProtocolError(f"stream {self.id}: MESSAGE before the last body was complete")
        block_len, body_len = _unpack_message_head(payload)
        if block_len > conn.max_header or body_len > conn.max_body:
            self._refuse(block_len, body_len)
            return
        start = _MESSAGE_HEAD_SIZE + block_len
        header: dict[str, str] = {}
        if block_len:
            block = payload[_MESSAGE_HEAD_SIZE:start]
            parts = block.decode("utf-8", "surrogateescape").split("\0")
            header = dict(zip(parts[::2], parts[1::2], strict=False))
            if len(header) * 2 != len(parts) or "" in header:
                header = parse_header_block(block)  # the rules, and their errors
        if size - start == body_len:  # the whole message in one frame
            self._inbox.append((Message(header, payload[start:]), size))
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            return
        decode_message_head(payload, conn.max_header)  # raises: sizes that do not add up
        self._partial = bytearray(payload[start:])
        self._partial_header = header
        self._need = body_len
        self._hold_partial(size)

    def _hold_partial(self, n: int) -> None:
        """Bytes of a message in progress: given back at once while the reader is caught
        up (so a body larger than the window can arrive), else held like whole messages
        (so a reader that stalls stops its sender)."""
        if self._inbox:
            self._partial_held += n
        else:
            self._consumed(n)

    def _refuse(self, block_len: int, body_len: int) -> None:
        """Reset a stream whose message is over a limit (only this stream)."""
        conn = self._conn
        if block_len > conn.max_header:
            code = BAD
            detail = f"headers of {block_len} bytes are over the limit of {conn.max_header}"
            cls: type[MicroError] = BadRequest if conn.client else ConnectionClosed
        else:
            code = TOO_LARGE
            detail = f"a body of {body_len} bytes is over the limit of {conn.max_body} bytes"
            cls = PayloadTooLarge if conn.client else ConnectionClosed
        conn.write(encode_reset(self.id, code, detail))
        self._gone(cls, detail)

    def _on_data(self, payload: bytes) -> None:
        partial = self._partial
        if partial is None:
            raise ProtocolError(f"stream {self.id}: DATA with no message in progress")
        partial += payload
        if len(partial) > self._need:
            raise ProtocolError(f"stream {self.id}: more body than the MESSAGE declared")
        if len(partial) == self._need:
            self._partial = None
            held, self._partial_held = len(payload) + self._partial_held, 0
            self._deliver(Message(self._partial_header, bytes(partial)), held)
        else:
            self._hold_partial(len(payload))

    # -- sending --------------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        if self._error is not None:
            raise ConnectionClosed(self._error[1], id=TRANSPORT_ID)
        conn = self._conn
        header = message.header
        block = b""
        if header:  # encode_header_block, inlined
            text = "\0".join(_chain(header.items()))
            try:
                if text.count("\0") != 2 * len(header) - 1 or "" in header:
                    encode_header_block(header)  # raises, saying what is wrong
                block = text.encode("utf-8", "surrogateescape")
            except ValueError as exc:
                raise BadRequest(f"cannot send the headers: {exc}", id=TRANSPORT_ID) from None
        if len(block) > conn.max_block:
            raise BadRequest(
                f"headers of {len(block)} bytes are over the limit of {conn.max_block} "
                "(the header limit, or half the peer's window or frame)",
                id=TRANSPORT_ID,
            )
        body = message.body
        size = _MESSAGE_HEAD_SIZE + len(block) + len(body)
        sending = self._sending  # a large message of this stream still going out
        if (
            size <= self._credit
            and size <= conn.chunk
            and (sending is None or not sending.locked())
        ):
            self._credit -= size
            conn.write(
                MESSAGE_FRAME.pack(size, MESSAGE, 0, self.id, len(block), len(body)) + block + body
            )
            if conn.paused:
                await conn.drain()
            return
        await self._send_slow(block, body)

    async def _send_slow(self, block: bytes, body: bytes) -> None:
        if self._sending is None:
            self._sending = asyncio.Lock()
        async with self._sending:
            conn = self._conn
            # the head is at most half the peer's window (``max_block``): credit given back
            # at half a window always lets it through once the reader has caught up
            first = _MESSAGE_HEAD_SIZE + len(block)
            if not await self._wait_credit(first):
                return
            total = len(body)
            view = memoryview(body)
            take = min(self._credit - first, conn.chunk - first, total)
            conn.write(MESSAGE_FRAME.pack(first + take, MESSAGE, 0, self.id, len(block), total))
            conn.write(block)
            if take:
                conn.write(view[:take])
            self._credit -= first + take
            pos = take
            while pos < total:
                if conn.paused:
                    await conn.drain()
                if not await self._wait_credit(1):
                    return
                take = min(self._credit, conn.chunk, total - pos)
                conn.write(HEAD.pack(take, DATA, 0, self.id))
                conn.write(view[pos : pos + take])
                self._credit -= take
                pos += take
            if conn.paused:
                await conn.drain()

    async def _wait_credit(self, n: int) -> bool:
        """Wait until ``n`` bytes may be sent; False when the stream was reset meanwhile
        (the rest of the message is dropped, ``recv`` says why).

        Raises:
            ConnectionClosed: the stream was closed (by this side, or the connection died).
        """
        while self._credit < n:
            if self._error is not None:
                break
            waiter = self._conn.loop.create_future()
            self._credit_waiter = waiter
            try:
                await waiter
            finally:
                self._credit_waiter = None
        if self._error is not None:
            if self._error[0] is ConnectionClosed:
                raise ConnectionClosed(self._error[1], id=TRANSPORT_ID)
            return False
        return True

    def _on_window(self, payload: bytes) -> None:
        if len(payload) != 4:
            raise ProtocolError(f"WINDOW of {len(payload)} bytes, want 4")
        (increment,) = U32.unpack(payload)
        self._credit += increment
        waiter = self._credit_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- closing --------------------------------------------------------------------------

    def _gone(self, cls: type[MicroError], detail: str) -> None:
        """Mark the stream ended (no frame written); wake every waiter."""
        if self._error is not None:
            return
        self._error = (cls, detail)
        self._partial = None
        self._conn._forget(self)
        self._wake()
        waiter = self._credit_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        opening = self._opening
        if opening is not None and not opening.done():
            opening.set_exception(ConnectError(detail, id=TRANSPORT_ID))

    def _on_reset(self, payload: bytes) -> None:
        code, reason = decode_reset(payload)
        reason = reason or f"stream reset by the peer (code {code})"
        if self._conn.client and code == TOO_LARGE:
            self._gone(PayloadTooLarge, reason)
        elif self._conn.client and code == BAD:
            self._gone(BadRequest, reason)
        else:
            self._gone(ConnectionClosed, reason)

    async def close(self) -> None:
        self.close_now()

    def close_now(self) -> None:
        """Close without waiting: CLOSE is queued for the peer (never raises)."""
        if self._error is not None:
            return
        conn = self._conn
        if not conn.lost:
            conn.write(HEAD.pack(0, CLOSE, 0, self.id))
        self._gone(ConnectionClosed, "connection closed")


StreamHandler = Callable[[TcpStream], None]


class TcpConnection(asyncio.Protocol):
    """The shared TCP connection.

    Args:
        client: the dialing end (opens streams) or the accepting one (``on_stream`` gets
            every stream the peer opens).
        address: the dialed address (client) or the listener's (server), for messages.
    """

    def __init__(
        self,
        *,
        client: bool,
        address: str,
        max_body: int,
        max_header: int,
        max_frame: int,
        window: int,
        max_streams: int,
        idle_timeout: float | None,
        on_stream: StreamHandler | None = None,
        on_lost: Callable[[TcpConnection], None] | None = None,
    ) -> None:
        self.client = client
        self.address = address
        self.max_body = max_body
        self.max_header = max_header
        self.window = window
        self.window_half = window // 2
        self.max_streams = max_streams
        self.idle_timeout = idle_timeout
        self.on_stream = on_stream
        self.on_lost = on_lost
        self.loop = asyncio.get_running_loop()
        self.decoder = FrameDecoder(max_frame)
        self.max_frame = max_frame
        self.peer_window = window  # until the peer's HELLO says otherwise
        self.chunk = min(CHUNK, max_frame)
        self.max_block = 0
        self._set_max_block()
        self.streams: dict[int, TcpStream] = {}
        self.local = ""
        self.remote = address
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.paused = False
        self.accepting = True  # server: takes new streams; client: may open new ones
        self.goaway_sent = False
        self._hello = False
        self._last_id = 0  # highest stream id opened
        self._out: list[bytes | memoryview] = []
        self._out_size = 0
        self._flush_scheduled = False
        self._drain: list[asyncio.Future[None]] = []
        self._idle: asyncio.TimerHandle | None = None
        self._pings: dict[bytes, asyncio.Future[None]] = {}
        self._ping_seq = 0
        self._closing = False
        self.closed_future: asyncio.Future[None] = self.loop.create_future()
        self.error = ""

    def __repr__(self) -> str:
        side = "client" if self.client else "server"
        return f"TcpConnection({side}, {self.remote!r}, streams={len(self.streams)})"

    @property
    def greeted(self) -> bool:
        """The peer's HELLO arrived."""
        return self._hello

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
                sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_KEEPALIVE, 1)
            except OSError:
                pass
        self.local = _name(transport.get_extra_info("sockname"))
        if not self.client:
            self.remote = _name(transport.get_extra_info("peername"))
        transport.write(encode_hello(self.max_frame, self.window))
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.accepting = False
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        detail = self.error or (
            f"connection to {self.address} lost" if self.client else "connection lost"
        )
        if exc is not None and not self.error:
            detail += f": {exc}"
        cls: type[MicroError] = BadRequest if self.error and self.client else ConnectionClosed
        for stream in list(self.streams.values()):
            stream._gone(cls, detail)
        self.streams.clear()
        for waiter in self._drain:
            if not waiter.done():
                waiter.set_result(None)
        self._drain.clear()
        for ping in self._pings.values():
            if not ping.done():
                ping.set_exception(ConnectionClosed(detail, id=TRANSPORT_ID))
        self._pings.clear()
        if not self.closed_future.done():
            self.closed_future.set_result(None)
        if self.on_lost is not None:
            self.on_lost(self)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        for waiter in self._drain:
            if not waiter.done():
                waiter.set_result(None)
        self._drain.clear()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.decoder.feed(data)
            streams = self.streams
            for kind, flags, stream_id, payload in frames:
                if kind in (MESSAGE, DATA):
                    stream = streams.get(stream_id)
                    if stream is None:
                        self._unknown(stream_id, kind)
                        continue
                    stream._recv_left -= len(payload)
                    if stream._recv_left < 0:
                        raise ProtocolError(f"stream {stream_id}: the peer overran its window")
                    if kind == MESSAGE:
                        stream._on_message(payload)
                    else:
                        stream._on_data(payload)
                elif kind == WINDOW:
                    stream = streams.get(stream_id)
                    if stream is None:
                        self._unknown(stream_id, kind)
                        continue
                    stream._on_window(payload)
                else:
                    self._control(kind, flags, stream_id, payload)
                if self._closing:
                    return
        except ProtocolError as exc:
            self.fail(str(exc))

    def _set_max_block(self) -> None:
        """The largest header block sent: ours, half the peer's window, one frame."""
        room = min(self.peer_window // 2, self.chunk) - _MESSAGE_HEAD_SIZE
        self.max_block = min(self.max_header, room)

    # -- frames other than the per-message ones -------------------------------------------

    def _control(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if not self._hello:
            if kind != HELLO:
                raise ProtocolError(
                    "not a micro tcp peer (the first frame is not HELLO)"
                    if kind <= GOAWAY
                    else f"unknown frame kind {kind}"
                )
            max_frame, window = decode_hello(payload)
            self._hello = True
            self.peer_window = window
            self.chunk = min(CHUNK, max_frame)
            self._set_max_block()
            return
        if kind == OPEN:
            self._on_open(flags, stream_id)
        elif kind == CLOSE:
            stream = self.streams.get(stream_id)
            if stream is None:
                self._unknown(stream_id, kind)
            else:
                stream._gone(ConnectionClosed, "connection closed by peer")
                self._maybe_done()
        elif kind == RESET:
            stream = self.streams.get(stream_id)
            if stream is None:
                self._unknown(stream_id, kind)
            else:
                stream._on_reset(payload)
                self._maybe_done()
        elif kind == PING:
            if stream_id != 0 or len(payload) != 8:
                raise ProtocolError("PING must be on stream 0 with 8 bytes")
            if flags & ACK:
                waiter = self._pings.pop(payload, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            else:
                self.write(encode_frame(PING, ACK, 0, payload))
        elif kind == GOAWAY:
            _, code, reason = decode_goaway(payload)
            self.accepting = False
            if code:
                self.error = reason or f"the peer ended the connection (code {code})"
                self.close()
            else:
                self._maybe_done()
        else:  # HELLO again
            raise ProtocolError("HELLO after the connection started")

    def _on_open(self, flags: int, stream_id: int) -> None:
        if self.client:
            stream = self.streams.get(stream_id)
            if not flags & ACK:
                raise ProtocolError("the listener may not open streams")
            if stream is None:
                self._unknown(stream_id, OPEN)
                return
            stream._credit = self.peer_window  # the peer's HELLO came before its ACK
            opening = stream._opening
            if opening is not None and not opening.done():
                opening.set_result(None)
            return
        if stream_id <= self._last_id:
            raise ProtocolError(f"OPEN of stream {stream_id}, not above {self._last_id}")
        self._last_id = stream_id
        if not self.accepting or len(self.streams) >= self.max_streams:
            why = "the listener is closed" if not self.accepting else "too many streams"
            self.write(encode_reset(stream_id, REFUSED, f"{self.address}: {why}"))
            return
        stream = TcpStream(self, stream_id)
        self.streams[stream_id] = stream
        self._disarm_idle()
        self.write(HEAD.pack(0, OPEN, ACK, stream_id))
        if self.on_stream is not None:
            self.on_stream(stream)

    def _unknown(self, stream_id: int, kind: int) -> None:
        """A frame for a stream that is not open: one this side closed (dropped), or one
        never opened (a protocol error)."""
        if not self._hello:
            raise ProtocolError("not a micro tcp peer (the first frame is not HELLO)")
        if stream_id == 0 or stream_id > self._last_id:
            raise ProtocolError(f"frame for stream {stream_id}, which was never opened")

    # -- writing --------------------------------------------------------------------------

    def write(self, data: bytes | memoryview) -> None:
        """Queue ``data``: the first write of a turn of the loop goes out at once, the
        ones after it in the same turn leave together at its end (one ``writelines``)."""
        if self._flush_scheduled:
            self._out.append(data)
            self._out_size += len(data)
            if self._out_size >= FLUSH_BYTES:
                self._write_out()
            return
        transport = self.transport
        if transport is None or self._closing or self.lost:
            return
        transport.write(data)
        self._flush_scheduled = True
        self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        self._write_out()

    def _write_out(self) -> None:
        out = self._out
        if not out or self.transport is None:
            return
        self._out = []
        self._out_size = 0
        if self.lost or self.transport.is_closing():
            return
        if len(out) == 1:
            self.transport.write(out[0])
        else:
            self.transport.writelines(out)

    async def drain(self) -> None:
        if not self.paused or self.lost:
            return
        waiter = self.loop.create_future()
        self._drain.append(waiter)
        await waiter

    # -- streams --------------------------------------------------------------------------

    async def open_stream(self) -> TcpStream:
        """A new stream, once the listener accepted it.

        Raises:
            ConnectError: the listener refused it or the connection failed.
        """
        if self.lost or not self.accepting:
            why = self.error or f"dial {self.address}: connection closing"
            raise ConnectError(why, id=TRANSPORT_ID)
        self._last_id += 1
        stream = TcpStream(self, self._last_id)
        self.streams[stream.id] = stream
        self._disarm_idle()
        stream._opening = self.loop.create_future()
        self.write(HEAD.pack(0, OPEN, 0, stream.id))
        try:
            await stream._opening
        except ConnectError:
            raise
        except BaseException:
            stream.close_now()
            raise
        finally:
            stream._opening = None
        return stream

    def _forget(self, stream: TcpStream) -> None:
        if self.streams.pop(stream.id, None) is not None and not self.streams:
            if not self.accepting:
                self._maybe_done()
            else:
                self._arm_idle()

    def _maybe_done(self) -> None:
        """A connection that takes no new streams closes once its last stream has."""
        if not self.accepting and not self.streams and not self.lost:
            self.close()

    def _arm_idle(self) -> None:
        if self.idle_timeout and self._idle is None and not self.lost:
            self._idle = self.loop.call_later(self.idle_timeout, self._idle_fired)

    def _disarm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _idle_fired(self) -> None:
        self._idle = None
        if not self.streams:
            self.go_away("idle")

    async def ping(self, timeout: float = 5.0) -> None:
        """One PING round trip.

        Raises:
            ConnectionClosed: the connection closed first.
            TimeoutError: no answer within ``timeout``.
        """
        self._ping_seq += 1
        payload = self._ping_seq.to_bytes(8, "big")
        waiter = self.loop.create_future()
        self._pings[payload] = waiter
        self.write(encode_frame(PING, 0, 0, payload))
        async with asyncio.timeout(timeout):
            await waiter

    def go_away(self, reason: str = "") -> None:
        """Take no new streams; close once the open ones have (GOAWAY code 0)."""
        if self.lost or self.goaway_sent:
            return
        self.goaway_sent = True
        self.accepting = False
        self.write(encode_goaway(self._last_id, 0, reason))
        self._maybe_done()

    def fail(self, reason: str) -> None:
        """A protocol error: tell the peer (GOAWAY with code 400), then close."""
        if self.lost or self._closing:
            return
        self.error = f"{self.address}: {reason}" if self.client else reason
        logger.debug("tcp connection %s: %s", self.remote, reason)
        self.write(encode_goaway(self._last_id, BAD, reason))
        self.close()

    def close(self) -> None:
        """Flush what is queued, then close (the streams fail in ``connection_lost``)."""
        self.accepting = False
        self._closing = True
        self.flush()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        """Close at once, dropping what is queued."""
        self.accepting = False
        self._closing = True
        if self.transport is not None:
            self.transport.abort()

    async def wait_closed(self) -> None:
        await asyncio.shield(self.closed_future)


def _name(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host = str(address[0])
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    return str(address or "")
