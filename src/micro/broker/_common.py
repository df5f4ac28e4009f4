"""Helpers the broker backends share: an idempotent event and the auto-ack step; the
at-most-once event and step; and the delivery-counting retry policy of the engines that
dead-letter themselves (NATS JetStream, Redis Streams).

A backend subclasses :class:`BaseEvent` (overriding ``_ack``/``_nack`` to talk to its engine)
and calls :func:`deliver` once per message::

    event = MyEvent(topic, Message(header, body))
    await deliver(handler, event, auto_ack=sub.auto_ack)

``deliver`` never raises for a handler failure: it logs the error with the message id and
nacks (requeue) an event the handler left unsettled, so one bad message cannot stop a
subscription's loop. Only cancellation propagates.

An engine without acknowledgements (core NATS, Redis pub/sub) builds an
:class:`AtMostOnceEvent` and calls :func:`deliver_at_most_once`. An engine whose subscription
counts deliveries itself subclasses :class:`RetryingSubscription` and :class:`CountedEvent`.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, TypeVar

from micro.broker import Event, Handler, Subscription
from micro.transport import Message

__all__ = [
    "AtMostOnceEvent",
    "BaseEvent",
    "CountedEvent",
    "Outcome",
    "RetryOptions",
    "RetryingSubscription",
    "check_retries",
    "deliver",
    "deliver_at_most_once",
    "log",
]

log = logging.getLogger("micro.broker")

Outcome = Literal["ack", "requeue", "drop"]
"""How an event was settled: acknowledged, nacked to be redelivered, nacked to be dropped."""


class BaseEvent(Event):
    """An event whose first ``ack``/``nack`` wins; later calls are no-ops.

    Subclasses override :meth:`_ack` and :meth:`_nack` (both default to doing nothing) and
    may read :attr:`outcome` (``None`` while unsettled).
    """

    __slots__ = ("message", "outcome", "topic")

    def __init__(self, topic: str, message: Message) -> None:
        self.topic = topic
        self.message = message
        self.outcome: Outcome | None = None

    async def ack(self) -> None:
        if self.outcome is None:
            self.outcome = "ack"
            await self._ack()

    async def nack(self, *, requeue: bool = True) -> None:
        if self.outcome is None:
            self.outcome = "requeue" if requeue else "drop"
            await self._nack(requeue)

    async def _ack(self) -> None:
        """Tell the engine the message is done."""

    async def _nack(self, requeue: bool) -> None:
        """Tell the engine the message failed (redeliver it when ``requeue``)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.topic} id={self.id!r} {self.outcome or 'unsettled'}>"


async def deliver(handler: Handler, event: Event, *, auto_ack: bool) -> bool:
    """Run ``handler(event)``; ack on return under ``auto_ack``; nack(requeue) on a raise.

    Returns True when the handler returned. The failure is logged (with the message id);
    cancellation propagates unchanged.
    """
    try:
        await handler(event)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a failing user handler is logged
        log.error(
            "subscriber of %s failed on message %s: %s: %s",
            event.topic,
            event.id or "(no id)",
            type(exc).__name__,
            exc,
            exc_info=exc,
        )
        await _settle(event.nack(requeue=True), event)
        return False
    if auto_ack:
        await _settle(event.ack(), event)
    return True


async def _settle(step: object, event: Event) -> None:
    try:
        await step  # type: ignore[misc]
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the engine refused the ack: it will redeliver; say so
        log.warning("settling message %s of %s failed: %s", event.id, event.topic, exc)


class AtMostOnceEvent(Event):
    """A delivery of an engine that does not track it: ``ack`` and ``nack`` do nothing."""

    __slots__ = ("message", "topic")

    delivery = 1

    def __init__(self, topic: str, message: Message) -> None:
        self.topic = topic
        self.message = message

    async def ack(self) -> None:
        """Nothing to acknowledge: the engine does not track deliveries."""

    async def nack(self, *, requeue: bool = True) -> None:
        """Nothing to redeliver: the message is gone."""


async def deliver_at_most_once(
    handler: Handler, event: Event, *, engine: str, logger: logging.Logger
) -> None:
    """Run ``handler(event)``; a failure is logged on ``logger`` and the message dropped."""
    try:
        await handler(event)
    except Exception as exc:  # the subscription outlives a failing handler
        logger.error(
            "handler for %s failed on message %s (dropped, %s is at-most-once): %r",
            event.topic,
            event.id or "-",
            engine,
            exc,
        )


def check_retries(max_deliver: int, backoff: Sequence[float]) -> None:
    """Raise ``ValueError`` for a retry policy that cannot work."""
    if max_deliver < 1:
        raise ValueError("max_deliver must be at least 1")
    if not backoff or any(delay < 0 for delay in backoff):
        raise ValueError("backoff needs one or more delays >= 0")


@dataclass(frozen=True, slots=True)
class RetryOptions:
    """The retry policy every counting subscription of one broker shares."""

    max_deliver: int
    backoff: tuple[float, ...]
    dlq_suffix: str

    def delay(self, delivery: int) -> float:
        """The retry delay after failed delivery number ``delivery`` (1-based)."""
        return self.backoff[min(delivery, len(self.backoff)) - 1]


class CountedEvent(Event):
    """A delivery its subscription counts; ``delivery`` is 1 the first time.

    ``settled`` turns True at the first ``ack``/``nack`` (or failure handling); later calls
    are no-ops. ``nack`` retries after the backoff delay or, without ``requeue``,
    dead-letters now.
    """

    __slots__ = ()

    delivery: int
    settled: bool
    _sub: RetryingSubscription[Any]

    @property
    @abc.abstractmethod
    def label(self) -> str:
        """The message id for logs: ``Micro-Id``, else the engine's own id."""

    async def nack(self, *, requeue: bool = True) -> None:
        """Retry after the backoff delay, or (``requeue=False``) dead-letter now."""
        if self.settled:
            return
        self.settled = True
        if requeue:
            await self._sub.retry(self)
        else:
            await self._sub.dead_letter(self, "rejected by the handler")


E = TypeVar("E", bound=CountedEvent)


class RetryingSubscription(Subscription, Generic[E]):
    """A subscription that counts deliveries, retries with backoff and dead-letters.

    Subclasses set :attr:`log` (their backend's logger), ``_handler``, ``_auto_ack`` and
    ``_opts``, and say how to :meth:`retry` and :meth:`dead_letter` on their engine.
    """

    log: ClassVar[logging.Logger]
    _handler: Handler
    _auto_ack: bool
    _opts: RetryOptions

    @abc.abstractmethod
    async def retry(self, event: E) -> None:
        """Have the event delivered again after the backoff delay for this delivery."""

    @abc.abstractmethod
    async def dead_letter(self, event: E, reason: str) -> None:
        """Keep the message aside with ``reason``; never lose it."""

    async def handle(self, event: E) -> bool:
        """Dead-letter an event past ``max_deliver``, else run the handler; a failure is
        logged and retried (dead-lettered at the last delivery). Returns True when the
        event is to be acked now (``auto_ack``, the handler returned, nothing settled it)."""
        if event.delivery > self._opts.max_deliver:  # earlier deliveries crashed or timed out
            await self.dead_letter(event, f"delivered {event.delivery} times without an ack")
            return False
        try:
            await self._handler(event)
        except Exception as exc:  # the subscription outlives a failing handler
            self.log.error(
                "handler for %s failed on message %s (delivery %d of %d): %r",
                event.topic,
                event.label,
                event.delivery,
                self._opts.max_deliver,
                exc,
            )
            await self._settle_failure(event, exc)
            return False
        return self._auto_ack and not event.settled

    async def _settle_failure(self, event: E, exc: Exception) -> None:
        if event.settled:
            return
        event.settled = True
        if event.delivery >= self._opts.max_deliver:
            await self.dead_letter(event, repr(exc))
        else:
            await self.retry(event)
