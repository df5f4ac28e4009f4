"""Test helpers of the RabbitMQ broker tests (the shared ones are in tests/broker/helpers.py)."""

from __future__ import annotations

from typing import Any

import aio_pika


async def read_queue(channel: aio_pika.abc.AbstractChannel, name: str) -> list[Any]:
    """Drain a queue with basic.get (acking), returning the messages."""
    queue = await channel.get_queue(name, ensure=False)
    out = []
    while (m := await queue.get(fail=False, no_ack=True)) is not None:
        out.append(m)
    return out
