"""Peers that follow go-plugins v1.0.0's transport/rabbitmq layout, written here from its
source (no Go toolchain with modules on this machine): its client publishes to the ``micro``
exchange with the address as routing key and RabbitMQ's direct reply-to, and its listener
is a non-exclusive auto-delete queue bound to a non-durable ``micro``, answering to
``ReplyTo`` with the request's ``CorrelationId``."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import aio_pika
import aio_pika.abc
import pytest
from msgspec import Struct
from pamqp.common import FieldValue

from micro.client.rpc import RpcClient
from micro.registry.memory import MemoryRegistry
from tests.servers import amqp_url
from tests.transport.rabbitmq.conftest import MakeServer, MakeTransport

pytestmark = pytest.mark.integration

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


class Name(Struct):
    name: str


class Greeter:
    async def say_hello(self, req: Name) -> dict[str, str]:
        return {"msg": f"Hello {req.name}"}


@pytest.fixture
async def amqp() -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect(amqp_url())
    async with connection:
        yield await connection.channel()


async def test_a_go_plugins_client_calls_a_micro_server(
    make_server: MakeServer, amqp: aio_pika.abc.AbstractChannel, exchange: str
) -> None:
    server = await make_server(Greeter())
    replies: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
    reply_queue = await amqp.get_queue(DIRECT_REPLY_TO, ensure=False)
    await reply_queue.consume(replies.put, no_ack=True)
    micro_exchange = await amqp.get_exchange(exchange)
    correlation = str(uuid.uuid4())
    headers: dict[str, FieldValue] = {
        "Content-Type": "application/json",
        "Micro-Service": "rmq.test",
        "Micro-Method": "Greeter.SayHello",
        "Micro-Id": "1",
        "Timeout": "5000000000",
    }
    request = aio_pika.Message(
        b'{"name": "Go"}', headers=headers, correlation_id=correlation, reply_to=DIRECT_REPLY_TO
    )
    await micro_exchange.publish(
        request, routing_key=server.address.removeprefix("rabbitmq://")
    )  # not mandatory, as Go
    answer = await asyncio.wait_for(replies.get(), 10)
    assert answer.correlation_id == correlation
    assert json.loads(answer.body) == {"msg": "Hello Go"}
    assert answer.headers["Micro-Id"] == "1"
    assert "Micro-Error" not in answer.headers


class GoListener:
    """go-plugins' listener: one socket per CorrelationId, a bad request answered with an
    error (as go-micro v1.0's server does), replies to the default exchange, not mandatory."""

    def __init__(self, channel: aio_pika.abc.AbstractChannel) -> None:
        self.channel = channel
        self.name = str(uuid.uuid4())
        self.correlations: list[str] = []

    async def start(self, exchange: str) -> None:
        await self.channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=False)
        queue = await self.channel.declare_queue(self.name, auto_delete=True)
        await queue.bind(exchange, routing_key=self.name)
        await queue.consume(self.on_message, no_ack=True)

    async def on_message(self, incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.correlations.append(incoming.correlation_id or "")
        header = {k: str(v) for k, v in (incoming.headers or {}).items()}
        out: dict[str, FieldValue]
        if not header.get("Micro-Service"):
            out = {"Content-Type": "application/json", "Micro-Error": '{"detail":"ill-formed"}'}
            body = b""
        else:
            name = json.loads(incoming.body)["name"]
            out = {"Content-Type": "application/json", "Micro-Id": header.get("Micro-Id", "")}
            body = json.dumps({"msg": f"Hi {name}, from Go"}).encode()
        reply = aio_pika.Message(body, headers=out, correlation_id=incoming.correlation_id)
        assert incoming.reply_to
        await self.channel.default_exchange.publish(reply, routing_key=incoming.reply_to)


async def test_a_micro_client_calls_a_go_plugins_server(
    amqp: aio_pika.abc.AbstractChannel, exchange: str, make_transport: MakeTransport
) -> None:
    go = GoListener(amqp)
    await go.start(exchange)  # Go first: `micro` exists, not durable; micro uses it as it is
    rpc = RpcClient(transport=make_transport(), registry=MemoryRegistry(), retries=0)
    try:
        for name in ("Ann", "Bob"):
            answer = await rpc.call("go.srv", "Say.Hello", {"name": name}, address=go.name)
            assert answer == {"msg": f"Hi {name}, from Go"}
    finally:
        await rpc.close()
    opens = [c for c in go.correlations if c.endswith(".open")]
    calls = [c for c in go.correlations if not c.endswith(".open")]
    assert len(opens) == 1  # the dial (served by Go as a stray connection, its error dropped)
    assert calls
    assert set(calls) == {opens[0].removesuffix(".open")}  # one pooled connection
