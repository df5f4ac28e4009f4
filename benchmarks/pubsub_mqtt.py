"""MQTT pub/sub throughput: micro's MqttBroker next to raw aiomqtt, in one run.

    .venv/bin/python -m benchmarks.pubsub_mqtt [-n 100000] [--address 127.0.0.1:1883]

Both sides do the same work on the same server, over MQTT v5: ``n`` small events published
at QoS 1 by one client, each waiting for its PUBACK (up to ``WINDOW`` in flight), with the
header (Content-Type, Micro-Topic, Micro-Id) as user properties and Content-Type also as the
ContentType property; received at QoS 1 by one subscribing client on its own connection,
which sends each PUBACK only once the message is handled, in arrival order (paho's manual
ack, what MqttBroker does). Both clients use paho's default of 20 QoS 1 messages in flight
(mosquitto's ``max_inflight_messages`` is 20 as well). The figure is received messages per
second, from the first publish to the last message handled. Topics are unique per run,
nothing is retained, sessions end on disconnect (session expiry 0).

MQTT has no end-to-end flow control: mosquitto holds at most ``max_queued_messages`` (1000
by default) QoS 1 messages for a subscriber beyond those in flight and silently drops the
rest, even while it is connected. So on both sides a publish also waits until fewer than
``LAG`` messages are published but not yet received (``LAG`` < 1000: nothing is dropped).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from benchmarks._pubsub_common import Counter, main_for, publish_windowed, timed
from micro.broker import Event, Message
from micro.broker.mqtt import MqttBroker

ADDRESS = "127.0.0.1:1883"
# Publishes awaiting their PUBACK at once. aiomqtt logs a warning for every publish made
# while more than 10 are pending; 10 also stays under paho's and mosquitto's 20 in flight,
# so no publish waits in paho's local queue.
WINDOW = 10
LAG = 500  # messages published but not yet received, at most (mosquitto queues 1000)
TIMEOUT = 10.0  # seconds for connect, subscribe and a PUBACK (MqttBroker's default)
BODY = b'{"id": 1, "name": "John"}'


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.removeprefix("mqtt://").rpartition(":")
    return (host, int(port)) if host else (port, 1883)


class _Paced(Counter):
    """A Counter that also hands out ``LAG`` publish credits, one given back per receipt."""

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.credits = asyncio.Semaphore(LAG)

    def hit(self, k: int = 1) -> None:
        super().hit(k)
        for _ in range(k):
            self.credits.release()

    def paced(self, publish: Callable[[int], Awaitable[None]]) -> Callable[[int], Awaitable[None]]:
        async def one(i: int) -> None:
            await self.credits.acquire()
            await publish(i)

        return one


async def run_micro(n: int, address: str = ADDRESS) -> float:
    """Received msgs/s through MqttBroker (QoS 1, one broadcast subscriber)."""
    topic = f"bench/micro/{uuid.uuid4().hex[:8]}"
    counter = _Paced(n)

    async def handler(event: Event) -> None:
        counter.hit()

    broker = MqttBroker(address=address, qos=1, session_expiry=0, timeout=TIMEOUT)
    async with broker:
        await broker.subscribe(topic, handler)
        header = {"Content-Type": "application/json", "Micro-Topic": topic}

        async def publish(i: int) -> None:
            await broker.publish(topic, Message({**header, "Micro-Id": str(i)}, BODY))

        publish_all = publish_windowed(n, WINDOW, counter.paced(publish))
        return await timed(n, counter, publish_all)


async def run_raw(n: int, address: str = ADDRESS) -> float:
    """Received msgs/s through aiomqtt alone, doing what MqttBroker does."""
    topic = f"bench/raw/{uuid.uuid4().hex[:8]}"
    counter = _Paced(n)
    host, port = _host_port(address)

    def client(identifier: str) -> aiomqtt.Client:
        return aiomqtt.Client(
            host,
            port,
            identifier=identifier,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=True,
            timeout=TIMEOUT,
        )

    publisher = client(f"bench-raw-pub-{uuid.uuid4().hex[:8]}")
    subscriber = client(f"bench-raw-sub-{uuid.uuid4().hex[:8]}")
    subscriber._client.manual_ack_set(True)  # PUBACK after handling, as MqttBroker does
    async with publisher, subscriber:
        await subscriber.subscribe(topic, qos=1)
        reader = asyncio.create_task(_raw_reader(subscriber, counter))

        async def publish(i: int) -> None:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.UserProperty = [
                ("Content-Type", "application/json"),
                ("Micro-Topic", topic),
                ("Micro-Id", str(i)),
            ]
            props.ContentType = "application/json"
            await publisher.publish(topic, BODY, qos=1, properties=props, timeout=TIMEOUT)

        try:
            rate = await timed(n, counter, publish_windowed(n, WINDOW, counter.paced(publish)))
            await reader  # it stops by itself once everything arrived
        finally:
            reader.cancel()
        await subscriber.unsubscribe(topic)
    return rate


async def _raw_reader(client: aiomqtt.Client, counter: _Paced) -> None:
    async for message in client.messages:
        dict(getattr(message.properties, "UserProperty", None) or ())  # decode as micro does
        bytes(message.payload)
        counter.hit()
        client._client.ack(message.mid, message.qos)  # in arrival order
        if counter.done.is_set():
            return


async def run(n: int, address: str = ADDRESS) -> dict[str, float]:
    """{"micro": msgs/s, "raw": msgs/s} for ``n`` events each (raw first, then micro)."""
    raw = await run_raw(n, address)
    micro = await run_micro(n, address)
    return {"micro": micro, "raw": raw}


def main() -> None:
    main_for(
        run,
        doc=__doc__,
        address=ADDRESS,
        anchor="aiomqtt",
        title=lambda n: f"mqtt pub/sub (QoS 1), {n} events, {len(BODY)}-byte body",
    )


if __name__ == "__main__":
    main()
