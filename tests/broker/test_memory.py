"""MemoryBroker: round robin groups, the redelivery bound, dead letters, draining."""

from __future__ import annotations

import asyncio
import logging

import pytest

from micro.broker import BrokerError, Event
from micro.broker.memory import MemoryBroker
from micro.testing import eventually
from micro.transport import Message


def msg(n: int) -> Message:
    return Message({"Micro-Id": f"id-{n}"}, str(n).encode())


async def test_queue_group_is_round_robin() -> None:
    seen: dict[str, list[bytes]] = {"a": [], "b": [], "c": []}
    async with MemoryBroker() as broker:
        for name in seen:

            async def handler(event: Event, name: str = name) -> None:
                seen[name].append(event.message.body)

            await broker.subscribe("jobs", handler, queue="workers")
        for n in range(9):
            await broker.publish("jobs", msg(n))
    assert [len(v) for v in seen.values()] == [3, 3, 3]
    assert sorted(b for v in seen.values() for b in v) == sorted(str(n).encode() for n in range(9))


async def test_redelivery_stops_at_the_bound_and_dead_letters(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    async def always_fails(event: Event) -> None:
        nonlocal calls
        calls += 1
        raise ValueError("boom (expected)")

    caplog.set_level(logging.ERROR, logger="micro.broker")
    async with MemoryBroker(max_deliveries=3) as broker:
        await broker.subscribe("t", always_fails)
        await broker.publish("t", msg(1))
        await eventually(lambda: len(broker.dead_letters) > 0, timeout=5)
    assert calls == 3
    letter = broker.dead_letters[0]
    assert (letter.topic, letter.message.body, letter.reason) == ("t", b"1", "nacked 3 times")
    assert "id-1" in caplog.text
    assert "boom" in caplog.text


async def test_last_group_member_leaving_dead_letters_its_backlog() -> None:
    release = asyncio.Event()

    async def stuck(event: Event) -> None:
        await release.wait()

    async with MemoryBroker() as broker:
        sub = await broker.subscribe("t", stuck, queue="q")
        for n in range(3):
            await broker.publish("t", msg(n))
        await asyncio.sleep(0.01)
        leaving = asyncio.create_task(sub.unsubscribe())
        await asyncio.sleep(0.01)
        release.set()
        await leaving
    assert [d.message.body for d in broker.dead_letters] == [b"1", b"2"]


async def test_disconnect_handles_everything_queued() -> None:
    done: list[bytes] = []

    async def slow(event: Event) -> None:
        await asyncio.sleep(0.001)
        done.append(event.message.body)

    broker = MemoryBroker()
    await broker.connect()
    await broker.subscribe("t", slow)
    for n in range(50):
        await broker.publish("t", msg(n))
    await broker.disconnect()
    assert len(done) == 50


async def test_bad_options_and_use() -> None:
    with pytest.raises(ValueError, match="max_deliveries"):
        MemoryBroker(max_deliveries=0)
    async with MemoryBroker() as broker:
        with pytest.raises(BrokerError, match="topic"):
            await broker.subscribe("", lambda e: asyncio.sleep(0))
