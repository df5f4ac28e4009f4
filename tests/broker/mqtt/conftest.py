"""Fixtures: MQTT brokers on the shared mosquitto (tests/servers.py) with unique topics."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from micro.broker import _mqtt_wire as wire
from micro.broker.mqtt import MqttBroker
from tests.servers import mqtt_address


class Mqtt:
    """Makes brokers; ``topic()`` gives a unique topic; ends every durable session it made."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address or mqtt_address()
        self.prefix = f"test/{uuid.uuid4().hex[:10]}"
        self.brokers: list[MqttBroker] = []
        self.sessions: set[str] = set()

    def topic(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    async def broker(self, **options: Any) -> MqttBroker:
        options.setdefault("address", self.address)
        broker = MqttBroker(**options)
        self.brokers.append(broker)
        await broker.connect()
        return broker

    def session(self, client_id: str, topic: str, queue: str | None = None, index: int = 0) -> str:
        name = wire.session_id(client_id, topic, queue, index)
        self.sessions.add(name)
        return name

    async def cleanup(self) -> None:
        for broker in self.brokers:
            await broker.disconnect()
        await end_sessions(self.address, self.sessions)


async def end_sessions(address: str, sessions: set[str]) -> None:
    """Connect as each session with clean start and expiry 0: the server forgets it."""
    host, port = wire.parse_address(address)
    for name in sessions:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0
        client = aiomqtt.Client(
            host,
            port,
            identifier=name,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=True,
            properties=props,
        )
        async with client:
            pass


@pytest.fixture
async def mqtt() -> AsyncIterator[Mqtt]:
    m = Mqtt()
    yield m
    await m.cleanup()
