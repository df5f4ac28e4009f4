"""Broker: publish events to a topic; subscribers receive them.

    async with broker:
        sub = await broker.subscribe("user.created", handle, queue="mailer")
        await broker.publish("user.created", Message({"Content-Type": "application/json"}, b"{}"))

Delivery: without ``queue`` every subscription gets every message (broadcast); subscriptions
sharing a ``queue`` name compete, each message going to one of them. With ``auto_ack`` (the
default) a message is acknowledged when the handler returns and negatively acknowledged when
it raises (then redelivered or dead-lettered as the backend's policy says); without it the
handler calls ``event.ack()`` / ``event.nack()`` itself. Each backend states its guarantee
(at-most-once or at-least-once) in ``docs/broker.md``.

Settling: ``ack``/``nack`` are idempotent and the first one wins, so a handler that settles
the event itself (``nack(requeue=False)`` on a poison message) is not overridden by auto-ack.
A handler that raises without settling is nacked with ``requeue=True`` whatever ``auto_ack``
says. What a backend can do beyond delivery is declared in :attr:`Broker.capabilities`
(``redelivers``, ``durable``, ...); the contract suite (``micro.testing.check_broker``)
checks those behaviours only where they are declared. Backends share the helpers of
:mod:`micro.broker._common` (an idempotent event and the auto-ack delivery step).

Backends: ``memory``, ``http`` (default, go-micro's HTTP broker), ``nats``, ``rabbitmq``,
``redis``, ``mqtt``.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from typing import Self

from micro.errors import BrokerError
from micro.transport import Message

__all__ = ["CAPABILITIES", "Broker", "BrokerError", "Event", "Handler", "Message", "Subscription"]


class Event(abc.ABC):
    """One delivered message, as a subscription handler receives it."""

    topic: str
    message: Message

    @property
    def id(self) -> str:
        """The message id (``Micro-Id`` header), "" when the publisher set none."""
        return self.message.header.get("Micro-Id", "")

    @abc.abstractmethod
    async def ack(self) -> None:
        """Acknowledge: the message will not be delivered again. Idempotent."""

    @abc.abstractmethod
    async def nack(self, *, requeue: bool = True) -> None:
        """Reject: redeliver (``requeue``) or dead-letter/drop, as the backend allows."""


Handler = Callable[[Event], Awaitable[None]]
"""Called once per delivered message; raising means failure (nack under auto-ack)."""


class Subscription(abc.ABC):
    """A live subscription; ``unsubscribe`` stops delivery."""

    topic: str
    queue: str | None

    @abc.abstractmethod
    async def unsubscribe(self) -> None:
        """Stop receiving; in-flight handler calls finish first. Idempotent, never raises."""


CAPABILITIES = frozenset({"redelivers", "durable", "ordered", "dead_letter"})
"""What :attr:`Broker.capabilities` may hold:

``redelivers``   ``nack(requeue=True)`` (or a raising handler) gets the message delivered again
``durable``      messages published while a (queue-group) subscriber is away are kept for it
``ordered``      one publisher's messages reach one subscriber in publish order
``dead_letter``  messages nacked without requeue (or past the redelivery bound) are kept aside
"""


class Broker(abc.ABC):
    """A message broker connection. An async context manager: connect/disconnect."""

    name: str = "broker"
    capabilities: frozenset[str] = frozenset()
    """The :data:`CAPABILITIES` this backend provides (its row of the guarantee table)."""

    @property
    def address(self) -> str:
        """Where the broker is reached (or, for the http broker, listens)."""
        return ""

    @abc.abstractmethod
    async def connect(self) -> None:
        """Connect (idempotent).

        Raises:
            BrokerError: the engine cannot be reached.
        """

    @abc.abstractmethod
    async def disconnect(self) -> None:
        """Drain subscriptions and close; never raises."""

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()

    @abc.abstractmethod
    async def publish(self, topic: str, message: Message) -> None:
        """Publish one message.

        Returns once the backend accepted it (confirmed by the engine where it confirms).

        Raises:
            BrokerError: it could not be accepted; nothing is dropped silently.
        """

    @abc.abstractmethod
    async def subscribe(
        self,
        topic: str,
        handler: Handler,
        *,
        queue: str | None = None,
        auto_ack: bool = True,
    ) -> Subscription:
        """Deliver messages of ``topic`` to ``handler``.

        Args:
            topic: the topic (subject, routing key) to receive.
            handler: called per message, possibly concurrently.
            queue: a group name: members share the messages; ``None`` broadcasts.
            auto_ack: ack on return, nack on raise; ``False``: the handler acks.

        Raises:
            BrokerError: the subscription could not be set up.
        """
