"""Guarantee rows of docs/broker-rabbitmq.md: a crashed member, a restarted broker."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator

import pytest

from micro.broker.rabbitmq import RabbitmqEvent
from tests.broker.helpers import Inbox, msg
from tests.broker.rabbitmq.conftest import Rabbit
from tests.broker.rabbitmq.private_node import PrivateRabbit

pytestmark = pytest.mark.integration


async def _line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 15)
    assert line, "member process ended early"
    return line.decode().strip()


async def test_member_killed_before_ack_redelivers_to_another(rabbit: Rabbit) -> None:
    rabbit.group("crash.t", "workers")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.broker.rabbitmq.member",
        rabbit.url,
        rabbit.exchange,
        "crash.t",
        "workers",
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        assert await _line(proc) == "ready"
        broker = await rabbit.broker()
        await broker.publish("crash.t", msg("precious"))
        assert await _line(proc) == "got id-precious"  # held, not acknowledged
        survivor = Inbox()
        await broker.subscribe("crash.t", survivor, queue="workers")
        await asyncio.sleep(0.3)
        assert survivor.events == []  # still owned by the hanging member
        proc.send_signal(signal.SIGKILL)
        (event,) = await survivor.wait(1)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    assert event.id == "id-precious"
    assert isinstance(event, RabbitmqEvent)
    assert event.redelivered
    assert event.deliveries == 2


@pytest.fixture
async def private_rabbit() -> AsyncIterator[PrivateRabbit]:
    node = PrivateRabbit()
    try:
        await node.start()
        yield node
    finally:
        await asyncio.to_thread(node.close)


@pytest.mark.slow
async def test_broker_restart_loses_no_confirmed_publish(private_rabbit: PrivateRabbit) -> None:
    rabbit = Rabbit(private_rabbit.url)
    rabbit.group("durable.t", "keep")
    publisher = await rabbit.broker()
    waiting = Inbox()
    # declare the group queue, then leave: messages now wait in the queue alone
    await (await publisher.subscribe("durable.t", Inbox(), queue="keep")).unsubscribe()
    for i in range(50):
        await publisher.publish("durable.t", msg(i))  # each one confirmed
    live = Inbox()
    await publisher.subscribe("live.t", live)  # a broadcast subscriber rides the restart

    await private_rabbit.restart()

    async with asyncio.timeout(30):
        while True:  # the robust connection comes back on its own
            try:
                await publisher.subscribe("durable.t", waiting, queue="keep")
                break
            except Exception:
                await asyncio.sleep(0.5)
    await waiting.wait(50)
    assert sorted(waiting.bodies, key=int) == [str(i).encode() for i in range(50)]
    async with asyncio.timeout(30):
        while not live.events:
            try:
                await publisher.publish("live.t", msg("after"))
            except Exception:
                await asyncio.sleep(0.5)
            await asyncio.sleep(0.2)
    assert live.events[0].id == "id-after"
    await rabbit.cleanup()
