"""The RabbitMQ transport's use of aiormq: batched, confirmed publishing; plain consumers.

Every publish of the transport is mandatory and confirmed (a returned message is how a
dead node or client is noticed at once). aio-pika publishes one message per write to the
socket and per wait for the write to drain; with many calls in flight that is a system call
(and, on loopback, RabbitMQ's wake-up) per message. Here the publishes made in one turn of
the event loop are marshalled together and handed to aiormq's writer as one frame batch:
one write for all of them. Each still gets its own delivery tag and its own confirm (or
return, or nack) from aiormq's channel, which settles the futures registered here in its
``confirmations`` table as it settles its own ``basic_publish``'s. These are plain futures
(not in aiormq's future store, which costs two set entries and three callbacks each): a
closing channel fails the ones still waiting through a callback of its own. They are not
the futures callers await (a caller's cancellation must not reach aiormq's table). The marshalled
``Basic.Publish`` frame is kept per (exchange, routing key, mandatory).

This uses aiormq's channel the way ``Channel.basic_publish`` does (delivery tags, the
``confirmations`` and ``message_id_delivery_tag`` tables, the connection's write queue);
the versions are pinned in the lock file and the transport's tests cover returns, nacks
and lost links.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from functools import partial
from random import getrandbits
from typing import Any
from uuid import UUID

import aio_pika.abc
import aiormq.abc
import aiormq.channel
import pamqp.frame
from aiormq.channel import Returning
from pamqp import commands as spec
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

_NOT_PERSISTENT = 1
Properties = spec.Basic.Properties
_SWEEP_AT = 4096

Pending = tuple[str, str, bytes, spec.Basic.Properties, bool, "asyncio.Future[Any]"]


class NoChannel(Exception):
    """The publishing channel is closed or not open (the link is down)."""


def properties(
    header: dict[str, Any], correlation_id: str, reply_to: str | None
) -> spec.Basic.Properties:
    """The AMQP properties of a transport message (see ``_rabbitmq_wire.to_amqp``)."""
    return spec.Basic.Properties(
        content_type=header.get("Content-Type") or None,
        headers=header,
        delivery_mode=_NOT_PERSISTENT,
        priority=0,
        correlation_id=correlation_id,
        reply_to=reply_to,
        message_id=header.get("Micro-Id") or UUID(int=getrandbits(128), version=4).hex,
    )


class Publisher:
    """Publishes on one confirm-mode aio-pika channel, in batches per loop turn."""

    def __init__(self, channel: Any, timeout: float) -> None:
        self._channel = channel  # an aio-pika (robust) channel in confirm mode
        self._timeout = timeout
        self._pending: list[Pending] = []
        self._scheduled = False
        self._blocked = False
        self._loop = asyncio.get_running_loop()
        self._watched: aiormq.channel.Channel | None = None
        self._frames: dict[tuple[str, str, bool], bytes] = {}  # Basic.Publish frames, marshalled

    def publish(
        self,
        exchange: str,
        key: str,
        body: bytes,
        props: spec.Basic.Properties,
        mandatory: bool,
    ) -> asyncio.Future[Any]:
        """Queue a message for this loop turn's batch; the future is its confirm.

        The future fails with aiormq's ``PublishError`` (returned), ``DeliveryError``
        (nacked), :class:`TimeoutError` (no confirm within the timeout), :class:`NoChannel`
        or the channel's close reason.
        """
        future: asyncio.Future[Any] = self._loop.create_future()
        self._pending.append((exchange, key, body, props, mandatory, future))
        if not self._scheduled and not self._blocked:
            self._scheduled = True
            self._loop.call_soon(self._flush)
        return future

    def _underlay(self) -> aiormq.channel.Channel | None:
        wrapper = getattr(self._channel, "_channel", None)
        channel = getattr(wrapper, "channel", None)
        if not isinstance(channel, aiormq.channel.Channel) or channel.is_closed:
            return None
        return channel

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        batch = [item for item in batch if not item[5].done()]  # cancelled meanwhile
        if not batch:
            return
        channel = self._underlay()
        if channel is None:
            for *_, future in batch:
                if not future.done():
                    future.set_exception(NoChannel("no publishing channel"))
            return
        if channel is not self._watched:  # a new channel (first use, or reconnected)
            self._watched = channel
            self._frames.clear()
            channel.closing.add_done_callback(lambda _: _fail_in_flight(channel))
        parts: list[bytes] = []
        number = channel.number
        max_size = channel.max_content_size
        confirmations = channel.confirmations
        ids = channel.message_id_delivery_tag
        if len(ids) > 2 * len(confirmations) + _SWEEP_AT:  # ids of settled messages
            live = dict.fromkeys(confirmations)
            kept = {id: tag for id, tag in ids.items() if tag in live}
            ids.clear()
            ids.update(kept)
        frames = self._frames
        loop = self._loop
        for exchange, key, body, props, mandatory, future in batch:
            channel.delivery_tag += 1
            tag = channel.delivery_tag
            # aiormq settles this one (ack, nack, return); never the caller's future, which a
            # cancelled caller cancels: aiormq sets a return's error without checking, and
            # an InvalidStateError there would close the channel
            confirmation = loop.create_future()
            confirmation.add_done_callback(partial(_settle, future))
            confirmations[tag] = confirmation
            ids[str(props.message_id)] = tag  # how aiormq finds a returned message's tag
            method = frames.get((exchange, key, mandatory))
            if method is None:
                if len(frames) > _SWEEP_AT:
                    frames.clear()
                command = spec.Basic.Publish(0, exchange, key, mandatory)
                method = frames[exchange, key, mandatory] = pamqp.frame.marshal(command, number)
            parts.append(method)
            parts.append(pamqp.frame.marshal(ContentHeader(0, len(body), props), number))
            for start in range(0, len(body), max_size):
                chunk = ContentBody(body[start : start + max_size])
                parts.append(pamqp.frame.marshal(chunk, number))
        frame = aiormq.abc.ChannelFrame(payload=b"".join(parts), should_close=False)
        futures = [item[5] for item in batch]
        timer = self._loop.call_later(self._timeout, _expire, futures)
        futures[-1].add_done_callback(lambda _: _expire_later(self._loop, timer, futures))
        queue = channel.write_queue
        if not queue.full():
            queue.put_nowait(frame)
            return
        # the connection's write queue is full: later batches wait behind this one
        self._blocked = True
        task = self._loop.create_task(queue.put(frame))
        task.add_done_callback(self._unblocked)

    def _unblocked(self, _: asyncio.Task[None]) -> None:
        self._blocked = False
        if self._pending and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)


def _settle(future: asyncio.Future[Any], confirmation: asyncio.Future[Any]) -> None:
    """Pass aiormq's outcome on to the publisher's future, unless that one is done already
    (cancelled by its caller, or timed out)."""
    if future.done():
        return
    if confirmation.cancelled():
        future.set_exception(NoChannel("the publishing channel closed"))
    elif (error := confirmation.exception()) is not None:
        future.set_exception(error)
    else:
        future.set_result(None)


def _fail_in_flight(channel: aiormq.channel.Channel) -> None:
    """The channel closed: every publish on it still waiting for its confirm fails now."""
    for confirmation in list(channel.confirmations.values()):
        if isinstance(confirmation, Returning):  # aiormq's marker of a returned message
            continue
        if isinstance(confirmation, asyncio.Future) and not confirmation.done():
            confirmation.set_exception(NoChannel("the publishing channel closed"))


def _expire_later(
    loop: asyncio.AbstractEventLoop, timer: asyncio.TimerHandle, futures: list[asyncio.Future[Any]]
) -> None:
    """The last of a batch is settled (confirms come in order): the timer can go, unless
    an earlier one is still waiting (returned or cancelled out of order)."""
    if all(future.done() for future in futures):
        timer.cancel()


def _expire(futures: list[asyncio.Future[Any]]) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(TimeoutError())


async def consume(
    channel: aio_pika.abc.AbstractChannel,
    queue: str,
    callback: Callable[[aiormq.abc.DeliveredMessage], Coroutine[Any, Any, None]],
    tag: str | None = None,
) -> str:
    """Consume ``queue`` (no acks) on the aiormq channel under ``channel``; the consumer tag.

    aiormq runs ``callback`` in a task per message, in delivery order. aio-pika's own
    ``Queue.consume`` would add an ``IncomingMessage`` and a second task per message; the
    price is that aio-pika does not restore this consumer on reconnect: the transport does.
    """
    underlay = await channel.get_underlay_channel()
    ok = await underlay.basic_consume(queue, callback, no_ack=True, consumer_tag=tag)
    return str(ok.consumer_tag)
