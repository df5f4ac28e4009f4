"""The listener of the RabbitMQ transport: one queue, demultiplexed into accepted sockets.

Messages on the queue carry ``reply_to`` (the client transport's reply queue) and
``correlation_id`` (the socket id); each new pair is a virtual connection, served by the
handler in a task of its own. A pair that ended is remembered for a while (the most recent
4096), so a message still on its way to a closed connection cannot open a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Coroutine
from typing import TYPE_CHECKING

import aio_pika.abc
import aiormq.abc
import aiormq.exceptions
from aio_pika.exceptions import AMQPException

from micro.errors import ConnectError, ConnectionClosed
from micro.transport import Handler, Listener, Message
from micro.transport import _rabbitmq_wire as wire
from micro.transport._rabbitmq_amqp import consume
from micro.transport._rabbitmq_socket import RabbitmqServerSocket

if TYPE_CHECKING:
    from micro.transport.rabbitmq import RabbitmqTransport

log = logging.getLogger("micro.transport.rabbitmq")

_DRIVER_ERRORS = (AMQPException, aiormq.exceptions.AMQPError, ConnectionError, OSError)
_REMEMBERED = 4096
_GRACE = 0.5  # seconds a closed listener still accepts what was queued before it closed

Key = tuple[str, str]


class RabbitmqListener(Listener):
    """An exclusive, auto-delete queue named after the address, bound to the exchange."""

    def __init__(self, transport: RabbitmqTransport, name: str, handler: Handler) -> None:
        self._transport = transport
        self._name = name
        self._handler = handler
        self.sockets: dict[Key, RabbitmqServerSocket] = {}
        self._ended: OrderedDict[Key, None] = OrderedDict()
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._queue: aio_pika.abc.AbstractQueue | None = None
        self._tag: str | None = None
        self._closing = False
        self._drained = False
        self._deleted = False
        self._draining: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        """``rabbitmq://<queue>``; the server registers the bare queue name, which clients
        dial (as go-plugins does)."""
        return wire.SCHEME + self._name

    async def start(self, connection: aio_pika.abc.AbstractRobustConnection) -> None:
        """Declare, bind and consume the queue.

        Raises:
            ConnectError: the queue is another connection's (address in use), or RabbitMQ
                refused.
        """
        try:
            self._channel = await connection.channel()
            self._queue = await self._channel.declare_queue(
                self._name, exclusive=True, auto_delete=True
            )
            await self._queue.bind(self._transport.exchange, routing_key=self._name)
            self._tag = await consume(self._channel, self._name, self._on_message)
        except aiormq.exceptions.ChannelLockedResource as exc:
            await self._close_channel()
            raise ConnectError(
                f"listen {self._name}: address in use", id=wire.TRANSPORT_ID
            ) from exc
        except _DRIVER_ERRORS as exc:
            await self._close_channel()
            raise ConnectError(f"listen {self._name}: {exc!r}", id=wire.TRANSPORT_ID) from exc

    async def resume(self) -> None:
        """Consume again after a reconnect (aio-pika restored the queue and its binding).

        Raises:
            the driver's errors: the link was lost again.
        """
        if self._channel is not None and not self._closing:
            self._tag = await consume(self._channel, self._name, self._on_message, self._tag)

    async def _on_message(self, incoming: aiormq.abc.DeliveredMessage) -> None:
        # no await before deliver(): consumer tasks start in delivery order and keep it
        props = incoming.header.properties
        reply_to, id = props.reply_to, props.correlation_id
        if not reply_to or not id:
            log.warning(
                "rabbitmq transport: %s: a message without reply_to or correlation_id dropped",
                self._name,
            )
            return
        try:
            header = wire.from_amqp(props.headers, props.content_type, props.message_id)
        except ValueError:
            log.warning(
                "rabbitmq transport: %s: a message with a header that is not UTF-8 dropped",
                self._name,
            )
            return
        control = header.get(wire.CONTROL)
        opening = control == wire.OPEN and id.endswith(wire.OPEN_SUFFIX)
        if opening:
            id = id.removesuffix(wire.OPEN_SUFFIX)
        key = (reply_to, id)
        sock = self.sockets.get(key)
        if sock is None:
            if control in (wire.CLOSE, wire.REFUSED):
                return
            if key in self._ended or self._drained:  # a late message: the client hears a close
                self._transport.spawn(self._refuse(key))
                return
            sock = self._accept(key)
        if not opening:
            sock.deliver(Message(header, incoming.body))

    async def _refuse(self, key: Key) -> None:
        with contextlib.suppress(ConnectError):
            await self._transport.publish_reply(*key, Message({wire.CONTROL: wire.REFUSED}))

    def _accept(self, key: Key) -> RabbitmqServerSocket:
        reply_to, id = key
        sock = RabbitmqServerSocket(
            self._transport, self._name, reply_to, id, lambda: self._ended_now(key)
        )
        self.sockets[key] = sock
        self._transport.spawn(self._serve(sock))
        return sock

    async def _serve(self, sock: RabbitmqServerSocket) -> None:
        try:
            await self._handler(sock)
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("rabbitmq transport: %s: a connection handler failed", self._name)
        finally:
            await sock.close()

    def _ended_now(self, key: Key) -> None:
        if self.sockets.pop(key, None) is None:
            return
        self._ended[key] = None
        if len(self._ended) > _REMEMBERED:
            self._ended.popitem(last=False)
        if self._drained and not self.sockets:
            self._transport.spawn(self._delete())

    def sweep(self, idle_since: float) -> None:
        """Close the connections that had no message since ``idle_since`` (loop time) and
        do not serve a call; the client hears a close."""
        for sock in list(self.sockets.values()):
            if not sock.busy and sock.last_seen < idle_since:
                sock.drop("idle for too long", notify=[])

    def drop_all(self, reason: str) -> None:
        """End every accepted connection without telling the clients (the link is down)."""
        for sock in list(self.sockets.values()):
            sock.drop(reason)

    async def close(self) -> None:
        """Stop accepting: the queue is unbound at once (a dial now fails), and deleted when
        the connections accepted before (or queued within a short grace) have ended."""
        if self._closing:
            return
        self._closing = True
        queue = self._queue
        if queue is not None:
            await self._quietly(queue.unbind(self._transport.exchange, routing_key=self._name))
        self._draining = self._transport.spawn(self._drain())

    async def _drain(self) -> None:
        # what was queued before the unbind is still on its way to the consumer: accept it
        await asyncio.sleep(_GRACE)
        self._drained = True
        if not self.sockets:
            await self._delete()

    async def abort(self) -> None:
        """Close, closing every accepted connection too (the clients hear a close)."""
        await self.close()
        if self._draining is not None:
            self._draining.cancel()
        for sock in list(self.sockets.values()):
            await sock.close()
        await self._delete()

    async def _delete(self) -> None:
        if self._deleted:
            return
        self._deleted = True
        self._transport.forget_listener(self)
        queue = self._queue
        if queue is not None:
            if self._tag is not None and self._channel is not None:  # first: no consumer
                await self._quietly(_cancel(self._channel, self._tag))  # for RabbitMQ to cancel
            await self._quietly(queue.delete(if_unused=False, if_empty=False))
        await self._close_channel()

    async def _close_channel(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            await self._quietly(channel.close())

    async def _quietly(self, command: Awaitable[object]) -> None:
        """Run a clean-up command if the link is up, within a bounded time, never raising
        (with the link down RabbitMQ has dropped the queue already)."""
        if not self._transport.linked:
            if isinstance(command, Coroutine):
                command.close()
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self._transport.publish_timeout):
                await command


async def _cancel(channel: aio_pika.abc.AbstractChannel, tag: str) -> None:
    underlay = await channel.get_underlay_channel()
    await underlay.basic_cancel(tag)
