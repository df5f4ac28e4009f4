"""NATS pub/sub throughput: micro's NatsBroker next to raw nats-py, in one run.

    .venv/bin/python -m benchmarks.pubsub_nats [-n 100000] [--url nats://127.0.0.1:4222]

Both sides do the same work on the same server, ``n`` small events each, one subscriber:

- core (``micro``/``raw``): fire-and-forget publishes on one connection, received by a
  subscription on another connection (what NatsBroker does without ``jetstream``);
- JetStream (``micro_js``/``raw_js``): publishes that wait for their PubAck, up to ``WINDOW``
  in flight, into a stream; received by a push consumer with explicit acks.

The figure is received messages per second, from the first publish to the last message
handled. Streams are unique per run and deleted afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import nats
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from benchmarks._pubsub_common import Counter, main_for, publish_windowed, timed
from micro.broker import Event, Message
from micro.broker.nats import NatsBroker

URL = "nats://127.0.0.1:4222"
WINDOW = 256  # JetStream publishes awaiting their PubAck at once
BODY = b'{"id": 1, "name": "John"}'
HEADER = {"Content-Type": "application/json", "Micro-Topic": "bench", "Micro-Id": "1"}


async def _publish_serially(n: int, publish: Callable[[], Awaitable[None]]) -> None:
    for _ in range(n):
        await publish()


async def run_micro(n: int, url: str = URL, *, jetstream: bool = False) -> float:
    """Received msgs/s through NatsBroker (core, or JetStream with acks)."""
    topic = f"bench.micro.{uuid.uuid4().hex[:8]}"
    counter = Counter(n)

    async def handler(event: Event) -> None:
        counter.hit()

    message = Message(HEADER, BODY)
    async with (
        NatsBroker(address=url, jetstream=jetstream) as pub,
        NatsBroker(address=url, jetstream=jetstream) as sub,
    ):
        await sub.subscribe(topic, handler)
        try:
            if jetstream:
                publish_all = publish_windowed(n, WINDOW, lambda i: pub.publish(topic, message))
            else:
                publish_all = _publish_serially(n, lambda: pub.publish(topic, message))
            return await timed(n, counter, publish_all)
        finally:
            if jetstream:
                await _delete_stream(url, topic)


async def run_raw(n: int, url: str = URL, *, jetstream: bool = False) -> float:
    """Received msgs/s through nats-py alone, doing what NatsBroker does."""
    topic = f"bench.raw.{uuid.uuid4().hex[:8]}"
    counter = Counter(n)
    pub, sub = await nats.connect(url), await nats.connect(url)
    try:
        if not jetstream:

            async def on_core(msg: Msg) -> None:
                counter.hit()

            await sub.subscribe(topic, cb=on_core)
            publish_all = _publish_serially(n, lambda: pub.publish(topic, BODY, headers=HEADER))
            return await timed(n, counter, publish_all)

        async def on_js(msg: Msg) -> None:
            counter.hit()
            await msg.ack()

        js_pub, js_sub = pub.jetstream(), sub.jetstream()
        await js_pub.add_stream(StreamConfig(name=topic.replace(".", "_"), subjects=[topic]))
        config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT)
        await js_sub.subscribe(topic, cb=on_js, manual_ack=True, config=config)
        try:
            publish_all = publish_windowed(
                n, WINDOW, lambda i: js_pub.publish(topic, BODY, headers=HEADER)
            )
            return await timed(n, counter, publish_all)
        finally:
            await _delete_stream(url, topic)
    finally:
        await sub.close()
        await pub.close()


async def _delete_stream(url: str, topic: str) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.delete_stream(await js.find_stream_name_by_subject(topic))
    finally:
        await nc.close()


async def run(n: int, url: str = URL) -> dict[str, float]:
    """{"micro", "raw"} (core NATS) and {"micro_js", "raw_js"} (JetStream) msgs/s."""
    raw = await run_raw(n, url)
    micro = await run_micro(n, url)
    js_n = max(1, n // 4)  # JetStream is much slower per message: keep the run short
    raw_js = await run_raw(js_n, url, jetstream=True)
    micro_js = await run_micro(js_n, url, jetstream=True)
    return {"micro": micro, "raw": raw, "micro_js": micro_js, "raw_js": raw_js}


def main() -> None:
    main_for(
        run,
        doc=__doc__,
        address=URL,
        anchor="nats-py",
        title=lambda n: (
            f"nats pub/sub, {len(BODY)}-byte body ({n} core, {max(1, n // 4)} JetStream)"
        ),
        modes=(("core", "micro", "raw"), ("JetStream", "micro_js", "raw_js")),
    )


if __name__ == "__main__":
    main()
