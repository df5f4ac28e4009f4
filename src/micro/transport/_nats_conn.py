"""The nats transport's virtual connections: one NATS client, one inbox subscription.

Each transport has one NATS connection and one wildcard subscription ``<prefix>.>``: a socket
(dialed or accepted) owns ``<prefix>.<n>``, where its peer's messages arrive, and
``<prefix>.<n>.p``, where answers to its ``open`` and ``ping`` land (an ``ack``, or the
server's "no responders" status when the peer's subject has no subscriber any more).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Callable

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription

from micro.errors import BadRequest, ConnectError, ConnectionClosed, MicroError, PayloadTooLarge
from micro.transport import Message, Socket
from micro.transport._nats_wire import (
    ACK,
    CLOSE,
    CONTROL,
    DATA,
    PART,
    PING,
    decode,
    encode,
    encoded_limit,
    is_no_responders,
    split,
)

__all__ = ["FOREIGN_IDLE", "IDLE_PING", "Inboxes", "NatsSocket"]

log = logging.getLogger("micro.transport.nats")

_ERR_ID = "go.micro.transport"
_TIMER_SLACK = 0.001  # seconds: a loop may run a timer this much early
_PIECE_ROOM = 4096  # room left in max_payload for the subjects and NATS headers of a piece
IDLE_PING = 30.0  # seconds between pings on a node's connection that serves no call
FOREIGN_IDLE = 60.0  # seconds an accepted go-plugins connection may wait for a message (its
# own server sockets give up after the same minute; a Go dialer never says it closed)


def _piece_size(nc: NatsClient) -> int:
    """The largest NATS body a message is sent in, the rest of ``max_payload`` being room for
    the subjects and headers."""
    return max(nc.max_payload - _PIECE_ROOM, 1024)


class Inboxes:
    """The subscription ``<prefix>.>`` routing to the sockets of one NATS connection."""

    def __init__(self, nc: NatsClient) -> None:
        self.nc = nc
        self.prefix = nc.new_inbox()
        self.sockets: dict[str, NatsSocket] = {}
        self._ids = itertools.count(1)
        self._sub: NatsSubscription | None = None

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(self.prefix + ".>", cb=self._on_msg)

    async def stop(self) -> None:
        """Unsubscribe (never raises: the connection may be gone); the connection may be
        shared with other users, so it stays open."""
        sub, self._sub = self._sub, None
        if sub is None:
            return
        try:
            await sub.unsubscribe()
        except Exception as exc:
            log.debug("nats transport: unsubscribe %s: %r", self.prefix, exc)

    def new(self) -> tuple[str, str]:
        """A fresh ``(token, inbox subject)``."""
        token = str(next(self._ids))
        return token, f"{self.prefix}.{token}"

    async def _on_msg(self, msg: Msg) -> None:
        token, _, tail = msg.subject[len(self.prefix) + 1 :].partition(".")
        sock = self.sockets.get(token)
        if sock is not None:
            sock.feed(msg, control=tail == "p")

    def fail_all(self, error: MicroError) -> None:
        for sock in list(self.sockets.values()):
            sock.fail(error)


class NatsSocket(Socket):
    """One virtual connection: messages arrive on ``inbox``, go to ``target``.

    ``ours`` says the peer is a micro peer (it speaks :data:`CONTROL`): only then are
    ``ping`` and ``close`` sent, which a go-plugins peer would take for broken messages.
    """

    def __init__(
        self,
        inboxes: Inboxes,
        token: str,
        *,
        target: str,
        remote: str,
        dialed: bool,
        max_body: int,
        ping_interval: float,
        ours: bool = False,
    ) -> None:
        self._inboxes = inboxes
        self._token = token
        self.inbox = f"{inboxes.prefix}.{token}"
        self.target = target
        self.local = self.inbox
        self.remote = remote
        self.dialed = dialed
        self.ours = ours
        self.opened = asyncio.Event()
        self.refused = False
        self._max_body = max_body
        self._limit = encoded_limit(max_body)
        self._ping_interval = ping_interval
        # what recv hands out, and the recv calls waiting for it (a deque and futures: an
        # asyncio.Queue costs more per message, and this is the hot path)
        self._items: deque[Message | MicroError] = deque()
        self._waiters: list[asyncio.Future[None]] = []
        # one ping timer per socket, re-armed only when it fires (not once per recv)
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0  # when the current recv has waited long enough to ping
        self._parts: list[bytes] = []
        self._parts_size = 0
        self._closed = False
        self._peer_closed = False
        self._answered = False
        self._send_lock = asyncio.Lock()
        self.on_close: Callable[[], None] | None = None
        self._refusing = False
        self._tasks: set[asyncio.Task[None]] = set()
        inboxes.sockets[token] = self

    # -- state -------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed or self._peer_closed

    @property
    def answered(self) -> bool:
        return self._answered

    # -- incoming ----------------------------------------------------------------------

    def feed(self, msg: Msg, *, control: bool = False) -> None:
        """Take one NATS message addressed to this socket (``control``: on ``<inbox>.p``)."""
        if self._refusing:
            return
        headers = msg.headers or {}
        if is_no_responders(headers):
            if control and not self.opened.is_set():  # the answer to our open
                self.refused = True
                self.opened.set()
                return
            self.fail(self._gone_error(probe=control))
            return
        kind = headers.get(CONTROL)
        if control:
            if kind == ACK:
                self.ours = True
                if not self.opened.is_set() and msg.reply:
                    self.target = msg.reply  # the accepted socket's own subject
                self.opened.set()
            return
        if kind == PING or self._peer_closed:
            return
        if kind == CLOSE:
            self._peer_closed = True
            self._put(ConnectionClosed("connection closed by peer", id=_ERR_ID))
            return
        if kind is not None:
            self.ours = True
        part = headers.get(PART)
        data = msg.data
        if part is not None:
            whole = self._take_part(part, data)
            if whole is None:
                return
            data = whole
        if len(data) > self._limit:
            self._too_large(len(data))
            return
        try:
            message = decode(data)
        except BadRequest as exc:
            self.fail(exc if self.dialed else ConnectionClosed(exc.detail, id=_ERR_ID))
            return
        if len(message.body) > self._max_body:
            self._too_large(len(message.body))
            return
        self._answered = True
        self._put(message)

    def _take_part(self, part: str, data: bytes) -> bytes | None:
        index_text, _, count_text = part.partition("/")
        try:
            index, count = int(index_text), int(count_text)
        except ValueError:
            index, count = -1, 0
        if index != len(self._parts) or not 0 <= index < count:
            self._parts, self._parts_size = [], 0
            self.fail(BadRequest(f"piece {part!r} out of order", id=_ERR_ID))
            return None
        self._parts.append(data)
        self._parts_size += len(data)
        if self._parts_size > self._limit:
            size, self._parts, self._parts_size = self._parts_size, [], 0
            self._too_large(size)
            return None
        if index < count - 1:
            return None
        whole = b"".join(self._parts)
        self._parts, self._parts_size = [], 0
        return whole

    def _too_large(self, size: int) -> None:
        detail = f"message of {size} bytes is over max_body ({self._max_body})"
        if self.dialed:
            self.fail(PayloadTooLarge(detail, id=_ERR_ID))
            return
        # tell the caller why, then close: the handler sees ConnectionClosed
        self._refusing = True  # the rest of what the caller sends is dropped
        error = PayloadTooLarge(detail, id=_ERR_ID)
        task = asyncio.get_running_loop().create_task(self._refuse(error))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refuse(self, error: MicroError) -> None:
        try:
            await self._publish(encode(Message({"Micro-Error": error.to_json()})), DATA)
        except Exception as exc:  # best effort: the close follows anyway
            log.debug("nats transport: cannot answer %s: %r", self.remote, exc)
        self._put(ConnectionClosed(error.detail, id=_ERR_ID))  # to the handler
        await self.close()

    def _gone_error(self, *, probe: bool) -> MicroError:
        if self.dialed and not probe:
            # a data message nobody received: safe to send again elsewhere
            return ConnectError(f"no listener on NATS subject {self.remote}", id=_ERR_ID)
        who = "listener" if self.dialed else "caller"
        return ConnectionClosed(f"the {who} at {self.remote} went away", id=_ERR_ID)

    def _put(self, item: Message | MicroError) -> None:
        self._items.append(item)
        self._wake()

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _on_timer(self) -> None:
        self._timer = None
        if not self._waiters:
            return  # no recv waits: the next one arms the timer again
        loop = asyncio.get_running_loop()
        if loop.time() + _TIMER_SLACK >= self._deadline:
            self._wake()  # the waiting recv finds nothing and pings
        else:
            self._timer = loop.call_at(self._deadline, self._on_timer)

    def fail(self, error: MicroError) -> None:
        """End the connection with ``error``: the next ``recv`` raises it."""
        if self._peer_closed or self._closed:
            return
        self._peer_closed = True
        self._put(error)
        if not self.opened.is_set():
            self.refused = True
            self.opened.set()

    # -- Socket ------------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        if self.closed:
            raise ConnectionClosed("connection closed", id=_ERR_ID)
        if len(message.body) > self._max_body:
            raise PayloadTooLarge(
                f"body of {len(message.body)} bytes is over max_body ({self._max_body})",
                id=_ERR_ID,
            )
        data = encode(message)
        nc = self._inboxes.nc
        if len(data) <= _piece_size(nc) and not self._send_lock.locked():
            # the common case, one NATS message: no lock, since nats-py queues the message
            # before it can yield, and no pieces
            if not nc.is_connected:
                raise ConnectionClosed("the NATS connection is down", id=_ERR_ID)
            self._answered = False
            try:
                await nc.publish(self.target, data, reply=self.inbox, headers={CONTROL: DATA})
            except Exception as exc:
                raise ConnectionClosed(f"NATS publish failed: {exc!r}", id=_ERR_ID) from exc
            return
        async with self._send_lock:
            self._answered = False
            await self._publish(data, DATA)

    async def _publish(self, data: bytes, kind: str, reply: str = "") -> None:
        nc = self._inboxes.nc
        if not nc.is_connected:
            raise ConnectionClosed("the NATS connection is down", id=_ERR_ID)
        pieces = split(data, _piece_size(nc))
        try:
            for i, piece in enumerate(pieces):
                headers = {CONTROL: kind}
                if len(pieces) > 1:
                    headers[PART] = f"{i}/{len(pieces)}"
                await nc.publish(self.target, piece, reply=reply or self.inbox, headers=headers)
        except Exception as exc:
            raise ConnectionClosed(f"NATS publish failed: {exc!r}", id=_ERR_ID) from exc

    async def recv(self) -> Message:
        if self._closed:
            raise ConnectionClosed("connection closed", id=_ERR_ID)
        items = self._items
        while True:
            if items:
                item = items[0]
                if isinstance(item, MicroError):
                    raise item  # left in place: every later recv ends the same way
                items.popleft()
                return item
            if not await self._wait():
                if self.ours:
                    await self._ping()
                elif not self.busy:
                    self.fail(ConnectionClosed("idle go-plugins connection", id=_ERR_ID))

    async def _wait(self) -> bool:
        """Wait for an item; ``False`` when none came within the ping interval."""
        if self.ours:
            interval = self._ping_interval if self._ping_interval > 0 else None
            if interval is not None and not (self.dialed or self.busy):
                # a node's idle kept-alive connection: check its caller now and then
                interval = max(interval, IDLE_PING)
        else:  # a go-plugins peer: no pings, no close; its own sockets give up idle
            interval = None if self.dialed else FOREIGN_IDLE
        loop = asyncio.get_running_loop()
        deadline = 0.0
        if interval is not None:
            deadline = loop.time() + interval
            if not self._waiters or deadline < self._deadline:
                self._deadline = deadline
            timer = self._timer
            if timer is None:
                self._timer = loop.call_at(self._deadline, self._on_timer)
            elif timer.when() > self._deadline:  # a shorter interval than the armed one
                timer.cancel()
                self._timer = loop.call_at(self._deadline, self._on_timer)
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            self._waiters.remove(waiter)
        return bool(self._items) or interval is None or loop.time() + _TIMER_SLACK < deadline

    async def _ping(self) -> None:
        nc = self._inboxes.nc
        if self.closed:
            return
        if not nc.is_connected:
            self.fail(ConnectionClosed("the NATS connection is down", id=_ERR_ID))
            return
        try:
            await nc.publish(self.target, b"", reply=self.inbox + ".p", headers={CONTROL: PING})
        except Exception as exc:
            self.fail(ConnectionClosed(f"NATS ping failed: {exc!r}", id=_ERR_ID))

    async def close(self) -> None:
        if self._closed:
            return
        tell = self.ours and not self._peer_closed
        self._closed = True
        self._inboxes.sockets.pop(self._token, None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._put(ConnectionClosed("connection closed", id=_ERR_ID))
        if tell and self._inboxes.nc.is_connected:
            try:
                await self._inboxes.nc.publish(
                    self.target, b"", reply=self.inbox, headers={CONTROL: CLOSE}
                )
            except Exception as exc:  # never raises
                log.debug("nats transport: close to %s not sent: %r", self.remote, exc)
        on_close, self.on_close = self.on_close, None
        if on_close is not None:
            on_close()
