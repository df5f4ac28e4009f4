"""``faststream-nats``: a FastStream app answering the greeter over NATS request/reply.

The server is a ``FastStream`` app whose ``NatsBroker`` subscriber takes a pydantic
``HelloRequest`` and returns a ``HelloReply`` (FastStream's RPC: a handler's return value is
published to the request's reply subject). The client is a second ``NatsBroker`` calling
``await broker.request(body, subject)`` and ``await reply.decode()``, on one connection
(nats-py multiplexes the replies through one inbox subscription, so 64 calls share it).
Both brokers are made with ``logger=None``: no per-message log line, as aiohttp runs
without its access log. The subject is unique per run (``--nats-url``).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

from faststream import FastStream
from faststream.nats import NatsBroker

from benchmarks.harness import Client
from benchmarks.targets._faststream import BODY, CALL_TIMEOUT_S, HelloReply, HelloRequest
from benchmarks.targets.nats_reqrep import SUBJECT_ENV, URL_ENV, NatsTarget


def make_app(url: str, subject: str) -> FastStream:
    broker = NatsBroker(url, logger=None)

    @broker.subscriber(subject)
    async def say_hello(request: HelloRequest) -> HelloReply:
        return HelloReply(msg=f"Hello {request.name}")

    return FastStream(broker, logger=None)


async def open_server() -> tuple[str, Callable[[], Awaitable[None]]]:
    subject = os.environ[SUBJECT_ENV]
    app = make_app(os.environ[URL_ENV], subject)
    await app.start()
    return subject, app.stop


class FaststreamNatsTarget(NatsTarget):
    """nats_reqrep's set-up (reachability, server version, unique subject), FastStream's app."""

    name = "faststream-nats"
    title = "FastStream app, NATS request/reply (broker.request)"
    server_module = __name__
    import_probes = {"faststream-nats": "import faststream.nats"}

    async def make_client(self, address: str) -> Client:
        broker = NatsBroker(self.url, logger=None)
        await broker.connect()

        async def call() -> Any:
            reply = await broker.request(BODY, address, timeout=CALL_TIMEOUT_S)
            return await reply.decode()

        return Client(call=call, close=broker.stop)


TARGET = FaststreamNatsTarget()
