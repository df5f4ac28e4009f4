"""MdnsRegistry over real sockets on loopback: confinement, caching, TTLs, Go interop."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import pytest

from micro.errors import RegistryError, ServiceNotFound
from micro.registry import Endpoint, Node, Result, Service, Value
from micro.registry import _mdns_publish as mdns_publish
from micro.registry import mdns as mdns_module
from micro.registry._mdns_net import MDNS_ADDR, MDNS_PORT, choose_interfaces
from micro.registry._mdns_wire import ANY, PTR, SRV, A, Srv, query_packets, read_packet
from micro.registry.mdns import MdnsRegistry
from tests.registry.go_samples import GREETER_RESPONSE
from tests.registry.test_mdns_wire import GREETER, NODE_ID, _go_goodbye

pytestmark = pytest.mark.integration


@pytest.fixture
async def pair() -> AsyncIterator[tuple[MdnsRegistry, MdnsRegistry]]:
    async with MdnsRegistry() as a, MdnsRegistry() as b:
        yield a, b


def _name() -> str:
    return f"mdns-test-{uuid.uuid4().hex[:8]}"


def _service(name: str, *, port: int = 50051, version: str = "1.0.0", **meta: str) -> Service:
    node = Node(f"{name}-1", f"127.0.0.1:{port}", {"protocol": "mucp", **meta})
    return Service(name, version, {}, [Endpoint("Say.Hello")], [node])


@contextmanager
def _loopback_socket() -> Iterator[socket.socket]:
    """A plain UDP socket whose multicast can only leave through lo (plays the Go peer)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        sock.settimeout(2.0)
        yield sock
    finally:
        sock.close()


async def _next(watch: AsyncIterator[Result], timeout: float = 3.0) -> Result:
    return await asyncio.wait_for(anext(watch), timeout)


# -- confinement --------------------------------------------------------------------------


async def test_sockets_stay_on_the_pinned_loopback_interface() -> None:
    async with MdnsRegistry() as registry:
        assert registry._net is not None
        sockets = registry._net.sockets
        assert len(sockets) == 3  # listener, responder, one-shot querier
        bound = [s.getsockname() for s in sockets]
        assert bound[0] == (MDNS_ADDR, MDNS_PORT)  # the group only: no unicast from outside
        assert [host for host, _ in bound[1:]] == ["127.0.0.1", "127.0.0.1"]
        for sock in sockets[1:]:
            out_if = sock.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, 4)
            assert socket.inet_ntoa(out_if) == "127.0.0.1"
        assert all(i.address == "127.0.0.1" for i in registry._net.interfaces)


async def test_interfaces_argument_beats_the_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICRO_MDNS_INTERFACES", "not-an-address")
    with pytest.raises(RegistryError, match="not an IPv4 address"):
        await MdnsRegistry().start()
    async with MdnsRegistry(interfaces=["127.0.0.1"]) as registry:
        assert registry._net is not None
        assert [i.address for i in registry._net.interfaces] == ["127.0.0.1"]


@pytest.mark.parametrize("pinned", [["192.0.2.254"], ["::1"], ["127.0.0.1", "198.51.100.1"]])
async def test_unusable_interfaces_fail_loudly(pinned: list[str]) -> None:
    registry = MdnsRegistry(interfaces=pinned)
    with pytest.raises(RegistryError):
        await registry.start()
    assert registry._net is None


def test_env_is_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICRO_MDNS_INTERFACES", " 127.0.0.1 , ")
    chosen, pinned = choose_interfaces(None)
    assert pinned
    assert [(i.address, str(i.network)) for i in chosen] == [("127.0.0.1", "127.0.0.0/8")]


def test_unpinned_means_every_interface_without_opening_anything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MICRO_MDNS_INTERFACES")
    chosen, pinned = choose_interfaces(None)
    assert not pinned
    assert chosen
    assert all(not i.network.is_loopback for i in chosen) or len(chosen) == 1


# -- lookups ------------------------------------------------------------------------------


async def test_first_lookup_returns_as_soon_as_answers_arrive(
    pair: tuple[MdnsRegistry, MdnsRegistry],
) -> None:
    a, _ = pair
    name = _name()
    await a.register(_service(name), ttl=30)
    async with MdnsRegistry(timeout=2.0) as fresh:
        started = time.monotonic()
        (found,) = await fresh.get_service(name)
        took = time.monotonic() - started
    assert found.nodes[0].address == "127.0.0.1:50051"
    assert took < 1.0, f"lookup waited {took:.2f} s for a 2 s window"


async def test_warm_cache_answers_without_the_network(
    pair: tuple[MdnsRegistry, MdnsRegistry], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = pair
    name = _name()
    await a.register(_service(name), ttl=30)
    assert b._net is not None
    sent: list[list[bytes]] = []
    monkeypatch.setattr(b._net, "query", sent.append)
    await asyncio.gather(*(b.get_service(name) for _ in range(10)))  # one shared query
    assert len(sent) == 1
    for _ in range(20):
        assert (await b.get_service(name))[0].nodes[0].id == f"{name}-1"
    assert len(sent) == 1


async def test_lookup_reads_the_legacy_local_domain(
    pair: tuple[MdnsRegistry, MdnsRegistry],
) -> None:
    _, b = pair
    async with MdnsRegistry(domain="local") as old:
        name = _name()
        await old.register(_service(name), ttl=30)
        (found,) = await b.get_service(name)
        assert found.nodes[0].id == f"{name}-1"


# -- publishing ---------------------------------------------------------------------------


async def test_records_carry_the_register_ttl(
    pair: tuple[MdnsRegistry, MdnsRegistry], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = pair
    assert a._net is not None
    sent: list[bytes] = []
    monkeypatch.setattr(a._net, "multicast", sent.extend)
    await a.register(_service(_name()), ttl=3)
    await a.register(_service(_name()), ttl=None)
    ttls = [{r.ttl for r in read_packet(p).records} for p in sent]  # type: ignore[union-attr]
    per_node = 2 * len(a._domains)  # the node and its wildcard entry, in each domain
    assert ttls == [{3}] * per_node + [{120}] * per_node


async def test_unchanged_reregistration_is_one_announcement(
    pair: tuple[MdnsRegistry, MdnsRegistry], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = pair
    announcement = 2 * len(a._domains)  # packets: the node and its wildcard, in each domain
    name = _name()
    watch = b.watch(name)
    await a.register(_service(name), ttl=30)
    assert (await _next(watch)).action == "create"
    assert a._net is not None
    sent: list[bytes] = []
    send = a._net.multicast

    def recording(packets: list[bytes]) -> None:
        sent.extend(packets)
        send(packets)

    monkeypatch.setattr(a._net, "multicast", recording)
    await asyncio.sleep(1.2)  # the second announcement of a new node
    assert len(sent) == announcement
    sent.clear()
    monkeypatch.setattr(mdns_publish, "WILDCARD_REPEAT", 60.0)  # however slow this machine is
    for _ in range(10):
        await a.register(_service(name), ttl=30)
    instances = [{r.name for r in read_packet(p).records} for p in sent]  # type: ignore[union-attr]
    node = [i for i in instances if f"{name}-1.{name}.micro." in i]
    wildcard = [i for i in instances if f"{name}._services.micro." in i]
    assert (len(node), len(wildcard)) == (10, 1)  # the wildcard once per WILDCARD_REPEAT
    assert len(sent) == len(a._domains) * (10 + 1)
    assert a._timers == {}  # nothing more is scheduled for an unchanged node
    changed = _service(name, version="2.0.0")
    changed.endpoints.append(Endpoint("Say.Bye", Value("Req", "Req")))
    await a.register(changed, ttl=30)
    update = await _next(watch)
    assert update.action == "update"
    assert (update.service.version, len(update.service.endpoints)) == ("2.0.0", 2)


async def test_close_says_goodbye(pair: tuple[MdnsRegistry, MdnsRegistry]) -> None:
    _, b = pair
    name = _name()
    watch = b.watch(name)
    a = MdnsRegistry()
    await a.register(_service(name), ttl=60)
    assert (await _next(watch)).action == "create"
    started = time.monotonic()
    await a.close()
    assert (await _next(watch, 1.0)).action == "delete"
    assert time.monotonic() - started < 0.5
    assert name not in {s.name for s in await b.list_services()}  # the wildcard went too
    with pytest.raises(RegistryError):
        await a.register(_service(name))
    with pytest.raises(StopAsyncIteration):
        await anext(a.watch())


async def test_a_goodbye_on_one_host_leaves_the_other_nodes_at_their_address(
    pair: tuple[MdnsRegistry, MdnsRegistry],
) -> None:
    """Two services on one host, one leaves: its goodbye retires the host's address record,
    which the other node's records share; that node stays at 127.0.0.1, never the hostname.
    Large nodes, whose records no longer fit in one 1460-byte packet, included."""
    a, b = pair
    rng = __import__("random").Random(2)
    noise = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(3000))
    stays, leaves = _service(_name(), port=50061, blob=noise), _service(_name(), port=50062)
    async with MdnsRegistry() as observer:
        watch = observer.watch(stays.name)
        await a.register(stays, ttl=60)
        await b.register(leaves, ttl=60)
        created = await _next(watch)
        assert created.service.nodes[0].address == "127.0.0.1:50061"
        assert (await observer.get_service(leaves.name))[0].nodes[0].address == "127.0.0.1:50062"
        await b.deregister(leaves)
        await asyncio.sleep(0.3)  # the goodbye has arrived
        for registry in (observer, a):
            (service,) = await registry.get_service(stays.name)
            assert [n.address for n in service.nodes] == ["127.0.0.1:50061"]
        with pytest.raises(TimeoutError):  # no update to another address
            await _next(watch, 0.3)


async def test_a_node_named_by_its_transport_keeps_its_name_as_address(
    pair: tuple[MdnsRegistry, MdnsRegistry],
) -> None:
    """A nats or rabbitmq node's address is a subject or queue name, not host:port: it
    travels in the TXT metadata (the SRV says port 0) and comes back as it was."""
    a, b = pair
    name = _name()
    subject = f"_INBOX.{uuid.uuid4().hex}"
    node = Node(f"{name}-1", subject, {"transport": "nats"})
    watch = b.watch(name)
    await a.register(Service(name, "1", {}, [Endpoint("Say.Hello")], [node]), ttl=60)
    created = await _next(watch)
    assert created.service.nodes == [Node(f"{name}-1", subject, {"transport": "nats"})]
    (found,) = await b.get_service(name)
    assert [(n.address, n.metadata) for n in found.nodes] == [(subject, {"transport": "nats"})]
    await a.deregister(Service(name, "1", nodes=[node]))
    assert (await _next(watch)).action == "delete"


@pytest.mark.parametrize(
    ("address", "node_id"),
    [("127.0.0.1", "n1"), ("127.0.0.1:1", "x" * 64), ("127.0.0.1:1", "a..b")],
)
async def test_nodes_dns_cannot_carry_are_refused(address: str, node_id: str) -> None:
    async with MdnsRegistry() as registry:
        with pytest.raises(RegistryError):
            await registry.register(Service("svc", nodes=[Node(node_id, address)]))


async def test_a_service_too_large_for_a_packet_is_refused() -> None:
    rng = __import__("random").Random(1)
    noise = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(20000))
    service = _service(_name(), blob=noise)
    async with MdnsRegistry() as registry:
        with pytest.raises(RegistryError, match="too large"):
            await registry.register(service)


@pytest.mark.slow
async def test_silent_go_style_responder_is_kept_alive_by_refresh_queries(
    pair: tuple[MdnsRegistry, MdnsRegistry], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node that never re-announces (go-micro) stays while it answers; vanishes once not."""
    a, b = pair
    monkeypatch.setattr(mdns_module, "DEFAULT_RECORD_TTL", 2)
    name = _name()
    watch = b.watch(name)
    await a.register(_service(name))
    for timer in a._timers.values():
        timer.cancel()  # no more announcements: only answers to queries, like Go
    assert (await _next(watch)).action == "create"
    with pytest.raises(TimeoutError):
        await _next(watch, 3.5)  # past 2 s: refreshed by b's queries at 80% and 90%
    assert a._net is not None
    a._net.close()  # the process "dies": no goodbye, no answers
    started = time.monotonic()
    assert (await _next(watch, 3.0)).action == "delete"
    assert time.monotonic() - started <= 2.5  # the 2 s record TTL, not zeroconf's 75 min
    a._published.clear()


async def test_watchers_unsubscribe_on_aclose_and_when_dropped(
    pair: tuple[MdnsRegistry, MdnsRegistry],
) -> None:
    _, b = pair
    kept, dropped = b.watch("x"), b.watch(None)
    assert len(b._watchers) == 2
    waiting = asyncio.ensure_future(anext(kept))
    await asyncio.sleep(0.01)
    await kept.aclose()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 1.0)
    del dropped
    gc.collect()
    assert len(b._watchers) == 0
    assert not b._interested("x")


# -- robustness and Go interop ------------------------------------------------------------


async def test_go_announcement_and_goodbye_over_the_socket(
    pair: tuple[MdnsRegistry, MdnsRegistry],
) -> None:
    _, b = pair
    watch = b.watch(GREETER)
    with _loopback_socket() as go:
        go.sendto(GREETER_RESPONSE, (MDNS_ADDR, MDNS_PORT))
        created = await _next(watch)
        assert created.action == "create"
        assert created.service.nodes[0] == Node(
            NODE_ID, "127.0.0.1:50051", created.service.nodes[0].metadata
        )
        (found,) = await b.get_service(GREETER)
        assert len(found.endpoints) == 4
        go.sendto(_go_goodbye(), (MDNS_ADDR, MDNS_PORT))
        assert (await _next(watch)).action == "delete"
    with pytest.raises(ServiceNotFound):
        await b.get_service(GREETER)


async def test_a_go_style_one_shot_query_gets_a_unicast_answer(
    pair: tuple[MdnsRegistry, MdnsRegistry],
) -> None:
    a, _ = pair
    name = _name()
    await a.register(_service(name), ttl=30)
    (query,) = query_packets([f"{name}.micro."])
    with _loopback_socket() as go:
        go.sendto(query, (MDNS_ADDR, MDNS_PORT))
        data, (host, _) = await asyncio.to_thread(go.recvfrom, 9000)
    answer = read_packet(data)
    assert answer is not None
    assert (host, answer.id, answer.query) == ("127.0.0.1", read_packet(query).id, False)  # type: ignore[union-attr]
    assert answer.questions[0].name == f"{name}.micro."
    assert answer.questions[0].type == PTR
    srv = next(r for r in answer.records if isinstance(r, Srv))
    assert (srv.name, srv.port, srv.ttl) == (f"{name}-1.{name}.micro.", 50051, 30)


@pytest.mark.parametrize(
    ("question", "qtype", "expect"),
    [
        ("{name}-1.{name}.micro.", ANY, {"SRV", "TXT", "A"}),
        ("{host}.", A, {"A"}),
        ("_services.micro.", PTR, {"PTR", "SRV", "TXT", "A"}),
        ("{name}._services.micro.", SRV, {"SRV", "TXT", "A"}),
    ],
)
async def test_answers_for_instance_host_and_listing_questions(
    pair: tuple[MdnsRegistry, MdnsRegistry], question: str, qtype: int, expect: set[str]
) -> None:
    a, _ = pair
    name = _name()
    await a.register(_service(name), ttl=30)
    asked = question.format(name=name, host=a._hostname)
    (query,) = query_packets([asked], qtype)
    with _loopback_socket() as peer:
        peer.sendto(query, (MDNS_ADDR, MDNS_PORT))
        while True:  # other registries on this machine may answer a listing question too
            data, _ = await asyncio.to_thread(peer.recvfrom, 9000)
            answer = read_packet(data)
            assert answer is not None
            if any(name in r.name or r.name == asked for r in answer.records):
                break
    kinds = {type(r).__name__.upper().replace("ADDR", "A") for r in answer.records}
    assert kinds == expect


async def test_multicast_question_gets_a_multicast_answer(
    pair: tuple[MdnsRegistry, MdnsRegistry],
) -> None:
    """A question from port 5353 (python-zeroconf, avahi) is answered to the group."""
    a, _ = pair
    name = _name()
    await a.register(_service(name), ttl=30)
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    asker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for sock in (listener, asker):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listener.setsockopt(socket.IPPROTO_IP, 49, 0)  # IP_MULTICAST_ALL off
        listener.bind((MDNS_ADDR, MDNS_PORT))
        group = socket.inet_aton(MDNS_ADDR) + socket.inet_aton("127.0.0.1")
        listener.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, group)
        listener.settimeout(2.0)
        asker.bind(("127.0.0.1", MDNS_PORT))
        asker.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        (query,) = query_packets([f"{name}.micro."])
        asker.sendto(query, (MDNS_ADDR, MDNS_PORT))
        while True:
            data, _ = await asyncio.to_thread(listener.recvfrom, 9000)
            packet = read_packet(data)
            if packet and not packet.query and any(name in r.name for r in packet.records):
                break
    finally:
        listener.close()
        asker.close()
    assert packet.id == 0
    assert packet.questions == []


async def test_garbage_never_breaks_the_registry(
    pair: tuple[MdnsRegistry, MdnsRegistry], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = pair
    name = _name()
    await a.register(_service(name), ttl=30)
    rng = __import__("random").Random(7)
    junk = [bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 400))) for _ in range(200)]
    for _ in range(200):
        corrupt = bytearray(GREETER_RESPONSE)
        for _ in range(rng.randint(1, 6)):
            corrupt[rng.randrange(len(corrupt))] = rng.getrandbits(8)
        junk.append(bytes(corrupt))
    with caplog.at_level(logging.DEBUG, "micro.registry.mdns"), _loopback_socket() as peer:
        for data in junk:
            b._on_datagram(data, ("127.0.0.1", MDNS_PORT))
            b._on_datagram(data, ("127.0.0.1", 40000))
        for data in junk[:50]:
            peer.sendto(data, (MDNS_ADDR, MDNS_PORT))
        await asyncio.sleep(0.2)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    (found,) = await b.get_service(name)
    assert found.nodes[0].id == f"{name}-1"
