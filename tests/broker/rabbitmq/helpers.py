"""Test helpers shared by the RabbitMQ and MQTT broker tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aio_pika

from micro.broker import Event, Message


class Inbox:
    """A handler that records events; ``fail`` decides per event whether to raise."""

    def __init__(self, fail: Callable[[Event], bool] | None = None) -> None:
        self.events: list[Event] = []
        self.fail = fail
        self.changed = asyncio.Event()

    async def __call__(self, event: Event) -> None:
        self.events.append(event)
        self.changed.set()
        if self.fail is not None and self.fail(event):
            raise RuntimeError(f"planted failure on {event.id}")

    @property
    def bodies(self) -> list[bytes]:
        return [e.message.body for e in self.events]

    async def wait(self, count: int, timeout: float = 10.0) -> list[Event]:
        async with asyncio.timeout(timeout):
            while len(self.events) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.events


def msg(i: int | str, **header: str) -> Message:
    return Message({"Micro-Id": f"id-{i}", "Content-Type": "text/plain", **header}, f"{i}".encode())


async def read_queue(channel: aio_pika.abc.AbstractChannel, name: str) -> list[Any]:
    """Drain a queue with basic.get (acking), returning the messages."""
    queue = await channel.get_queue(name, ensure=False)
    out = []
    while (m := await queue.get(fail=False, no_ack=True)) is not None:
        out.append(m)
    return out
