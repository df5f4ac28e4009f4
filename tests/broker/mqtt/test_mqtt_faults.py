"""Guarantee rows of docs/broker-mqtt.md: a crashed subscriber, a restarted server."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator

import pytest

from micro.broker import Event
from micro.broker.mqtt import MqttEvent
from tests.broker.helpers import Inbox, msg
from tests.broker.mqtt.conftest import Mqtt
from tests.broker.mqtt.private_mosquitto import PrivateMosquitto

pytestmark = pytest.mark.integration


async def _line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 15)
    assert line, "member process ended early"
    return line.decode().strip()


async def test_subscriber_killed_before_ack_gets_it_again_on_resume(mqtt: Mqtt) -> None:
    topic = mqtt.topic("crash")
    mqtt.session("crashy", topic)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.broker.mqtt.member",
        mqtt.address,
        "crashy",
        topic,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        assert await _line(proc) == "ready"
        publisher = await mqtt.broker(qos=1)
        await publisher.publish(topic, msg("precious"))
        assert await _line(proc) == "got id-precious"  # in the handler, no PUBACK yet
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    resumed = await mqtt.broker(qos=1, client_id="crashy")
    inbox = Inbox()
    await resumed.subscribe(topic, inbox)
    (event,) = await inbox.wait(1)
    assert event.id == "id-precious"
    assert isinstance(event, MqttEvent)


@pytest.fixture
async def private_mosquitto(request: pytest.FixtureRequest) -> AsyncIterator[PrivateMosquitto]:
    server = PrivateMosquitto(persistence=request.param)
    try:
        await server.start()
        yield server
    finally:
        await asyncio.to_thread(server.close)


@pytest.mark.parametrize(
    ("private_mosquitto", "kept"), [(True, True), (False, False)], indirect=["private_mosquitto"]
)
async def test_server_restart_and_queued_messages(
    private_mosquitto: PrivateMosquitto, kept: bool
) -> None:
    """persistence true: queued QoS 1 messages of a durable session survive a restart."""
    mqtt = Mqtt(private_mosquitto.address)
    topic = mqtt.topic("restart")
    try:
        away = await mqtt.broker(qos=1, client_id="svc-r")
        await away.subscribe(topic, Inbox())
        await away.disconnect()
        publisher = await mqtt.broker(qos=1)
        for i in range(5):
            await publisher.publish(topic, msg(i))  # each PUBACKed by the server

        await private_mosquitto.restart()

        back = await mqtt.broker(qos=1, client_id="svc-r")
        inbox = Inbox()
        await back.subscribe(topic, inbox)
        await publisher.publish(topic, msg("after"))  # the publisher reconnects by itself
        await inbox.wait(6 if kept else 1)
        await asyncio.sleep(0.3)
        expected = [b"0", b"1", b"2", b"3", b"4"] if kept else []
        assert inbox.bodies == [*expected, b"after"]
    finally:
        await mqtt.cleanup()


async def test_live_subscription_reconnects_after_a_server_restart() -> None:
    server = PrivateMosquitto(persistence=False)
    await server.start()
    mqtt = Mqtt(server.address)
    try:
        broker = await mqtt.broker(qos=1)
        topic = mqtt.topic("live")
        inbox = Inbox()
        await broker.subscribe(topic, inbox)
        await server.restart()
        async with asyncio.timeout(20):
            while not inbox.events:
                await broker.publish(topic, msg("again"))
                await asyncio.sleep(0.3)
        assert inbox.events[0].id == "id-again"
    finally:
        await mqtt.cleanup()
        await asyncio.to_thread(server.close)


@pytest.mark.parametrize(("limit", "all_arrive"), [(5, False), (0, True)])
async def test_a_subscriber_far_behind_loses_what_the_server_will_not_queue(
    limit: int, all_arrive: bool
) -> None:
    """mosquitto drops QoS 1 messages past ``max_queued_messages`` even for a live subscriber.

    The publisher got its PUBACK for each; ``max_queued_messages 0`` (no limit) keeps them all.
    """
    server = PrivateMosquitto(persistence=False, extra=f"max_queued_messages {limit}\n")
    await server.start()
    mqtt = Mqtt(server.address)
    try:
        topic = mqtt.topic("behind")
        release = asyncio.Event()
        got: list[str] = []

        async def slow(event: Event) -> None:
            await release.wait()
            got.append(event.id)

        subscriber = await mqtt.broker(qos=1, concurrency=1)
        await subscriber.subscribe(topic, slow)
        publisher = await mqtt.broker(qos=1)
        sent = 60
        for i in range(sent):
            await publisher.publish(topic, msg(str(i)))  # each one PUBACKed by the server
        release.set()
        await _quiet(got, settle=1.0)
        if all_arrive:
            assert got == [f"id-{i}" for i in range(sent)]
        else:
            assert 0 < len(got) < sent
            assert got == sorted(got, key=lambda i: int(i[3:]))  # what arrives, in order
    finally:
        await mqtt.cleanup()
        await asyncio.to_thread(server.close)


async def _quiet(got: list[str], settle: float) -> None:
    """Wait until ``got`` stops growing for ``settle`` seconds (at most 20 s)."""
    async with asyncio.timeout(20):
        seen = -1
        while len(got) != seen:
            seen = len(got)
            await asyncio.sleep(settle)
