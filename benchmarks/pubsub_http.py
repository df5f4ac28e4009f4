"""Pub/sub benchmark, http broker: micro's HttpBroker vs a raw aiohttp POST of the same bytes.

Both sides run in one process on one event loop (publisher and subscriber), over loopback:
``micro`` publishes N events through an HttpBroker to a subscriber on a second HttpBroker
(registry in memory); ``raw`` POSTs the same go-micro JSON publication body N times with an
aiohttp client (64 in flight, kept-alive connections) to an aiohttp server that decodes it.
Both report messages received per second, from the first publish to the last receipt.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from micro.broker import Event
from micro.broker._http_wire import decode_publication, encode_publication
from micro.broker.http import HttpBroker
from micro.registry.memory import MemoryRegistry
from micro.transport import Message

BODY = b'{"id":1,"email":"user@example.com"}'


def _message(n: int) -> Message:
    return Message({"Content-Type": "application/json", "Micro-Id": str(n)}, BODY)


async def micro_rate(n: int) -> float:
    registry = MemoryRegistry()
    done = asyncio.Event()
    count = 0

    async def handler(event: Event) -> None:
        nonlocal count
        count += 1
        if count == n:
            done.set()

    async with HttpBroker(registry=registry) as sub, HttpBroker(registry=registry) as pub:
        topic = f"bench.{uuid.uuid4().hex[:8]}"
        await sub.subscribe(topic, handler)
        await pub.publish(topic, _message(-1), wait=True)  # warm the cache and connection
        count = 0
        started = time.perf_counter()
        for i in range(n):
            await pub.publish(topic, _message(i))
        await asyncio.wait_for(done.wait(), 120)
        return n / (time.perf_counter() - started)


async def raw_rate(n: int, in_flight: int = 64) -> float:
    import aiohttp
    from aiohttp import web

    received = 0

    async def receive(request: web.Request) -> web.Response:
        nonlocal received
        decode_publication(await request.read())
        received += 1
        return web.Response()

    app = web.Application()
    app.router.add_post("/_sub", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    url = f"http://127.0.0.1:{port}/_sub?id=bench"
    payload = encode_publication("bench", _message(0))
    headers = {"Content-Type": "application/json"}
    try:
        async with aiohttp.ClientSession() as session:
            left = iter(range(n))

            async def worker() -> None:
                for _ in left:
                    async with session.post(url, data=payload, headers=headers) as rsp:
                        await rsp.read()

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(in_flight)))
            assert received == n
            return n / (time.perf_counter() - started)
    finally:
        await runner.cleanup()


async def run(n: int) -> dict[str, float]:
    """``{"micro": msgs/s, "raw": msgs/s}`` for ``n`` events."""
    return {"micro": await micro_rate(n), "raw": await raw_rate(n)}
