"""Helpers every broker backend may share: an idempotent event and the auto-ack step.

A backend subclasses :class:`BaseEvent` (overriding ``_ack``/``_nack`` to talk to its engine)
and calls :func:`deliver` once per message::

    event = MyEvent(topic, Message(header, body))
    await deliver(handler, event, auto_ack=sub.auto_ack)

``deliver`` never raises for a handler failure: it logs the error with the message id and
nacks (requeue) an event the handler left unsettled, so one bad message cannot stop a
subscription's loop. Only cancellation propagates.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from micro.broker import Event, Handler
from micro.transport import Message

__all__ = ["BaseEvent", "Outcome", "deliver", "log"]

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
    except Exception as exc:
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
