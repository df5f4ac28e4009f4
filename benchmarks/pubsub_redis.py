"""Redis pub/sub throughput: micro's RedisBroker next to raw redis-py, in one run.

    .venv/bin/python -m benchmarks.pubsub_redis [-n 100000] [--url redis://127.0.0.1:6379]

Both sides do the same work on the same server, ``n`` small events each, one subscriber:

- Streams (``micro``/``raw``): ``XADD`` publishes, up to ``WINDOW`` in flight, read by one
  consumer of a consumer group with ``XREADGROUP COUNT 100`` and acknowledged with one
  ``XACK`` per batch (what RedisBroker does by default);
- pub/sub (``micro_pubsub``/``raw_pubsub``): ``PUBLISH`` of go-micro's JSON envelope, one
  channel subscriber.

The figure is received messages per second, from the first publish to the last message
handled. Keys are unique per run and deleted afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid

import redis.asyncio as aioredis

from benchmarks._pubsub_common import Counter, main_for, publish_windowed, timed
from micro.broker import Event, Message
from micro.broker.redis import RedisBroker

URL = "redis://127.0.0.1:6379"
WINDOW = 32  # publishes in flight (each holds a pooled connection)
BATCH = 100
BODY = b'{"id": 1, "name": "John"}'
HEADER = {"Content-Type": "application/json", "Micro-Topic": "bench", "Micro-Id": "1"}


async def run_micro(n: int, url: str = URL, *, streams: bool = True) -> float:
    """Received msgs/s through RedisBroker (Streams with a group, or pub/sub)."""
    topic = f"bench:micro:{uuid.uuid4().hex[:8]}"
    counter = Counter(n)

    async def handler(event: Event) -> None:
        counter.hit()

    message = Message(HEADER, BODY)
    try:
        async with RedisBroker(address=url, streams=streams, batch=BATCH) as broker:
            await broker.subscribe(topic, handler, queue="bench" if streams else None)
            publish_all = publish_windowed(n, WINDOW, lambda i: broker.publish(topic, message))
            return await timed(n, counter, publish_all)
    finally:
        await _delete(url, topic)


async def run_raw(n: int, url: str = URL, *, streams: bool = True) -> float:
    """Received msgs/s through redis-py alone, doing what RedisBroker does."""
    topic = f"bench:raw:{uuid.uuid4().hex[:8]}"
    counter = Counter(n)
    client = aioredis.Redis.from_url(url)
    header = json.dumps(HEADER).encode()
    try:
        if streams:
            await client.xgroup_create(topic, "bench", id="$", mkstream=True)
            reader = asyncio.create_task(_raw_group_reader(client, topic, counter))
            fields = {"header": header, "body": BODY}
            publish_all = publish_windowed(n, WINDOW, lambda i: client.xadd(topic, fields))  # type: ignore[arg-type]
        else:
            envelope = b'{"Header":' + header + b',"Body":"' + base64.b64encode(BODY) + b'"}'
            reader = asyncio.create_task(_raw_channel_reader(client, topic, counter))
            await asyncio.sleep(0.2)  # subscribed before the first publish
            publish_all = publish_windowed(n, WINDOW, lambda i: client.publish(topic, envelope))
        rate = await timed(n, counter, publish_all)
        await reader  # it stops by itself once everything arrived
        return rate
    finally:
        await client.aclose()
        await _delete(url, topic)


async def _raw_group_reader(client: aioredis.Redis, key: str, counter: Counter) -> None:
    while not counter.done.is_set():
        reply = await client.xreadgroup("bench", "c1", {key: ">"}, count=BATCH, block=1000)
        for _key, entries in reply or ():
            ids = []
            for entry_id, fields in entries:
                json.loads(fields[b"header"])  # decode as micro does
                ids.append(entry_id)
                counter.hit()
            await client.xack(key, "bench", *ids)


async def _raw_channel_reader(client: aioredis.Redis, channel: str, counter: Counter) -> None:
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(channel)
    try:
        while not counter.done.is_set():
            raw = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if raw is not None:
                json.loads(raw["data"])
                counter.hit()
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]


async def _delete(url: str, key: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        await client.delete(key, key + ":dlq")
    finally:
        await client.aclose()


async def run(n: int, url: str = URL) -> dict[str, float]:
    """{"micro", "raw"} (Streams) and {"micro_pubsub", "raw_pubsub"} (pub/sub) msgs/s."""
    raw = await run_raw(n, url)
    micro = await run_micro(n, url)
    raw_pubsub = await run_raw(n, url, streams=False)
    micro_pubsub = await run_micro(n, url, streams=False)
    return {"micro": micro, "raw": raw, "micro_pubsub": micro_pubsub, "raw_pubsub": raw_pubsub}


def main() -> None:
    main_for(
        run,
        doc=__doc__,
        address=URL,
        anchor="redis-py",
        title=lambda n: f"redis pub/sub, {n} events, {len(BODY)}-byte body",
        modes=(("Streams", "micro", "raw"), ("pub/sub", "micro_pubsub", "raw_pubsub")),
    )


if __name__ == "__main__":
    main()
