"""``faststream-rabbit``: a FastStream app answering the greeter over RabbitMQ RPC.

The server is a ``FastStream`` app whose ``RabbitBroker`` subscriber consumes a queue unique
to the run (auto-delete: it goes with the server's connection) and returns a ``HelloReply``
(FastStream's RPC: the return value is published to the request's ``reply_to``). The client
calls ``await broker.request(body, queue=...)`` and ``await reply.decode()``.

FastStream sends a request with RabbitMQ's direct reply-to (``amq.rabbitmq.reply-to``) and
holds a lock per broker for the whole round trip, so one broker has one request in flight.
The client therefore keeps one ``RabbitBroker`` (one connection) per call in flight, taken
from a pool and opened on first need (the warm-up opens them), as nameko's client keeps one
``ClusterRpcProxy`` per greenlet. Brokers use ``logger=None`` (no per-message log line).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from faststream import FastStream
from faststream.rabbit import RabbitBroker, RabbitQueue

from benchmarks.harness import Client, Options, ServerProcess, Target
from benchmarks.targets._brokers import rabbitmq_version, unreachable
from benchmarks.targets._faststream import BODY, CALL_TIMEOUT_S, HelloReply, HelloRequest

URL_ENV = "BENCH_AMQP_URL"
QUEUE_ENV = "BENCH_AMQP_QUEUE"


def make_app(url: str, queue: str) -> FastStream:
    broker = RabbitBroker(url, logger=None)

    @broker.subscriber(RabbitQueue(queue, auto_delete=True))
    async def say_hello(request: HelloRequest) -> HelloReply:
        return HelloReply(msg=f"Hello {request.name}")

    return FastStream(broker, logger=None)


async def open_server() -> tuple[str, Callable[[], Awaitable[None]]]:
    queue = os.environ[QUEUE_ENV]
    app = make_app(os.environ[URL_ENV], queue)
    await app.start()
    return queue, app.stop


class _BrokerPool:
    """Connected brokers, one per call in flight: a call takes an idle one or opens one."""

    def __init__(self, url: str, queue: str) -> None:
        self.url = url
        self.queue = queue
        self.idle: list[RabbitBroker] = []
        self.all: list[RabbitBroker] = []

    async def call(self) -> Any:
        broker = self.idle.pop() if self.idle else await self._connect()
        reply = await broker.request(BODY, queue=self.queue, timeout=CALL_TIMEOUT_S)
        self.idle.append(broker)  # not after a failure: the run stops at the first error
        return await reply.decode()

    async def _connect(self) -> RabbitBroker:
        broker = RabbitBroker(self.url, logger=None)
        self.all.append(broker)
        await broker.connect()
        return broker

    async def close(self) -> None:
        for broker in self.all:
            await broker.stop()
        self.idle.clear()
        self.all.clear()


class FaststreamRabbitTarget(Target):
    name = "faststream-rabbit"
    title = "FastStream app, RabbitMQ RPC (broker.request, direct reply-to)"
    server_module = __name__
    import_probes = {"faststream-rabbit": "import faststream.rabbit"}

    def __init__(self) -> None:
        self.queue = f"bench.greeter.{os.getpid()}.{secrets.token_hex(3)}"
        self.url = ""

    def unavailable(self, options: Options) -> str | None:
        return unreachable(options.amqp_url, 5672, "RabbitMQ")

    def broker_info(self, options: Options) -> str | None:
        return rabbitmq_version(options.amqp_url)

    def server_env(self, options: Options) -> dict[str, str]:
        return {URL_ENV: options.amqp_url, QUEUE_ENV: self.queue}

    def start_server(self, options: Options) -> ServerProcess:
        self.url = options.amqp_url
        return super().start_server(options)

    async def make_client(self, address: str) -> Client:
        pool = _BrokerPool(self.url, address)
        return Client(call=pool.call, close=pool.close)


TARGET = FaststreamRabbitTarget()
