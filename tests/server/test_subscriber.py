"""Subscribers in the server and Service: typed decoding, metadata, wrappers, registry
endpoints, manual ack, poison messages; client.publish headers."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from typing import Any, TypedDict

import msgspec
import pytest

import micro
from micro import metadata
from micro.broker import Event
from micro.broker.memory import MemoryBroker
from micro.registry.memory import MemoryRegistry
from micro.server import Publication, SubscriberFunc
from micro.server.rpc import RpcServer
from micro.testing import serve
from micro.transport import Message
from micro.transport.memory import MemoryTransport


class UserCreated(msgspec.Struct):
    id: int
    email: str


@dataclasses.dataclass
class Ping:
    n: int


class Counts(TypedDict):
    total: int


class Audit:
    def __init__(self) -> None:
        self.seen: asyncio.Queue[Any] = asyncio.Queue()

    async def user_created(self, event: UserCreated) -> None:
        await self.seen.put((event, dict(metadata.get())))

    def counted(self, event: Counts) -> None:  # sync: runs in a thread
        self.seen.put_nowait(event)


class Greeter:
    async def hello(self, req: dict[str, Any]) -> dict[str, Any]:
        return req


async def test_typed_events_with_metadata_from_client_publish() -> None:
    audit = Audit()
    async with serve(subscribers=[("users", audit)]) as client:
        with metadata.context({"X-Trace": "t-1"}):
            await client.publish("users", UserCreated(id=7, email="a@b.c"))
        event, md = await asyncio.wait_for(audit.seen.get(), 2)
    assert event == UserCreated(id=7, email="a@b.c")
    assert md["X-Trace"] == "t-1"
    assert "Micro-Id" not in md
    assert "Content-Type" not in md


async def test_client_publish_headers_as_go_micro() -> None:
    broker = MemoryBroker()
    got: asyncio.Queue[Event] = asyncio.Queue()
    async with broker:
        await broker.subscribe("t", got.put)
        client = micro.Client(broker=broker, registry="memory", from_service="svc.a")
        await client.publish("t", {"x": 1}, metadata={"x-user": "u"})
        await client.publish("t", b"\x00raw", content_type="application/octet-stream")
        first, second = await got.get(), await got.get()
        await client.close()
        assert broker.address == "memory"  # still usable: the client did not own it
    header = first.message.header
    assert header["Content-Type"] == "application/json"
    assert header["Micro-Topic"] == "t"
    assert uuid.UUID(header["Micro-Id"]).version == 4
    assert header["Micro-From-Service"] == "svc.a"
    assert header["X-User"] == "u"
    assert msgspec.json.decode(first.message.body) == {"x": 1}
    assert second.message.body == b"\x00raw"


async def test_undecodable_event_is_logged_and_dropped_not_crashing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: asyncio.Queue[UserCreated] = asyncio.Queue()

    async def on_user(event: UserCreated) -> None:
        await seen.put(event)

    caplog.set_level(logging.ERROR)
    async with serve(subscribers={"users": on_user}) as client:
        broker = client.broker
        assert isinstance(broker, MemoryBroker)
        bad = Message({"Content-Type": "application/json", "Micro-Id": "poison-1"}, b'{"id":"x"}')
        await broker.publish("users", bad)
        await client.publish("users", {"id": 2, "email": "ok@x"})
        assert await asyncio.wait_for(seen.get(), 2) == UserCreated(id=2, email="ok@x")
        assert [d.reason for d in broker.dead_letters] == ["nacked without requeue"]
    assert "poison-1" in caplog.text
    assert "does not decode" in caplog.text


async def test_subscriber_wrappers_and_manual_ack() -> None:
    calls: list[str] = []
    acked: asyncio.Queue[Ping] = asyncio.Queue()

    def wrapper(nxt: SubscriberFunc) -> SubscriberFunc:
        async def run(pub: Publication) -> None:
            calls.append(f"{pub.endpoint}:{pub.topic}:{pub.content_type}:{bool(pub.id)}")
            await nxt(pub)

        return run

    async def manual(ping: Ping, raw: Event) -> None:
        await raw.ack()
        await acked.put(ping)

    broker = MemoryBroker()
    server = RpcServer(
        name="subs",
        registry=MemoryRegistry(),
        transport=MemoryTransport(),
        broker=broker,
        subscriber_wrappers=[wrapper],
    )
    server.subscribe("pings", manual, auto_ack=False)
    await broker.connect()
    await server.start()
    try:
        client = micro.Client(broker=broker, registry="memory")
        await client.publish("pings", Ping(n=3))
        assert await asyncio.wait_for(acked.get(), 2) == Ping(n=3)
        await client.close()
    finally:
        await server.stop(grace=1)
        await broker.disconnect()
    assert calls == ["Func:pings:application/json:True"]


async def test_endpoints_in_the_registry_handlers_first() -> None:
    audit = Audit()

    async def on_ping(ping: Ping) -> None: ...

    server = RpcServer(
        name="ep", registry=MemoryRegistry(), transport=MemoryTransport(), broker=MemoryBroker()
    )
    server.handle(Greeter())
    server.subscribe("pings", on_ping, queue="workers")
    server.subscribe("users", audit)
    names = [(e.name, e.metadata.get("topic")) for e in server.endpoints()]
    assert names == [
        ("Greeter.Hello", None),
        ("Func", "pings"),
        ("Audit.Counted", "users"),
        ("Audit.UserCreated", "users"),
    ]
    func = server.endpoints()[1]
    assert func.metadata["subscriber"] == "true"
    assert func.metadata["queue"] == "workers"
    assert func.request is not None
    assert [v.name for v in func.request.values or []] == ["n"]
    assert func.response is None
    assert server.node().metadata["broker"] == "memory"


def test_bad_subscriber_signatures_fail_at_declaration() -> None:
    service = micro.Service("bad", broker="memory", registry="memory", transport="memory")

    async def two_events(a: Ping, b: Ping) -> None: ...

    async def nothing() -> None: ...

    with pytest.raises(TypeError, match="two event parameters"):
        service.subscribe("t", two_events)
    with pytest.raises(TypeError, match="takes the event"):
        service.subscribe("t")(nothing)
    with pytest.raises(TypeError, match="topic"):
        service.subscribe("", lambda e: None)


async def test_service_receives_another_services_events_in_process() -> None:
    topic = f"users.{uuid.uuid4().hex[:8]}"
    mem = {"registry": "memory", "transport": "memory", "broker": "memory"}
    mailer = micro.Service("mailer", handle_signals=False, **mem)  # type: ignore[arg-type]
    got: asyncio.Queue[tuple[UserCreated, str | None]] = asyncio.Queue()

    @mailer.subscribe(topic, queue="mailer")
    async def welcome(event: UserCreated) -> None:
        await got.put((event, metadata.get_value("Micro-From-Service")))

    users = micro.Service("users", handle_signals=False, **mem)  # type: ignore[arg-type]
    async with mailer, users:
        await users.client.publish(topic, UserCreated(id=1, email="x@y"))
        event, sender = await asyncio.wait_for(got.get(), 2)
        registered = await mailer.server.registry.get_service("mailer")
    assert (event, sender) == (UserCreated(id=1, email="x@y"), "users")
    subs = [e for e in registered[0].endpoints if e.metadata.get("subscriber") == "true"]
    assert [(e.name, e.metadata["topic"]) for e in subs] == [("Func", topic)]
    assert registered[0].nodes[0].metadata["broker"] == "memory"
