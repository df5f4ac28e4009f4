"""HttpBroker: go-micro's wire format and registry layout, refusals, retries that report."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator

import pytest

from micro.broker import BrokerError, Event
from micro.broker._http_wire import decode_publication, subscriber_id
from micro.broker.http import HttpBroker
from micro.errors import MicroError
from micro.registry import Node, Service
from micro.registry.memory import MemoryRegistry
from micro.testing import eventually
from micro.transport import Message

# go-micro v1.0's publish, verbatim (as captured from a Go program)
GO_ID = "broker-22a7a294-ad01-433d-9f22-66f496891071.5da39b6f-6dfd-47f9-906c-653492496d13"
GO_BODY = (
    b'{"Header":{":topic":"go.micro.topic.greeting","Content-Type":"application/json",'
    b'"Micro-From-Service":"go.micro.cli.greeter","Micro-Id":"9b7d40bc-51dc-4f13-bbde-'
    b'f17774ccad97","Micro-Topic":"go.micro.topic.greeting"},"Body":"eyJpZCI6ImV2dC0xIiwib'
    b'WVzc2FnZSI6ImhpIGZyb20gZ28gY2xpZW50In0K"}'
)


def go_request(node_id: str, address: str) -> bytes:
    return (
        f"POST /_sub?id={node_id} HTTP/1.1\r\nHost: {address}\r\n"
        "User-Agent: Go-http-client/1.1\r\n"
        f"Content-Length: {len(GO_BODY)}\r\nContent-Type: application/json\r\n"
        "Accept-Encoding: gzip\r\n\r\n"
    ).encode() + GO_BODY


@pytest.fixture
async def registry() -> AsyncIterator[MemoryRegistry]:
    async with MemoryRegistry() as reg:
        yield reg


@pytest.fixture
async def broker(registry: MemoryRegistry) -> AsyncIterator[HttpBroker]:
    async with HttpBroker(registry=registry, retry_backoff=0.01, max_attempts=3) as b:
        yield b


async def raw(address: str, data: bytes) -> tuple[int, bytes]:
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(data)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    body = await reader.readexactly(length)
    writer.close()
    await writer.wait_closed()
    return status, body


def test_go_sample_decodes() -> None:
    topic, message = decode_publication(GO_BODY)
    assert topic == "go.micro.topic.greeting"
    assert ":topic" not in message.header
    assert message.header["Micro-From-Service"] == "go.micro.cli.greeter"
    assert message.body == b'{"id":"evt-1","message":"hi from go client"}\n'
    assert subscriber_id(f"/_sub?id={GO_ID}") == GO_ID
    assert subscriber_id("/other?id=x") == ""
    topic, message = decode_publication(b'{"Header":null,"Body":null}')
    assert (topic, message.header, message.body) == ("", {}, b"")


async def test_go_request_bytes_reach_the_subscriber(broker: HttpBroker) -> None:
    got: asyncio.Queue[Event] = asyncio.Queue()
    sub = await broker.subscribe("go.micro.topic.greeting", got.put)
    status, body = await raw(broker.address, go_request(sub.id, broker.address))  # type: ignore[attr-defined]
    assert (status, body) == (200, b"")
    event = await asyncio.wait_for(got.get(), 2)
    assert event.topic == "go.micro.topic.greeting"
    assert event.id == "9b7d40bc-51dc-4f13-bbde-f17774ccad97"
    assert json.loads(event.message.body) == {"id": "evt-1", "message": "hi from go client"}


async def test_refusals(broker: HttpBroker) -> None:
    addr = broker.address
    status, body = await raw(addr, f"GET /_sub HTTP/1.1\r\nHost: {addr}\r\n\r\n".encode())
    assert status == 405
    assert "POST /_sub?id=" in json.loads(body)["detail"]
    status, body = await raw(addr, go_request("nobody-here", addr))
    assert status == 404
    assert json.loads(body)["id"] == "go.micro.broker"
    sub = await broker.subscribe("t", lambda e: asyncio.sleep(0))
    bad = f"POST /_sub?id={sub.id} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nnot".encode()  # type: ignore[attr-defined]
    status, body = await raw(addr, bad)
    assert status == 400
    assert "publication" in json.loads(body)["detail"]


async def test_registry_layout(broker: HttpBroker, registry: MemoryRegistry) -> None:
    """One node per subscription under go-micro v1.18+'s name and v1.0's ``topic:<topic>``."""
    await broker.subscribe("orders", lambda e: asyncio.sleep(0))
    await broker.subscribe("orders", lambda e: asyncio.sleep(0), queue="billing")
    services = {s.version: s for s in await registry.get_service("go.micro.http.broker")}
    assert set(services) == {"ff.http.broadcast", "billing"}
    node = services["ff.http.broadcast"].nodes[0]
    assert node.id == f"orders-{broker.id}"
    assert node.address == broker.advertised == broker.address
    assert node.metadata == {"secure": "false", "broker": "http", "topic": "orders"}
    assert services["billing"].nodes[0].id.startswith(f"orders-{broker.id}-")
    legacy = {s.version: s.nodes for s in await registry.get_service("topic:orders")}
    assert legacy == {version: s.nodes for version, s in services.items()}
    await broker.disconnect()
    for name in ("go.micro.http.broker", "topic:orders"):
        with pytest.raises(MicroError):
            await registry.get_service(name)


async def test_publishes_to_a_legacy_go_subscriber(registry: MemoryRegistry) -> None:
    """A go-micro v1.0 subscriber is registered as ``topic:<topic>``; we POST its format."""
    requests: asyncio.Queue[bytes] = asyncio.Queue()

    async def go_broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await requests.put(head + await reader.readexactly(length))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(go_broker, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    legacy = Service(
        name="topic:greeting",
        version="ff.http.broadcast",
        metadata={"secure": "false"},
        nodes=[Node(id=GO_ID, address=f"127.0.0.1:{port}")],
    )
    await registry.register(legacy)
    async with server, HttpBroker(registry=registry) as broker:
        await broker.publish("greeting", Message({"Micro-Id": "m1"}, b"\x00\x01"), wait=True)
        request = await asyncio.wait_for(requests.get(), 2)
    head, body = request.split(b"\r\n\r\n", 1)
    assert head.startswith(f"POST /_sub?id={GO_ID} HTTP/1.1\r\n".encode())
    assert b"Content-Type: application/json" in head
    sent = json.loads(body)
    assert sent["Header"] == {"Micro-Id": "m1", ":topic": "greeting"}
    assert base64.b64decode(sent["Body"]) == b"\x00\x01"


async def test_undeliverable_publish_is_retried_then_reported(
    registry: MemoryRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    dead = socket_port()
    await registry.register(
        Service(
            name="go.micro.http.broker",
            version="ff.http.broadcast",
            nodes=[Node(id="t-dead", address=f"127.0.0.1:{dead}", metadata={"topic": "t"})],
        )
    )
    reported: list[tuple[str, str]] = []
    caplog.set_level(logging.ERROR, logger="micro.broker.http")
    async with HttpBroker(
        registry=registry,
        retry_backoff=0.01,
        max_attempts=3,
        on_undelivered=lambda topic, _, msg_id, err: reported.append((topic, msg_id)),
    ) as broker:
        with pytest.raises(BrokerError, match="1 of 1 deliveries of t failed"):
            await broker.publish("t", Message({"Micro-Id": "lost-1"}, b"x"), wait=True)
        await broker.publish("t", Message({"Micro-Id": "lost-2"}, b"x"))  # returns at once
        await eventually(lambda: len(reported) >= 2, timeout=5)
        assert broker.stats["undelivered"] == 2
        assert broker.stats["retried"] == 4
    assert reported == [("t", "lost-1"), ("t", "lost-2")]
    assert "lost-1" in caplog.text
    assert "NOT delivered" in caplog.text


async def test_publish_to_nobody_and_a_full_queue(registry: MemoryRegistry) -> None:
    async with HttpBroker(registry=registry) as broker:
        await broker.publish("empty", Message({}, b""))  # nobody: fine, counted
        assert broker.stats["no_subscriber"] == 1
        with pytest.raises(BrokerError, match="no subscriber for empty"):
            await broker.publish("empty", Message({}, b""), wait=True)
    release = asyncio.Event()

    async def stuck(event: Event) -> None:
        await release.wait()

    async with HttpBroker(registry=registry, max_pending=2, publish_timeout=0.2) as broker:
        await broker.subscribe("slow", stuck)
        await broker.publish("slow", Message({}, b"1"))
        await broker.publish("slow", Message({}, b"2"))
        with pytest.raises(BrokerError, match="not keeping up"):
            await broker.publish("slow", Message({}, b"3"))
        release.set()


async def test_nack_requeue_gets_redelivered_by_the_publisher(broker: HttpBroker) -> None:
    seen: list[bytes] = []

    async def flaky(event: Event) -> None:
        seen.append(event.message.body)
        if len(seen) == 1:
            raise RuntimeError("first delivery fails (expected)")

    await broker.subscribe("flaky", flaky)
    await broker.publish("flaky", Message({"Micro-Id": "f1"}, b"once"), wait=True)
    assert seen == [b"once", b"once"]
    assert broker.stats["retried"] == 1


def socket_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
