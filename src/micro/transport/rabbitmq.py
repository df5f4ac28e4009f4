"""RabbitMQ transport (aio-pika): calls and streams over AMQP queues, go-plugins' layout.

    transport = RabbitmqTransport(address="amqp://guest:guest@127.0.0.1:5672/")
    listener = await transport.listen(":0", handler)   # listener.address: a queue name
    sock = await transport.dial(listener.address)

A node's address is the **name of its queue** (``listen(":0")`` or ``"host:0"`` picks a UUID,
as go-plugins does; another address is used as the name). The queue is exclusive and
auto-delete: RabbitMQ drops it with the node's connection, so a call to a dead node fails
at once instead of at its timeout. A dial is a *virtual connection*: a socket id (the AMQP
``correlation_id``) and the transport's own exclusive reply queue (``reply_to``); the listener
hands each new (reply_to, id) pair to its handler as an accepted socket. Messages are AMQP
messages, the micro headers their AMQP headers. The layout on the wire (docs/transport-rabbitmq.md):

- ``dial`` publishes an ``open`` message (header ``Micro-Transport: open``) to the topic
  exchange ``exchange`` (default ``micro``, go-plugins' name) with the address as routing
  key, ``mandatory`` and confirmed: an unroutable open (no such queue, or its listener
  closed) is returned by RabbitMQ and ``dial`` raises :class:`~micro.errors.ConnectError`.
- Every later message goes to the default exchange with the queue name as routing key,
  ``mandatory`` and confirmed: a node gone since is a :class:`~micro.errors.ConnectionClosed`
  from ``send`` at once. Replies go the same way to ``reply_to`` (mandatory too, except to
  RabbitMQ's direct reply-to, which a Go client uses and which always "returns").
- ``close`` sends a ``Micro-Transport: close`` message to the other side.
- While a ``recv`` waits on a dialed socket, the listener's queue is checked every
  ``probe_interval`` (a passive declare): a node killed mid-call fails the call within it.
- A lost link to RabbitMQ ends every virtual connection at once (``ConnectionClosed``), and
  ``dial`` raises ``ConnectError`` until aio-pika has reconnected (every
  ``reconnect_interval``), queues and consumers restored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import Any

import aio_pika
import aio_pika.abc
import aiormq
import aiormq.abc
import aiormq.exceptions
from aio_pika.exceptions import AMQPException

from micro.broker import _rabbitmq_wire as broker_wire
from micro.errors import BrokerError, ConnectError, ConnectionClosed
from micro.transport import Handler, Message, Transport
from micro.transport import _rabbitmq_amqp as publishing
from micro.transport import _rabbitmq_wire as wire
from micro.transport._rabbitmq_listener import RabbitmqListener
from micro.transport._rabbitmq_socket import RabbitmqClientSocket, RabbitmqServerSocket

__all__ = ["RabbitmqClientSocket", "RabbitmqListener", "RabbitmqServerSocket", "RabbitmqTransport"]

log = logging.getLogger("micro.transport.rabbitmq")

_DRIVER_ERRORS = (AMQPException, aiormq.exceptions.AMQPError, ConnectionError, OSError)
_ID = wire.TRANSPORT_ID


class RabbitmqTransport(Transport):
    """Virtual connections over RabbitMQ, through one aio-pika robust connection.

    Args:
        address: an ``amqp://`` or ``amqps://`` URL (TLS: aio-pika's ``cafile``,
            ``certfile``, ``keyfile`` query parameters), ``host:port`` (guest/guest), or
            several comma-separated: the first that answers is used.
        exchange: the topic exchange dials open through (go-plugins' ``micro``).
        max_body: the largest body, both ways (default 16 MiB; RabbitMQ's own limit is
            128 MiB). ``send`` refuses a larger one with PayloadTooLarge; a larger request
            is answered 413, a larger response fails ``recv`` with PayloadTooLarge.
        idle_timeout: seconds an accepted connection may go without a message (and not
            ``busy``) before it is closed (default 90; None or 0: never). A client that
            died without closing its connections leaves nothing behind for longer.
        probe_interval: seconds between checks that a node a ``recv`` waits on still has
            its queue (default 1).
        dial_timeout: seconds ``dial`` waits when it gets no ``timeout``.
        publish_timeout: seconds a publish waits for RabbitMQ's confirm.
        connect_timeout: seconds the first connection to RabbitMQ may take.
        reconnect_interval: seconds between attempts after the link to RabbitMQ is lost.

    Raises:
        ValueError: a bad address, exchange or size.
    """

    name = "rabbitmq"

    def __init__(
        self,
        *,
        address: str | Sequence[str] = broker_wire.DEFAULT_ADDRESS,
        exchange: str = "micro",
        max_body: int = wire.DEFAULT_MAX_BODY,
        idle_timeout: float | None = 90.0,
        probe_interval: float = 1.0,
        dial_timeout: float = 5.0,
        publish_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        reconnect_interval: float = 1.0,
    ) -> None:
        if max_body < 0 or probe_interval <= 0:
            raise ValueError("max_body must be >= 0 and probe_interval > 0")
        self._urls = wire.urls(address)
        try:
            self.exchange = broker_wire.check_exchange(exchange)
        except BrokerError as exc:
            raise ValueError(exc.detail) from None
        self.max_body = max_body
        self.idle_timeout = idle_timeout or None
        self.probe_interval = probe_interval
        self.dial_timeout = dial_timeout
        self.publish_timeout = publish_timeout
        self.connect_timeout = connect_timeout
        self.reconnect_interval = reconnect_interval
        self.reply_queue = f"micro.reply.{uuid.uuid4().hex}"
        self._url = self._urls[0]
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._publisher: publishing.Publisher | None = None
        self._up = False
        self._lock = asyncio.Lock()
        self._dialed: dict[str, RabbitmqClientSocket] = {}
        self._listeners: set[RabbitmqListener] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watcher: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return (
            f"RabbitmqTransport(address={wire.safe_url(self._url)!r}, exchange={self.exchange!r})"
        )

    @property
    def linked(self) -> bool:
        """Whether the link to RabbitMQ is up."""
        return self._up and self._connection is not None and not self._connection.is_closed

    @property
    def address(self) -> str:
        """The URL of RabbitMQ in use (the first of ``address`` until connected)."""
        return self._url

    # -- connecting ------------------------------------------------------------------------

    async def _link(self) -> aio_pika.abc.AbstractRobustConnection:
        """The connection, made on first use.

        Raises:
            ConnectError: RabbitMQ cannot be reached, or the link is down (reconnecting).
        """
        async with self._lock:
            if self._connection is None:
                await self._connect()
        if self._connection is None or not self._up:
            raise ConnectError(
                f"rabbitmq: no link to {wire.safe_url(self._url)} (reconnecting)", id=_ID
            )
        return self._connection

    async def _connect(self) -> None:
        failure: BaseException | None = None
        for url in self._urls:
            try:
                connection = await aio_pika.connect_robust(
                    url, timeout=self.connect_timeout, reconnect_interval=self.reconnect_interval
                )
            except (*_DRIVER_ERRORS, TimeoutError) as exc:
                failure = exc
                continue
            try:
                await self._prepare(connection)
            except BaseException:
                with contextlib.suppress(Exception):
                    await connection.close()
                raise
            self._url = url
            return
        where = ", ".join(wire.safe_url(url) for url in self._urls)
        raise ConnectError(f"rabbitmq: cannot connect to {where}: {failure!r}", id=_ID) from failure

    async def _prepare(self, connection: aio_pika.abc.AbstractRobustConnection) -> None:
        """The publishing channel (confirms, returns raise), the exchange, the reply queue."""
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            if await _declare_exchange(connection, self.exchange):  # restored on reconnect
                await channel.declare_exchange(
                    self.exchange, aio_pika.ExchangeType.TOPIC, durable=True
                )
            # else it exists with other flags (go-plugins declares it not durable): use it
            await channel.declare_queue(self.reply_queue, exclusive=True, auto_delete=True)
            await publishing.consume(channel, self.reply_queue, self._on_reply)
        except _DRIVER_ERRORS as exc:
            raise ConnectError(f"rabbitmq: cannot set up the transport: {exc!r}", id=_ID) from exc
        connection.close_callbacks.add(self._on_lost)
        connection.reconnect_callbacks.add(self._on_back)
        self._publisher = publishing.Publisher(channel, self.publish_timeout)
        self._connection, self._channel, self._up = connection, channel, True

    def _on_lost(self, *_: Any) -> None:
        """The link to RabbitMQ went down: every virtual connection ends now."""
        if not self._up:
            return
        self._up = False
        log.warning("rabbitmq transport: link to %s lost", wire.safe_url(self._url))
        for sock in list(self._dialed.values()):
            sock.drop("link to RabbitMQ lost")
        for listener in list(self._listeners):
            listener.drop_all("link to RabbitMQ lost")

    async def _on_back(self, *_: Any) -> None:
        """aio-pika has reconnected and restored the channels and queues: consume again (the
        consumers are aiormq's, which aio-pika does not restore), then the link is up."""
        channel = self._channel
        if channel is None:
            return
        try:
            await publishing.consume(channel, self.reply_queue, self._on_reply)
            for listener in list(self._listeners):
                await listener.resume()
        except (*_DRIVER_ERRORS, RuntimeError) as exc:  # lost again: the next reconnect retries
            log.warning("rabbitmq transport: cannot consume again after reconnecting: %r", exc)
            return
        self._up = True
        log.info("rabbitmq transport: link to %s back", wire.safe_url(self._url))

    # -- the Transport interface -----------------------------------------------------------

    async def dial(self, address: str, *, timeout: float | None = None) -> RabbitmqClientSocket:
        """Open a virtual connection to the listener whose queue is ``address``.

        Raises:
            ConnectError: no link to RabbitMQ, no such queue (the node is gone or its
                listener closed), or no confirm within ``timeout`` seconds. The detail
                names the address.
        """
        queue = wire.check_address(address)
        wait = self.dial_timeout if timeout is None else timeout
        sock: RabbitmqClientSocket | None = None
        try:
            async with asyncio.timeout(wait):
                await self._link()
                self._start_watching()
                sock = RabbitmqClientSocket(self, queue, uuid.uuid4().hex)
                self._dialed[sock.id] = sock
                opening = publishing.properties(
                    {wire.CONTROL: wire.OPEN}, sock.id + wire.OPEN_SUFFIX, self.reply_queue
                )
                await self._publish(self.exchange, queue, b"", opening)
        except (ConnectError, TimeoutError) as exc:
            if sock is not None:
                self._dialed.pop(sock.id, None)
            reason = exc.detail if isinstance(exc, ConnectError) else f"no answer in {wait:g}s"
            raise ConnectError(f"dial {address}: {reason}", id=_ID) from exc
        return sock

    async def listen(self, address: str, handler: Handler) -> RabbitmqListener:
        """Declare the queue for ``address`` (``:0``, ``host:0`` or empty: a UUID) and serve
        each virtual connection to it with ``handler``.

        Raises:
            ConnectError: no link to RabbitMQ, or the queue is another connection's.
        """
        name = wire.queue_name(address)
        try:
            connection = await asyncio.wait_for(self._link(), self.dial_timeout)
        except TimeoutError:
            raise ConnectError(f"listen {name}: no link to RabbitMQ in time", id=_ID) from None
        listener = RabbitmqListener(self, name, handler)
        await listener.start(connection)
        self._listeners.add(listener)
        self._start_watching()
        return listener

    async def close(self) -> None:
        """Close every listener and virtual connection, then the link (never raises)."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        for listener in list(self._listeners):
            await listener.abort()
        for sock in list(self._dialed.values()):
            await sock.close()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.publish_timeout)
        for task in set(self._tasks):
            task.cancel()
        connection, self._connection, self._channel, self._up = self._connection, None, None, False
        self._publisher = None
        if connection is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.publish_timeout):
                    await connection.close()

    # -- what the sockets and listeners call -----------------------------------------------

    async def publish_request(self, sock: RabbitmqClientSocket, message: Message) -> None:
        """Publish a dialed socket's message to its listener's queue."""
        props = publishing.properties(dict(message.header), sock.id, self.reply_queue)
        await self._publish("", sock.address, message.body, props)

    async def publish_reply(self, reply_to: str, id: str, message: Message) -> None:
        """Publish an accepted socket's message to its client's reply queue."""
        props = publishing.properties(dict(message.header), id, None)
        # RabbitMQ returns every mandatory message to a direct reply-to address
        mandatory = not reply_to.startswith(wire.DIRECT_REPLY_TO)
        await self._publish("", reply_to, message.body, props, mandatory=mandatory)

    async def _publish(
        self,
        exchange: str,
        key: str,
        body: bytes,
        props: publishing.Properties,
        *,
        mandatory: bool = True,
    ) -> None:
        """Publish (in this loop turn's batch) and wait for the confirm.

        Raises:
            ConnectionClosed: no queue ``key`` (returned), nacked, no confirm in time, or
                no link.
        """
        publisher = self._publisher
        if publisher is None or not self._up:
            raise ConnectionClosed("rabbitmq: no link to RabbitMQ", id=_ID)
        try:
            await publisher.publish(exchange, key, body, props, mandatory)
        except aiormq.exceptions.PublishError as exc:
            raise ConnectionClosed(
                f"rabbitmq: no queue {key} (its node stopped or died)", id=_ID
            ) from exc
        except aiormq.exceptions.DeliveryError as exc:
            raise ConnectionClosed(
                f"rabbitmq: RabbitMQ refused a message to {key}", id=_ID
            ) from exc
        except TimeoutError as exc:
            raise ConnectionClosed(f"rabbitmq: no confirm for a message to {key}", id=_ID) from exc
        except (*_DRIVER_ERRORS, RuntimeError, publishing.NoChannel) as exc:
            raise ConnectionClosed(f"rabbitmq: link to RabbitMQ lost ({exc!r})", id=_ID) from exc

    async def _on_reply(self, incoming: aiormq.abc.DeliveredMessage) -> None:
        # no await before deliver(): consumer tasks start in delivery order and keep it
        props = incoming.header.properties
        sock = self._dialed.get(props.correlation_id or "")
        if sock is None:
            return  # for a socket closed since (or a stray answer to an open)
        try:
            header = wire.from_amqp(props.headers, props.content_type, props.message_id)
        except ValueError:
            sock.drop("an undecodable response header (not UTF-8)", notify=[])
            return
        sock.deliver(Message(header, incoming.body))

    def forget_dialed(self, sock: RabbitmqClientSocket) -> None:
        self._dialed.pop(sock.id, None)

    def forget_listener(self, listener: RabbitmqListener) -> None:
        self._listeners.discard(listener)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` in a task the transport keeps (and waits for on close)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- liveness and idleness -------------------------------------------------------------

    def _start_watching(self) -> None:
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(
                self._watch(), name="micro-rabbitmq-transport-watch"
            )

    async def _watch(self) -> None:
        """Every ``probe_interval``: end idle accepted connections, and the dialed ones
        whose node lost its queue while a ``recv`` waited."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.probe_interval)
            if not self._up:
                continue
            now = loop.time()
            if self.idle_timeout:
                for listener in list(self._listeners):
                    listener.sweep(now - self.idle_timeout)
            waited_on = {s.address for s in self._dialed.values() if s.waiting}
            for address in waited_on:
                if not await self._queue_exists(address):
                    for sock in [s for s in self._dialed.values() if s.address == address]:
                        sock.drop(f"no queue {address}: its node stopped or died")

    async def _queue_exists(self, name: str) -> bool:
        """A passive declare on a throwaway channel (a refusal closes the channel). Another
        connection's exclusive queue answers RESOURCE_LOCKED: it exists. Any other failure
        says nothing and counts as existing."""
        connection = self._connection
        if connection is None or connection.transport is None:
            return True
        try:
            async with _scratch(connection) as channel:
                await channel.queue_declare(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False
        except (*_DRIVER_ERRORS, ConnectError, RuntimeError, TimeoutError):
            return True
        return True


async def _declare_exchange(connection: aio_pika.abc.AbstractRobustConnection, name: str) -> bool:
    """Declare the durable topic exchange ``name``; False when it exists with other flags.

    Raises:
        ConnectError: RabbitMQ refused for another reason.
    """
    try:
        async with _scratch(connection) as channel:
            await channel.exchange_declare(name, exchange_type="topic", durable=True)
    except aiormq.exceptions.ChannelPreconditionFailed:
        return False
    return True


@contextlib.asynccontextmanager
async def _scratch(
    connection: aio_pika.abc.AbstractRobustConnection,
) -> AsyncIterator[aiormq.abc.AbstractChannel]:
    """A plain channel (not restored on reconnect) for a command that may close it."""
    underlay = connection.transport
    if underlay is None:
        raise ConnectionClosed("rabbitmq: no link to RabbitMQ", id=_ID)
    channel = await underlay.connection.channel()
    try:
        yield channel
    finally:
        if not channel.is_closed:
            with contextlib.suppress(Exception):
                await channel.close()
