"""The virtual connections of the RabbitMQ transport: dialed and accepted sockets.

A socket is a queue of received messages plus a way to publish. The transport's consumers
put messages in (synchronously, so that order is kept); ``recv`` takes them out. A ``None``
in the inbox means the connection ended: it stays there, so every later ``recv`` raises too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from micro.errors import ConnectionClosed, MicroError, PayloadTooLarge
from micro.transport import Message, Socket
from micro.transport._rabbitmq_wire import CLOSE, CONTROL, REFUSED, TRANSPORT_ID

if TYPE_CHECKING:
    from micro.transport.rabbitmq import RabbitmqTransport


class _VirtualSocket(Socket):
    """What both ends share: the inbox, the close marker, the size check."""

    def __init__(self, transport: RabbitmqTransport, local: str, remote: str) -> None:
        self.local = local
        self.remote = remote
        self._transport = transport
        self._inbox: asyncio.Queue[Message | None] = asyncio.Queue()
        self._closed = False
        self._peer_gone = False  # the peer closed or vanished: no close marker to send
        self._reason = "connection closed"
        self.last_seen = asyncio.get_running_loop().time()

    @property
    def closed(self) -> bool:
        return self._closed

    def deliver(self, message: Message) -> None:
        """A message for this socket (called by a consumer, in order)."""
        if self._closed:
            return
        self.last_seen = asyncio.get_running_loop().time()
        control = message.header.get(CONTROL)
        if control == CLOSE:
            self.drop("connection closed by peer")
            return
        if control == REFUSED:
            self.drop("connection closed by peer before it read the message")
            return
        if len(message.body) > self._transport.max_body:
            self._refuse_large(len(message.body))
            return
        self._inbox.put_nowait(message)

    def _refuse_large(self, size: int) -> None:
        reason = f"message of {size} bytes is over max_body {self._transport.max_body}"
        self.drop(reason, notify=[_too_large(reason)])

    def drop(self, reason: str, notify: list[Message] | None = None) -> None:
        """End the connection from the far side (peer closed, node gone, link lost), or on
        a refusal: then ``notify`` goes to the peer, followed by the close marker."""
        if self._closed:
            return
        self._closed = True
        self._peer_gone = notify is None
        self._reason = reason
        self._inbox.put_nowait(None)
        self._forget()
        if notify is not None:
            self._transport.spawn(self._tell(notify))

    async def _tell(self, messages: list[Message]) -> None:
        try:
            for message in (*messages, Message({CONTROL: CLOSE})):
                await self._publish(message)
        except (TimeoutError, MicroError, OSError):
            pass  # the peer is gone already, or the link is

    async def recv(self) -> Message:
        message = await self._inbox.get()
        if message is None:
            self._inbox.put_nowait(None)  # every later recv raises as well
            raise ConnectionClosed(f"rabbitmq: {self._reason}", id=TRANSPORT_ID)
        return message

    async def send(self, message: Message) -> None:
        if self._closed:
            raise ConnectionClosed(f"rabbitmq: {self._reason}", id=TRANSPORT_ID)
        if len(message.body) > self._transport.max_body:
            raise PayloadTooLarge(
                f"rabbitmq: body of {len(message.body)} bytes is over max_body "
                f"{self._transport.max_body}",
                id=TRANSPORT_ID,
            )
        try:
            await self._publish(message)
        except ConnectionClosed as exc:
            self.drop(exc.detail.removeprefix("rabbitmq: "))
            raise

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._inbox.put_nowait(None)
        self._forget()
        if not self._peer_gone:
            try:
                await self._publish(Message({CONTROL: CLOSE}))
            except (TimeoutError, MicroError, OSError):
                pass  # the peer is gone already, or the link is: nothing to tell

    async def _publish(self, message: Message) -> None:
        raise NotImplementedError

    def _forget(self) -> None:
        raise NotImplementedError


class RabbitmqClientSocket(_VirtualSocket):
    """A dialed socket: requests go to the listener's queue, replies come to the transport's
    reply queue with this socket's id as the correlation id."""

    def __init__(self, transport: RabbitmqTransport, address: str, id: str) -> None:
        super().__init__(transport, id, address)
        self.id = id
        self.address = address
        self.waiting = 0  # recv calls in progress (the liveness probe watches these)
        self._answered = True
        self._oversize = False

    @property
    def answered(self) -> bool:
        """Whether a message came back since the last ``send``: a send that RabbitMQ
        returned as unroutable was provably not read (safe to send again elsewhere)."""
        return self._answered

    def deliver(self, message: Message) -> None:
        # a refusal says the listener did not read the last message: it may go elsewhere
        self._answered = message.header.get(CONTROL) != REFUSED
        super().deliver(message)

    def _refuse_large(self, size: int) -> None:
        self._oversize = True
        reason = f"response of {size} bytes is over max_body {self._transport.max_body}"
        self.drop(reason, notify=[])

    async def recv(self) -> Message:
        self.waiting += 1
        try:
            message = await self._inbox.get()
        finally:
            self.waiting -= 1
        if message is None:
            self._inbox.put_nowait(None)
            if self._oversize:
                raise PayloadTooLarge(f"rabbitmq: {self._reason}", id=TRANSPORT_ID)
            raise ConnectionClosed(f"rabbitmq: {self._reason}", id=TRANSPORT_ID)
        return message

    async def send(self, message: Message) -> None:
        self._answered = False
        await super().send(message)

    async def _publish(self, message: Message) -> None:
        await self._transport.publish_request(self, message)

    def _forget(self) -> None:
        self._transport.forget_dialed(self)


class RabbitmqServerSocket(_VirtualSocket):
    """An accepted socket: replies go to the client's ``reply_to`` with its correlation id."""

    def __init__(
        self,
        transport: RabbitmqTransport,
        queue: str,
        reply_to: str,
        id: str,
        on_end: Callable[[], None],
    ) -> None:
        super().__init__(transport, queue, f"{reply_to}/{id}")
        self.reply_to = reply_to
        self.id = id
        self._on_end = on_end

    async def _publish(self, message: Message) -> None:
        await self._transport.publish_reply(self.reply_to, self.id, message)

    def _forget(self) -> None:
        self._on_end()


def _too_large(reason: str) -> Message:
    """The answer to a request over ``max_body``: a 413 error, as the http transport's."""
    error = PayloadTooLarge(reason, id=TRANSPORT_ID).to_json()
    return Message({"Micro-Error": error, "Content-Type": "application/json"}, error.encode())
