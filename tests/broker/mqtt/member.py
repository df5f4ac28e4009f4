"""A durable QoS 1 subscriber in its own process; prints ``got <id>`` and hangs in the handler.

python -m tests.broker.mqtt.member ADDRESS CLIENT_ID TOPIC
"""

from __future__ import annotations

import asyncio
import sys

from micro.broker import Event
from micro.broker.mqtt import MqttBroker


async def main(address: str, client_id: str, topic: str) -> None:
    async def hang(event: Event) -> None:
        print("got", event.id, flush=True)
        await asyncio.Event().wait()

    async with MqttBroker(address=address, qos=1, client_id=client_id) as broker:
        await broker.subscribe(topic, hang)
        print("ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
