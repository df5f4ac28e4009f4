"""HttpBroker against go-micro v1.0 publishers and subscribers (simulated in go_v1.py).

A v1.0 publisher finds subscribers under ``topic:<topic>`` and reads a node's port apart from
its host; a subscription here is also registered under ``go.micro.http.broker`` for v1.18+,
so this broker, reading both, must count each node once. Queue groups: one member of a group
gets each message, whichever side publishes and whichever side subscribed.
"""

from __future__ import annotations

import collections
import json
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from micro.broker import BrokerError, Event
from micro.broker.http import HttpBroker
from micro.registry import Registry, Service, decode_service, encode_service
from micro.registry.etcd import EtcdRegistry
from micro.registry.mdns import MdnsRegistry
from micro.registry.memory import MemoryRegistry
from micro.testing.etcd import EtcdServer
from micro.transport import Message
from tests.broker.go_v1 import (
    GoNode,
    GoV1Publisher,
    GoV1Subscriber,
    Lookup,
    go_body,
    go_url,
    read_go_v1_json,
    registry_lookup,
)
from tests.broker.helpers import Inbox
from tests.broker.test_http import GO_BODY, GO_ID

TOPIC = "go.micro.topic.greeting"


class JsonValueRegistry(MemoryRegistry):
    """A memory registry that keeps each node as the JSON an etcd registry would store
    (``values``) and reads it back through that JSON, as etcd does; ``name`` is the backend it
    stands for."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.values: dict[str, bytes] = {}  # "<service>/<node id>" -> value

    async def register(self, service: Service, *, ttl: float | None = None) -> None:
        for node in service.nodes:
            value = encode_service(Service(service.name, service.version, nodes=[node]))
            self.values[f"{service.name}/{node.id}"] = value
            await super().register(decode_service(value), ttl=ttl)

    def under(self, name: str) -> list[bytes]:
        return [v for k, v in self.values.items() if k.startswith(name + "/")]


def test_the_simulated_publisher_sends_the_captured_bytes() -> None:
    """The simulation's body and URL are the ones a v1.0 program was seen sending."""
    body = go_body(
        TOPIC,
        b'{"id":"evt-1","message":"hi from go client"}\n',
        message_id="9b7d40bc-51dc-4f13-bbde-f17774ccad97",
        service="go.micro.cli.greeter",
    )
    assert body == GO_BODY
    assert go_url(GoNode(GO_ID, "127.0.0.1", 50052)) == f"http://127.0.0.1:50052/_sub?id={GO_ID}"


@pytest.mark.parametrize("name", ["etcd", "nats", "kubernetes"])
async def test_json_values_are_what_v1_0_and_v1_18_read(name: str) -> None:
    """In a registry storing node JSON, ``topic:<topic>`` holds the host and a separate port
    (go-micro v1.0 builds ``<address>:<port>``); ``go.micro.http.broker`` keeps ``host:port``
    (v1.18 uses the address as is); both decode here to the same ``host:port``."""
    registry = JsonValueRegistry(name)
    async with registry, HttpBroker(registry=registry) as broker:
        sub = await broker.subscribe(TOPIC, Inbox())
        host, port = broker.advertised.rsplit(":", 1)
        (legacy,) = registry.under("topic:" + TOPIC)
        assert read_go_v1_json([legacy]) == {
            "ff.http.broadcast": [GoNode(sub.id, host, int(port))]  # type: ignore[attr-defined]
        }
        (node,) = json.loads(legacy)["nodes"]
        assert node == {
            "id": sub.id,  # type: ignore[attr-defined]
            "address": host,
            "port": int(port),
            "metadata": {"secure": "false", "broker": "http", "topic": TOPIC},
        }
        (current,) = registry.under("go.micro.http.broker")
        (node,) = json.loads(current)["nodes"]
        assert node["address"] == broker.advertised
        assert "port" not in node
        assert decode_service(legacy).nodes == decode_service(current).nodes


@pytest.mark.parametrize("name", ["mdns", "consul", "memory"])
async def test_registries_that_keep_the_port_apart_get_host_port(name: str) -> None:
    """mDNS (SRV) and Consul (its own port field) split ``host:port`` themselves."""
    registry = JsonValueRegistry(name)
    async with registry, HttpBroker(registry=registry) as broker:
        await broker.subscribe(TOPIC, Inbox())
        for value in registry.values.values():
            (node,) = json.loads(value)["nodes"]
            assert node["address"] == broker.advertised
            assert "port" not in node


@pytest.fixture
async def registry() -> AsyncIterator[MemoryRegistry]:
    async with MemoryRegistry() as reg:
        yield reg


async def test_a_subscriber_under_both_names_gets_each_message_once(
    registry: MemoryRegistry,
) -> None:
    broadcast, member = Inbox(), Inbox()
    async with HttpBroker(registry=registry) as broker:
        await broker.subscribe(TOPIC, broadcast)
        await broker.subscribe(TOPIC, member, queue="workers")
        names = {s.name for s in await registry.list_services()}
        assert names == {"go.micro.http.broker", "topic:" + TOPIC}
        for n in range(5):
            await broker.publish(TOPIC, Message({"Micro-Id": f"m{n}"}, b"x"), wait=True)
        assert broker.stats["delivered"] == 10
    assert [e.id for e in broadcast.events] == [f"m{n}" for n in range(5)]
    assert [e.id for e in member.events] == [f"m{n}" for n in range(5)]


async def _group_and_watcher(
    registry: Registry, lookup: Lookup, total: int
) -> tuple[list[Inbox], Inbox]:
    """Go v1.0 publishes ``total`` messages to two Python brokers: a queue group ``workers``
    with a member on each, and a broadcast subscription."""
    members, watcher = [Inbox(), Inbox()], Inbox()
    async with HttpBroker(registry=registry) as one, HttpBroker(registry=registry) as two:
        await one.subscribe(TOPIC, members[0], queue="workers")
        await two.subscribe(TOPIC, members[1], queue="workers")
        await two.subscribe(TOPIC, watcher)
        publisher = GoV1Publisher(lookup)
        for n in range(total):
            sent = await publisher.publish(TOPIC, f"{n}".encode())
            assert [status for _, status in sent] == [200, 200], sent
    return members, watcher


def _shared(members: list[Inbox]) -> list[int]:
    return sorted(int(body) for inbox in members for body in inbox.bodies)


async def test_go_v1_publisher_reaches_python_subscribers(registry: MemoryRegistry) -> None:
    members, watcher = await _group_and_watcher(registry, registry_lookup(registry), 20)
    assert sorted(int(b) for b in watcher.bodies) == list(range(20))
    assert _shared(members) == list(range(20))  # each message to one member of the group
    event: Event = watcher.events[0]
    assert event.topic == TOPIC
    assert event.message.header["Micro-From-Service"] == "go.micro.cli.greeter"
    assert ":topic" not in event.message.header


@pytest.mark.integration
async def test_go_v1_publisher_over_mdns() -> None:
    """Go v1.0 reads mDNS in domain ``local``: address from the A record, port from SRV."""
    async with (
        MdnsRegistry(interfaces=["127.0.0.1"], domain="local") as subscribers,
        MdnsRegistry(interfaces=["127.0.0.1"], domain="local") as publisher,
    ):
        members, watcher = await _group_and_watcher(subscribers, registry_lookup(publisher), 5)
    assert sorted(int(b) for b in watcher.bodies) == list(range(5))
    assert _shared(members) == list(range(5))


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdServer]:
    with EtcdServer() as server:
        yield server


@pytest.mark.integration
async def test_go_v1_publisher_over_etcd(etcd: EtcdServer) -> None:
    """The values a go-plugins v1.0 etcdv3 registry reads, raw from etcd, decoded as v1.0 does."""
    from tests.registry.etcd.conftest import raw_kvs

    prefix = f"/t-{uuid.uuid4().hex[:8]}/"

    async def etcd_lookup(name: str) -> dict[str, list[GoNode]]:
        return read_go_v1_json(
            [kv["value"] for kv in await raw_kvs(etcd.address, f"{prefix}{name}/")]
        )

    got = Inbox()
    async with (
        EtcdRegistry(address=etcd.address, prefix=prefix) as registry,
        HttpBroker(registry=registry) as broker,
    ):
        await broker.subscribe(TOPIC, got)
        sent = await GoV1Publisher(etcd_lookup).publish(TOPIC, b"from go")
        assert [status for _, status in sent] == [200], sent
        await broker.publish(TOPIC, Message({"Micro-Id": "py"}, b"from python"), wait=True)
        assert broker.stats["delivered"] == 1  # the node of both entries, posted to once
    assert got.bodies == [b"from go", b"from python"]


async def test_python_publisher_and_a_group_of_go_v1_and_python_members(
    registry: MemoryRegistry,
) -> None:
    """Go v1.0 members are registered only as ``topic:<topic>``, a Python member under both
    names, all with version ``workers``: each message goes to exactly one of them."""
    total, python_member, watcher = 60, Inbox(), Inbox()
    async with (
        GoV1Subscriber(TOPIC, queue="workers") as go_a,
        GoV1Subscriber(TOPIC, queue="workers") as go_b,
        GoV1Subscriber(TOPIC) as go_watcher,
        HttpBroker(registry=registry) as subscriber,
        HttpBroker(registry=registry) as publisher,
    ):
        for go in (go_a, go_b, go_watcher):
            await registry.register(go.entry())
        await subscriber.subscribe(TOPIC, python_member, queue="workers")
        await subscriber.subscribe(TOPIC, watcher)
        for n in range(total):
            await publisher.publish(
                TOPIC, Message({"Micro-Id": f"m{n}"}, f"{n}".encode()), wait=True
            )
    everyone = list(range(total))
    go_ids = [p["Header"]["Micro-Id"] for go in (go_a, go_b) for p in go.received]
    counts = collections.Counter(go_ids + [e.id for e in python_member.events])
    assert sorted(counts) == sorted(f"m{n}" for n in everyone)
    assert set(counts.values()) == {1}
    assert [int(b) for b in watcher.bodies] == everyone
    assert [p["Header"]["Micro-Id"] for p in go_watcher.received] == [f"m{n}" for n in everyone]
    took_part = [bool(go_a.received), bool(go_b.received), bool(python_member.events)]
    assert took_part == [True, True, True]


async def test_subscribe_undoes_a_half_registration(registry: MemoryRegistry) -> None:
    """When the second entry cannot be registered, the first is removed with it."""

    class NoTopicNames(MemoryRegistry):
        async def register(self, service: Service, *, ttl: float | None = None) -> None:
            if service.name.startswith("topic:"):
                raise OSError("planted registry failure")
            await super().register(service, ttl=ttl)

    async with NoTopicNames() as failing, HttpBroker(registry=failing) as broker:
        with pytest.raises(BrokerError, match="planted"):
            await broker.subscribe(TOPIC, Inbox())
        assert await failing.list_services() == []
