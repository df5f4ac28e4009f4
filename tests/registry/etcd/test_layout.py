"""What EtcdRegistry stores, read back raw; Go's records read by it; odd names; bad entries."""

from __future__ import annotations

import asyncio
import json
import logging

import msgspec
import pytest

from micro.errors import RegistryError, ServiceNotFound
from micro.registry import Endpoint, Node, Result, Service, Value, encode_service
from micro.registry.etcd import GO_PLUGINS_PREFIX, EtcdRegistry
from micro.testing.etcd import EtcdServer, free_port
from tests.registry.etcd import go_samples
from tests.registry.etcd.conftest import etcdctl, raw_kvs

pytestmark = pytest.mark.integration


def _service(name: str, *nodes: Node, version: str = "1.0.0") -> Service:
    endpoint = Endpoint(
        "Greeter.Hello",
        Value("Request", "Request", [Value("name", "string")]),
        Value("Response", "Response", [Value("msg", "string")]),
        {"stream": "false"},
    )
    return Service(name, version, {}, [endpoint], list(nodes))


async def test_one_key_per_node_holding_the_one_node_service_json(
    etcd: EtcdServer, registry: EtcdRegistry, prefix: str
) -> None:
    a, b = Node("greeter-a", "127.0.0.1:1001", {"p": "1"}), Node("greeter-b", "127.0.0.1:1002")
    await registry.register(_service("go.micro.srv.greeter", a, b), ttl=30)
    kvs = await raw_kvs(etcd.address, prefix)
    assert [kv["key"] for kv in kvs] == [
        f"{prefix}go.micro.srv.greeter/greeter-a",
        f"{prefix}go.micro.srv.greeter/greeter-b",
    ]
    stored = json.loads(kvs[0]["value"])
    assert set(stored) == {"name", "version", "metadata", "endpoints", "nodes"}
    assert stored["nodes"] == [
        {"id": "greeter-a", "address": "127.0.0.1:1001", "metadata": {"p": "1"}}
    ]
    assert stored["endpoints"][0]["request"]["values"][0] == {
        "name": "name",
        "type": "string",
        "values": None,
    }
    # each node has its own lease, granted for the TTL
    leases = {kv["lease"] for kv in kvs}
    assert len(leases) == 2
    assert 0 not in leases
    ttl = json.loads(
        await etcdctl(etcd.address, "lease", "timetolive", f"{kvs[0]['lease']:x}", "-w", "json")
    )
    assert ttl["granted-ttl"] == 30


async def test_no_ttl_means_no_lease(etcd: EtcdServer, registry: EtcdRegistry, prefix: str) -> None:
    await registry.register(_service("forever", Node("n1", "127.0.0.1:1")))
    (kv,) = await raw_kvs(etcd.address, prefix)
    assert kv["lease"] == 0


async def test_reads_go_plugins_records_under_their_prefix(etcd: EtcdServer) -> None:
    await etcdctl(etcd.address, "put", go_samples.GREETER_KEY, go_samples.GREETER_VALUE)
    await etcdctl(etcd.address, "put", go_samples.BROKER_KEY, go_samples.BROKER_VALUE)
    try:
        async with EtcdRegistry(address=etcd.address, prefix=GO_PLUGINS_PREFIX) as registry:
            (greeter,) = await registry.get_service("go.micro.srv.greeter")
            assert greeter.nodes[0].address == "127.0.0.1:50061"  # the separate port joined
            assert greeter.nodes[0].metadata["registry"] == "etcdv3"
            assert [e.name for e in greeter.endpoints] == [
                "Say.Fail",
                "Say.Hello",
                "Say.Stream",
                "Func",
            ]
            assert greeter.endpoints[3].response is None
            (broker,) = await registry.get_service("topic:go.micro.topic.greeting")
            assert broker.version == "ff.http.broadcast"
            assert broker.nodes[0].address == "127.0.0.1:50062"
            listed = [s.name for s in await registry.list_services()]
            assert listed == sorted(listed)
            assert {"go.micro.srv.greeter", "topic:go.micro.topic.greeting"} <= set(listed)
            # and writes under that prefix, where Go's etcdv3 registry looks
            await registry.register(_service("py.greeter", Node("py-1", "127.0.0.1:9")), ttl=30)
            keys = [kv["key"] for kv in await raw_kvs(etcd.address, "/micro-registry/py.greeter/")]
            assert keys == ["/micro-registry/py.greeter/py-1"]
            await registry.deregister(_service("py.greeter", Node("py-1", "127.0.0.1:9")))
    finally:
        await etcdctl(etcd.address, "del", "--prefix", GO_PLUGINS_PREFIX)


@pytest.mark.parametrize(
    ("name", "node_id", "key_part"),
    [
        ("a/b", "x/y", "a-b/x-y"),
        ("with space", "n 1", "with space/n 1"),
        ("ünïcödé.服务", "节点", "ünïcödé.服务/节点"),
        ("topic:go.micro.topic", "n:1", "topic:go.micro.topic/n:1"),
        ("..", ".", "../."),
    ],
)
async def test_odd_names_round_trip(
    etcd: EtcdServer, registry: EtcdRegistry, prefix: str, name: str, node_id: str, key_part: str
) -> None:
    node = Node(node_id, "127.0.0.1:7")
    await registry.register(_service(name, node), ttl=30)
    (kv,) = await raw_kvs(etcd.address, prefix)
    assert kv["key"] == prefix + key_part
    (found,) = await registry.get_service(name)
    assert (found.name, found.nodes) == (name, [node])
    assert [s.name for s in await registry.list_services()] == [name]
    await registry.deregister(_service(name, node))
    with pytest.raises(ServiceNotFound):
        await registry.get_service(name)


async def test_names_that_share_a_key_stay_apart(registry: EtcdRegistry) -> None:
    await registry.register(_service("a/b", Node("n1", "127.0.0.1:1")), ttl=30)
    await registry.register(_service("a-b", Node("n2", "127.0.0.1:2")), ttl=30)
    assert [n.id for s in await registry.get_service("a/b") for n in s.nodes] == ["n1"]
    assert [n.id for s in await registry.get_service("a-b") for n in s.nodes] == ["n2"]


CORRUPT = {
    "not-json": b"\x00\xffnot json",
    "a-list": b"[1, 2, 3]",
    "no-name": b'{"version": "1", "nodes": [{"id": "x", "address": "127.0.0.1:1"}]}',
    "no-node": b'{"name": "bad", "nodes": []}',
    "node-without-id": b'{"name": "bad", "nodes": [{"address": "127.0.0.1:1"}]}',
    "wrong-types": b'{"name": "bad", "nodes": [{"id": 5, "address": ["x"]}]}',
}


async def test_corrupt_entries_are_skipped_with_one_warning_each(
    etcd: EtcdServer, registry: EtcdRegistry, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    good = Node("good-1", "127.0.0.1:1")
    await registry.register(_service("bad", good), ttl=30)
    for key, value in CORRUPT.items():
        await registry._etcd().put(f"{prefix}bad/{key}".encode(), value)
    # a Go service's extra fields are ignored, not fatal
    extra = msgspec.json.decode(encode_service(_service("bad", Node("go-1", "127.0.0.1:2"))))
    extra["nodes"][0]["port"] = 0
    extra["goOnly"] = {"x": 1}
    extra["endpoints"][0]["goField"] = [1]
    await registry._etcd().put(f"{prefix}bad/go-1".encode(), msgspec.json.encode(extra))
    with caplog.at_level(logging.WARNING, "micro.registry.etcd"):
        for _ in range(3):
            (svc,) = await registry.get_service("bad")
            assert sorted(n.id for n in svc.nodes) == ["go-1", "good-1"]
            assert [s.name for s in await registry.list_services()] == ["bad"]
    warned = [r.getMessage() for r in caplog.records]
    assert sorted(w.split(":")[1].strip().rsplit("/", 1)[1] for w in warned) == sorted(CORRUPT)


async def test_a_watch_survives_corrupt_entries(registry: EtcdRegistry, prefix: str) -> None:
    events: asyncio.Queue[Result] = asyncio.Queue()

    async def pump() -> None:
        async for result in registry.watch("bad"):
            await events.put(result)

    task = asyncio.create_task(pump())
    try:
        await asyncio.sleep(0.2)
        for key, value in CORRUPT.items():
            await registry._etcd().put(f"{prefix}bad/{key}".encode(), value)
            await registry._etcd().delete(f"{prefix}bad/{key}".encode())
        await registry.register(_service("bad", Node("n1", "127.0.0.1:1")), ttl=30)
        first = await asyncio.wait_for(events.get(), 5)
        assert (first.action, first.service.nodes[0].id) == ("create", "n1")
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_unreachable_etcd_fails_fast_with_registry_error() -> None:
    async with EtcdRegistry(address=f"127.0.0.1:{free_port()}", timeout=1.0) as registry:
        for call in (registry.get_service("x"), registry.list_services()):
            with pytest.raises(RegistryError, match="UNAVAILABLE"):
                await asyncio.wait_for(call, 5)
        with pytest.raises(RegistryError):
            await registry.register(_service("x", Node("n", "127.0.0.1:1")), ttl=5)


@pytest.mark.parametrize(
    "address", ["ftp://127.0.0.1:2379", "127.0.0.1:notaport", "http://127.0.0.1:2379/path", ","]
)
def test_bad_addresses_are_refused(address: str) -> None:
    with pytest.raises(RegistryError, match="etcd address"):
        EtcdRegistry(address=address)


def test_addresses_are_parsed() -> None:
    registry = EtcdRegistry(address="http://10.0.0.1, 10.0.0.2:2380,[::1]:2379")
    assert registry.endpoints == [("10.0.0.1", 2379), ("10.0.0.2", 2380), ("::1", 2379)]
    assert EtcdRegistry(address=["a:1", "b:2"]).endpoints == [("a", 1), ("b", 2)]
    with pytest.raises(RegistryError, match="tls_cert and tls_key"):
        EtcdRegistry(tls_cert=b"-----BEGIN CERTIFICATE-----")


def test_address_comes_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from micro import plugins
    from micro.settings import load

    monkeypatch.setenv("MICRO_REGISTRY_ADDRESS", "127.0.0.9:1234,127.0.0.10:1235")
    assert EtcdRegistry().endpoints == [("127.0.0.1", 2379)]  # a backend never reads env
    settings = load()  # an entry point does, once
    made = plugins.create("registry", "etcd", settings=settings)
    assert isinstance(made, EtcdRegistry)
    assert made.endpoints == [("127.0.0.9", 1234), ("127.0.0.10", 1235)]
    made = plugins.create("registry", "etcd", settings=settings, address="127.0.0.11:5")
    assert isinstance(made, EtcdRegistry)
    assert made.endpoints == [("127.0.0.11", 5)]
