"""What a go-micro v1 peer sees of this registry: its domains, and one entry per packet.

go-micro's mdns client turns each received DNS message into at most one entry: it walks the
answer and additional records in order, keeps the entries in progress by name (an SRV whose
target differs from its name makes the target an alias of the instance, so the address record
of the target lands on it), and takes the entry the message's last record led to. A query
delivers that entry once it has an address, a port and a TXT, and each entry only once; later
client versions also drop messages whose first question is not the one asked. Its watcher
does the same per multicast message and starts afresh after each complete entry.
:class:`GoClient` does exactly that with its own DNS parser, so a packet carrying two
instances shows it only one, as it showed go-micro.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

import pytest

from micro.errors import RegistryError, ServiceNotFound
from micro.plugins import create
from micro.registry import Endpoint, Node, Result, Service
from micro.registry._mdns_net import MDNS_ADDR, MDNS_PORT
from micro.registry._mdns_txt import TxtPayload, encode_txt
from micro.registry._mdns_wire import PTR, Publication, query_packets, response_packets
from micro.registry.mdns import MdnsRegistry
from micro.settings import load

pytestmark = pytest.mark.integration

_PTR, _SRV, _TXT, _A = 12, 33, 16, 1

# -- go-micro's client, from its behaviour ---------------------------------------------------


@dataclass
class GoEntry:
    """One service entry as go-micro's mdns client assembles it."""

    name: str
    host: str = ""
    port: int = 0
    address: str = ""
    txt: list[bytes] | None = None
    ttl: int = 0
    sent: bool = False

    @property
    def complete(self) -> bool:
        return bool(self.address) and self.port != 0 and self.txt is not None


@dataclass
class GoMessage:
    questions: list[str]
    records: list[tuple[str, int, int, object]]  # (name, type, ttl, data): answers + extras


def _name(data: bytes, offset: int) -> tuple[str, int]:
    """A DNS name at ``offset`` (following compression pointers) and the offset after it."""
    labels: list[str] = []
    end = None
    while True:
        length = data[offset]
        if length & 0xC0 == 0xC0:
            end = offset + 2 if end is None else end
            offset = struct.unpack_from("!H", data, offset)[0] & 0x3FFF
            continue
        if length == 0:
            return ".".join(labels) + ".", offset + 1 if end is None else end
        labels.append(data[offset + 1 : offset + 1 + length].decode())
        offset += 1 + length


def _rdata(data: bytes, rtype: int, start: int, length: int) -> object:
    if rtype == _PTR:
        return _name(data, start)[0]
    if rtype == _SRV:
        port = struct.unpack_from("!H", data, start + 4)[0]
        return port, _name(data, start + 6)[0]
    if rtype == _TXT:
        strings, at = [], start
        while at < start + length:
            strings.append(data[at + 1 : at + 1 + data[at]])
            at += 1 + data[at]
        return strings
    if rtype == _A:
        return socket.inet_ntoa(data[start : start + 4])
    return None


def parse_message(data: bytes) -> GoMessage:
    """The questions and the answer + additional records (authority skipped, as Go does)."""
    _, _, qd, an, ns, ar = struct.unpack_from("!6H", data)
    offset, questions = 12, []
    for _ in range(qd):
        name, offset = _name(data, offset)
        questions.append(name)
        offset += 4
    records = []
    for index in range(an + ns + ar):
        name, offset = _name(data, offset)
        rtype, _, ttl, length = struct.unpack_from("!HHIH", data, offset)
        offset += 10
        if not an <= index < an + ns:
            records.append((name, rtype, ttl, _rdata(data, rtype, offset, length)))
        offset += length
    return GoMessage(questions, records)


class GoClient:
    """go-micro v1's mdns client: one entry per message (see the module docstring).

    Args:
        asked: the question of a query (``None``: the watcher, listening to announcements).
    """

    def __init__(self, asked: str | None = None) -> None:
        self.asked = asked
        self.entries: list[GoEntry] = []
        self._progress: dict[str, GoEntry] = {}

    def _get(self, name: str) -> GoEntry:
        return self._progress.setdefault(name, GoEntry(name))

    def _entry(self, message: GoMessage) -> GoEntry | None:
        entry = None
        for name, rtype, ttl, value in message.records:
            if rtype == _PTR:
                assert isinstance(value, str)
                entry = self._get(value)
            elif rtype == _SRV:
                port, target = cast("tuple[int, str]", value)
                if target != name:
                    self._progress[target] = self._get(name)
                entry = self._get(name)
                if not entry.complete:
                    entry.host, entry.port = target, port
            elif rtype == _TXT:
                entry = self._get(name)
                if not entry.complete:
                    entry.txt = value  # type: ignore[assignment]
            elif rtype == _A:
                entry = self._get(name)
                if not entry.complete:
                    entry.address = str(value)
            else:
                continue
            entry.ttl = ttl
        return entry

    def feed(self, data: bytes) -> None:
        """Take one received message; a complete, new entry is delivered."""
        message = parse_message(data)
        entry = self._entry(message)
        if entry is None or not entry.complete or entry.sent:
            return
        if self.asked is not None and message.questions[:1] != [self.asked]:
            return
        entry.sent = True
        self.entries.append(entry)
        if self.asked is None:
            self._progress = {}

    def names(self, containing: str = "") -> set[str]:
        return {e.name for e in self.entries if containing in e.name}


# -- the Go client's view of our packets (sans-IO) ---------------------------------------------


def _pub(service: str, node: str, port: int, domain: str = "local") -> Publication:
    return Publication(service, domain, node, "vm.", "127.0.0.1", port, [b"x"])


def test_the_go_client_sees_one_of_two_instances_packed_together() -> None:
    """The decoder's own check: one packet with two nodes yields one entry, as in go-micro."""
    one, two = _pub("svc", "n1", 1001), _pub("svc", "n2", 1002)
    packed = response_packets(one.records(60) + two.records(60))
    separate = response_packets(one.records(60)) + response_packets(two.records(60))
    go = GoClient()
    for data in packed:
        go.feed(data)
    assert len(go.entries) == 1
    go = GoClient()
    for data in separate:
        go.feed(data)
    assert [(e.name, e.port, e.address) for e in go.entries] == [
        ("n1.svc.local.", 1001, "127.0.0.1"),
        ("n2.svc.local.", 1002, "127.0.0.1"),
    ]


# -- a registry with several services and nodes, seen by the Go client -------------------------


def _services(prefix: str) -> list[Service]:
    """Three services, two of them with several nodes (like the HTTP broker's topics)."""
    out, port = [], 41000
    for name, count in ((f"{prefix}-a", 1), (f"{prefix}-b", 3), (f"{prefix}-c", 2)):
        nodes = [Node(f"{name}-{i}", f"127.0.0.1:{port + i}", {"i": str(i)}) for i in range(count)]
        out.append(Service(name, "1.0.0", {}, [Endpoint("Say.Hello")], nodes))
        port += 10
    return out


@contextmanager
def _go_socket() -> Iterator[socket.socket]:
    """A socket like go-micro's client: ephemeral port, multicast out through lo only."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        yield sock
    finally:
        sock.close()


async def _go_query(question: str, expected: set[str], marker: str) -> GoClient:
    """Ask ``question`` as go-micro does; read answers until ``expected`` came or 3 s passed."""
    go = GoClient(asked=question)
    (query,) = query_packets([question], PTR)
    deadline = time.monotonic() + 3.0
    with _go_socket() as sock:
        sock.sendto(query, (MDNS_ADDR, MDNS_PORT))
        while not expected <= go.names(marker) and (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, _ = await asyncio.to_thread(sock.recvfrom, 9000)
            except TimeoutError:
                break
            go.feed(data)
    return go


@pytest.fixture
async def published() -> AsyncIterator[tuple[MdnsRegistry, list[Service], list[bytes]]]:
    """A default registry with :func:`_services` registered, and the packets it multicast."""
    prefix = f"go-{uuid.uuid4().hex[:6]}"
    async with MdnsRegistry() as registry:
        assert registry._net is not None
        sent: list[bytes] = []
        send = registry._net.multicast

        def recording(packets: list[bytes]) -> None:
            sent.extend(packets)
            send(packets)

        registry._net.multicast = recording  # type: ignore[method-assign]
        services = _services(prefix)
        for service in services:
            await registry.register(service, ttl=30)
        yield registry, services, sent


@pytest.mark.parametrize("domain", ["local", "micro"])
async def test_go_lists_every_service(
    published: tuple[MdnsRegistry, list[Service], list[bytes]], domain: str
) -> None:
    _, services, _ = published
    expected = {f"{s.name}._services.{domain}." for s in services}
    go = await _go_query(f"_services.{domain}.", expected, services[0].name[:9])
    assert go.names(services[0].name[:9]) == expected


@pytest.mark.parametrize("domain", ["local", "micro"])
async def test_go_finds_every_node_of_a_service(
    published: tuple[MdnsRegistry, list[Service], list[bytes]], domain: str
) -> None:
    _, services, _ = published
    service = services[1]
    expected = {f"{n.id}.{service.name}.{domain}." for n in service.nodes}
    go = await _go_query(f"{service.name}.{domain}.", expected, service.name)
    assert go.names(service.name) == expected
    ports = {e.name.split(".")[0]: (e.address, e.port) for e in go.entries}
    assert ports == {n.id: ("127.0.0.1", int(n.address.rsplit(":")[1])) for n in service.nodes}


async def test_go_watcher_sees_every_announcement_and_goodbye(
    published: tuple[MdnsRegistry, list[Service], list[bytes]],
) -> None:
    registry, services, sent = published
    nodes = {f"{n.id}.{s.name}.{d}." for s in services for n in s.nodes for d in ("micro", "local")}
    wildcards = {f"{s.name}._services.{d}." for s in services for d in ("micro", "local")}
    go = GoClient()
    for data in sent:
        go.feed(data)
    assert go.names() == nodes | wildcards
    assert {e.ttl for e in go.entries} == {30}
    sent.clear()
    for service in services:
        await registry.deregister(service)
    go = GoClient()
    for data in sent:
        go.feed(data)
    assert go.names() == nodes | wildcards
    assert {e.ttl for e in go.entries} == {0}


# -- domains -----------------------------------------------------------------------------------


def _one(name: str, node: str = "n1", port: int = 42000) -> Service:
    return Service(name, "1.0.0", {}, [], [Node(f"{name}-{node}", f"127.0.0.1:{port}")])


async def _next(watch: AsyncIterator[Result], timeout: float = 3.0) -> Result:
    return await asyncio.wait_for(anext(watch), timeout)


def _unique() -> str:
    return f"dom-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("domain", ["local", "micro"])
async def test_the_default_finds_a_node_of_either_era(domain: str) -> None:
    name = _unique()
    async with MdnsRegistry(domain=domain) as go_era, MdnsRegistry() as ours:
        await go_era.register(_one(name), ttl=30)
        (found,) = await ours.get_service(name)
        assert [n.id for n in found.nodes] == [f"{name}-n1"]
        assert name in {s.name for s in await ours.list_services()}


async def test_a_node_heard_in_both_domains_is_one_node() -> None:
    name = _unique()
    async with MdnsRegistry() as a, MdnsRegistry() as b:
        watch = b.watch(name)
        await a.register(_one(name), ttl=30)
        created = await _next(watch)
        assert created.action == "create"
        (found,) = await b.get_service(name)
        assert len(found.nodes) == 1
        [listed] = [s for s in await b.list_services() if s.name == name]
        assert len(listed.nodes) == 1
        await a.deregister(_one(name))
        assert (await _next(watch)).action == "delete"  # no second create came first


async def test_a_goodbye_in_one_domain_keeps_the_node_heard_in_the_other() -> None:
    name = _unique()
    async with MdnsRegistry() as b:
        watch = b.watch(name)
        txt = encode_txt(TxtPayload(name, "1.0.0"))
        pubs = {
            d: Publication(name, d, f"{name}-n1", "vm.", "127.0.0.1", 42000, txt)
            for d in ("micro", "local")
        }
        go = ("127.0.0.1", MDNS_PORT)
        for pub in pubs.values():
            (packet,) = response_packets(pub.records(30))
            b._on_datagram(packet, go)
        assert (await _next(watch)).action == "create"
        (goodbye,) = response_packets(pubs["micro"].records(0))
        b._on_datagram(goodbye, go)
        (found,) = await b.get_service(name)
        assert found.nodes[0].address == "127.0.0.1:42000"
        (goodbye,) = response_packets(pubs["local"].records(0))
        b._on_datagram(goodbye, go)
        deleted = await _next(watch)  # the first event since the create
        assert (deleted.action, deleted.service.nodes[0].id) == ("delete", f"{name}-n1")


async def test_an_explicit_domain_pins_publishing_and_browsing() -> None:
    name, other = _unique(), _unique()
    async with (
        MdnsRegistry(domain="local") as pinned,
        MdnsRegistry(domain="micro") as newer,
    ):
        assert pinned._net is not None
        sent: list[bytes] = []
        pinned._net.multicast = sent.extend  # type: ignore[method-assign,assignment]
        await pinned.register(_one(name), ttl=30)
        names = {n for data in sent for n, *_ in parse_message(data).records}
        host = f"{pinned._hostname}."
        assert names
        assert all(n.endswith(".local.") for n in names if n != host)
        await newer.register(_one(other), ttl=30)
        with pytest.raises(ServiceNotFound):
            await pinned.get_service(other)
        assert other not in {s.name for s in await pinned.list_services()}


def test_the_domain_setting_reaches_the_registry() -> None:
    pinned = create("registry", settings=load(environ={"MICRO_MDNS_DOMAIN": "local."}))
    assert isinstance(pinned, MdnsRegistry)
    assert pinned._domains == ("local",)
    default = create("registry", settings=load(environ={}))
    assert isinstance(default, MdnsRegistry)
    assert default._domains == ("micro", "local")


@pytest.mark.parametrize("domain", ["", "a..b", "x" * 64])
def test_a_domain_dns_cannot_carry_is_refused(domain: str) -> None:
    with pytest.raises(RegistryError, match="mdns domain"):
        MdnsRegistry(domain=domain)
