"""Packets in and out, and the cache that turns records into nodes (no sockets)."""

from __future__ import annotations

import random
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st
from zeroconf._dns import DNSAddress, DNSPointer, DNSService, DNSText
from zeroconf._protocol.outgoing import DNSOutgoing
from zeroconf.const import _CLASS_IN, _FLAGS_AA, _FLAGS_QR_RESPONSE

from micro.registry import Node
from micro.registry._mdns_cache import MdnsCache
from micro.registry._mdns_txt import TxtPayload, decode_txt, encode_txt
from micro.registry._mdns_wire import (
    PTR,
    SRV,
    TXT,
    A,
    Addr,
    Ptr,
    Publication,
    Srv,
    Txt,
    check_name,
    query_packets,
    read_packet,
    response_packets,
    wildcard_records,
)
from tests.registry.go_samples import GREETER_INSTANCE, GREETER_RESPONSE, GREETER_TXT

GREETER = "go.micro.srv.greeter"
NODE_ID = "go.micro.srv.greeter-5a2257a0-16df-44a5-9e46-df42513f5326"
DOMAINS = ("micro", "local")


def _go_packet(*records: object) -> bytes:
    out = DNSOutgoing(_FLAGS_QR_RESPONSE | _FLAGS_AA)
    for record in records:
        out.add_answer_at_time(record, 0)  # type: ignore[arg-type]
    (packet,) = out.packets()
    return packet


def _go_list_answer(ttl: int = 120) -> bytes:
    """What go-micro sends for `_services.local. PTR`: A vm. -> 0.0.0.0 and a zero-length TXT."""
    name = f"{GREETER}._services.local."
    return _go_packet(
        DNSPointer("_services.local.", PTR, _CLASS_IN, ttl, name),
        DNSService(name, SRV, _CLASS_IN, ttl, 10, 1, 9999, "vm."),
        DNSAddress("vm.", A, _CLASS_IN, ttl, bytes([0, 0, 0, 0])),
        DNSText(name, TXT, _CLASS_IN, ttl, b""),
    )


def _go_goodbye() -> bytes:
    """go-micro's deregistration: SRV, A and TXT at TTL 0, no PTR."""
    txt = b"".join(bytes([len(s)]) + s.encode() for s in GREETER_TXT)
    return _go_packet(
        DNSService(GREETER_INSTANCE, SRV, _CLASS_IN, 0, 10, 1, 50051, "vm."),
        DNSAddress("vm.", A, _CLASS_IN, 0, bytes([127, 0, 0, 1])),
        DNSText(GREETER_INSTANCE, TXT, _CLASS_IN, 0, txt),
    )


def _ingest(cache: MdnsCache, data: bytes, now: float = 0.0) -> set[str]:
    packet = read_packet(data)
    assert packet is not None
    return cache.ingest(packet.records, now)


def test_go_response_is_read_into_the_greeter_node() -> None:
    packet = read_packet(GREETER_RESPONSE)
    assert packet is not None
    assert not packet.query
    assert [type(r) for r in packet.records] == [Ptr, Srv, Addr, Txt]
    assert packet.records[1] == Srv(GREETER_INSTANCE, 120, 50051, "vm.")
    assert packet.records[2] == Addr("vm.", 120, "127.0.0.1")

    cache = MdnsCache(DOMAINS)
    assert cache.ingest(packet.records, 0.0) == {GREETER_INSTANCE.lower()}
    (service,) = cache.views().values()
    assert service.name == GREETER
    assert service.version == "latest"
    assert service.nodes == [Node(NODE_ID, "127.0.0.1:50051", service.nodes[0].metadata)]
    assert service.nodes[0].metadata["transport"] == "http"
    assert [e.name for e in service.endpoints] == ["Say.Fail", "Say.Hello", "Say.Stream", "Func"]


def test_records_of_other_domains_are_ignored() -> None:
    cache = MdnsCache(["micro"])
    _ingest(cache, GREETER_RESPONSE)
    assert cache.views() == {}


def test_wildcard_zero_address_never_becomes_the_node_address() -> None:
    for order in ((GREETER_RESPONSE, _go_list_answer()), (_go_list_answer(), GREETER_RESPONSE)):
        cache = MdnsCache(DOMAINS)
        for data in order:
            _ingest(cache, data)
        assert cache.names() == {GREETER}
        (service,) = cache.views().values()
        assert service.nodes[0].address == "127.0.0.1:50051"


def test_srv_without_address_falls_back_to_a_usable_cached_address() -> None:
    cache = MdnsCache(DOMAINS)
    _ingest(cache, _go_list_answer())  # vm. -> 0.0.0.0 only
    txt = b"".join(bytes([len(s)]) + s.encode() for s in GREETER_TXT)
    srv_txt = _go_packet(
        DNSService(GREETER_INSTANCE, SRV, _CLASS_IN, 120, 10, 1, 50051, "vm."),
        DNSText(GREETER_INSTANCE, TXT, _CLASS_IN, 120, txt),
    )
    _ingest(cache, srv_txt)
    assert cache.views()[GREETER_INSTANCE.lower()].nodes[0].address == "vm:50051"
    _ingest(cache, _go_packet(DNSAddress("vm.", A, _CLASS_IN, 120, bytes([10, 0, 0, 7]))))
    assert cache.views()[GREETER_INSTANCE.lower()].nodes[0].address == "10.0.0.7:50051"


def test_each_node_keeps_the_address_sent_beside_its_srv() -> None:
    cache = MdnsCache(DOMAINS)
    for ip, node in (("127.0.0.1", "n1"), ("10.1.2.3", "n2")):
        pub = Publication("svc", "micro", node, "vm.", ip, 8080, encode_txt(TxtPayload("svc")))
        for data in response_packets(pub.records(60)):
            _ingest(cache, data)
    got = sorted(v.nodes[0].address for v in cache.views().values())
    assert got == ["10.1.2.3:8080", "127.0.0.1:8080"]


def _big_publication(node: str, port: int) -> Publication:
    """A node whose TXT is too long to share a 1460-byte packet with its other records."""
    rng = random.Random(port)  # noise: zlib cannot shrink it below the packet size
    noise = {f"k{i}": "".join(rng.choices(string.ascii_letters, k=60)) for i in range(40)}
    payload = TxtPayload("svc", metadata=noise)
    return Publication("svc", "micro", node, "vm.", "127.0.0.1", port, encode_txt(payload))


def test_a_large_node_keeps_its_address_in_the_packet_of_its_srv() -> None:
    packets = [read_packet(data) for data in response_packets(_big_publication("n", 1).records(9))]
    assert len(packets) > 1  # the codec split the group
    with_srv = [p.records for p in packets if p and any(isinstance(r, Srv) for r in p.records)]
    assert [[type(r) for r in records] for records in with_srv] == [[Ptr, Srv, Addr]]


def test_a_goodbye_on_the_host_keeps_the_address_of_its_other_nodes() -> None:
    """A goodbye's address record at TTL 0 is the one every node of the host shares: the
    nodes that stay keep their address, also when their SRV came without one (a publisher
    that splits a node over packets, address last)."""
    cache = MdnsCache(DOMAINS)
    one, two = _big_publication("n1", 1001), _big_publication("n2", 1002)
    for pub in (one, two):
        srv_ptr, address, txt = pub.records(60)[:2], pub.records(60)[2], pub.records(60)[3]
        for group in (srv_ptr, [txt], [address]):
            for data in response_packets(group):
                _ingest(cache, data)
    assert sorted(v.nodes[0].address for v in cache.views().values()) == [
        "127.0.0.1:1001",
        "127.0.0.1:1002",
    ]
    for data in response_packets(one.records(0)):
        _ingest(cache, data, now=1.0)
    assert [v.nodes[0].address for v in cache.views().values()] == ["127.0.0.1:1002"]


def test_a_new_host_address_reaches_the_nodes_that_have_none_of_their_own() -> None:
    cache = MdnsCache(DOMAINS)
    txt = encode_txt(TxtPayload("svc"))
    for data in response_packets(
        Publication("svc", "micro", "n1", "vm.", None, 1001, txt).records(60)
    ):
        _ingest(cache, data)
    assert [v.nodes[0].address for v in cache.views().values()] == ["vm:1001"]  # as sent
    _ingest(cache, _go_packet(DNSAddress("vm.", A, _CLASS_IN, 120, bytes([10, 0, 0, 7]))))
    assert [v.nodes[0].address for v in cache.views().values()] == ["10.0.0.7:1001"]
    _ingest(cache, _go_packet(DNSAddress("vm.", A, _CLASS_IN, 0, bytes([10, 0, 0, 7]))))
    _ingest(cache, _go_packet(DNSAddress("vm.", A, _CLASS_IN, 120, bytes([10, 0, 0, 8]))))
    assert [v.nodes[0].address for v in cache.views().values()] == ["10.0.0.8:1001"]


def test_a_node_published_under_a_name_keeps_its_name() -> None:
    cache = MdnsCache(DOMAINS)
    txt = encode_txt(TxtPayload("svc"))
    pub = Publication("svc", "micro", "n1", "db.example.", None, 5432, txt)
    for data in response_packets(pub.records(60)):
        _ingest(cache, data)
    assert [v.nodes[0].address for v in cache.views().values()] == ["db.example:5432"]


def test_go_goodbye_removes_the_node_at_once() -> None:
    cache = MdnsCache(DOMAINS)
    _ingest(cache, GREETER_RESPONSE)
    assert _ingest(cache, _go_goodbye(), now=1.0) == {GREETER_INSTANCE.lower()}
    assert cache.views() == {}
    assert cache.next_deadline(lambda _: True) is None


def test_records_expire_after_their_ttl() -> None:
    cache = MdnsCache(DOMAINS)
    _ingest(cache, GREETER_RESPONSE, now=10.0)
    _ingest(cache, _go_list_answer(ttl=30), now=10.0)
    before = cache.views()
    cache.expire(129.9)
    assert cache.views() == before
    assert cache.names() == {GREETER}  # the wildcard (40 s) lapsed, the node still names it
    assert cache.expire(130.0) == {GREETER_INSTANCE.lower()}
    assert cache.views() == {}
    assert cache.names() == set()


def test_refresh_queries_only_for_interesting_names_near_expiry() -> None:
    cache = MdnsCache(DOMAINS)
    _ingest(cache, GREETER_RESPONSE, now=0.0)
    assert cache.next_deadline(lambda _: False) == 120.0
    assert cache.due_refresh(200.0, lambda _: False) == set()
    assert cache.next_deadline(lambda _: True) == pytest.approx(96.0)
    assert cache.due_refresh(95.0, lambda _: True) == set()
    assert cache.due_refresh(96.0, lambda _: True) == {f"{GREETER}.local."}
    assert cache.due_refresh(97.0, lambda _: True) == set()
    assert cache.next_deadline(lambda _: True) == pytest.approx(108.0)
    assert cache.due_refresh(108.0, lambda _: True) == {f"{GREETER}.local."}
    assert cache.next_deadline(lambda _: True) == 120.0
    _ingest(cache, GREETER_RESPONSE, now=110.0)  # the answer: TTL renewed, stages reset
    assert cache.next_deadline(lambda _: True) == pytest.approx(206.0)


def test_unchanged_refresh_keeps_the_view_equal() -> None:
    cache = MdnsCache(DOMAINS)
    _ingest(cache, GREETER_RESPONSE)
    before = cache.views()
    assert _ingest(cache, GREETER_RESPONSE, now=5.0) == {GREETER_INSTANCE.lower()}
    assert cache.views() == before


def test_published_layout_matches_go_micro() -> None:
    payload = TxtPayload("greeter", "1.0.0", metadata={"protocol": "mucp"})
    pub = Publication(
        "greeter", "micro", "greeter-1", "vm.", "127.0.0.1", 50051, encode_txt(payload)
    )
    records = pub.records(7) + wildcard_records("greeter", "micro", 7)
    packet = read_packet(response_packets(records)[0])
    assert packet is not None
    assert packet.records == [
        Ptr("greeter.micro.", 7, "greeter-1.greeter.micro."),
        Srv("greeter-1.greeter.micro.", 7, 50051, "vm."),
        Addr("vm.", 7, "127.0.0.1"),
        Txt("greeter-1.greeter.micro.", 7, encode_txt(payload)),
        Ptr("_services.micro.", 7, "greeter._services.micro."),
        Srv("greeter._services.micro.", 7, 9999, "greeter._services.micro."),
        Txt("greeter._services.micro.", 7, [b""]),
        Addr("greeter._services.micro.", 7, "0.0.0.0"),
    ]
    assert decode_txt(packet.records[3].strings) == payload  # type: ignore[union-attr]


def test_records_go_out_without_the_cache_flush_bit_like_go() -> None:
    pub = Publication("s", "micro", "n", "vm.", "127.0.0.1", 1, encode_txt(TxtPayload("s")))
    data = response_packets(pub.records(5))[0]
    from zeroconf._protocol.incoming import DNSIncoming

    assert all(not r.unique for r in DNSIncoming(data).answers())
    assert data[:4] == b"\x00\x00\x84\x00"  # id 0, QR + AA, as go-micro's responses


def test_one_shot_query_and_legacy_reply() -> None:
    query = read_packet(query_packets(["greeter.micro.", "greeter.local."])[0])
    assert query is not None
    assert query.query
    assert query.id != 0
    assert [(q.name, q.type, q.unicast) for q in query.questions] == [
        ("greeter.micro.", PTR, False),
        ("greeter.local.", PTR, False),
    ]
    pub = Publication("greeter", "micro", "n", "vm.", "127.0.0.1", 1, encode_txt(TxtPayload("g")))
    reply = response_packets(pub.records(5), query_id=query.id, questions=query.questions[:1])
    parsed = read_packet(reply[0])
    assert parsed is not None
    assert (parsed.id, parsed.query, parsed.questions) == (query.id, False, query.questions[:1])


@pytest.mark.parametrize(
    "name", ["a" * 64 + ".micro.", "a..micro.", ".micro.", ("abc." * 64) + "micro."]
)
def test_names_dns_cannot_carry_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not a valid DNS name"):
        check_name(name)


def test_go_style_names_are_accepted() -> None:
    check_name(GREETER_INSTANCE)
    check_name("broker-1.topic:go.micro.topic.greeting.micro.")


@given(st.binary(max_size=1500))
def test_random_bytes_never_raise(data: bytes) -> None:
    packet = read_packet(data)
    if packet is not None:
        cache = MdnsCache(DOMAINS)
        cache.ingest(packet.records, 0.0)
        cache.views()
        cache.expire(1e9)


@given(st.lists(st.tuples(st.integers(0, 832), st.integers(0, 255)), min_size=1, max_size=8))
def test_corrupted_go_response_never_raises(edits: list[tuple[int, int]]) -> None:
    data = bytearray(GREETER_RESPONSE)
    for offset, value in edits:
        data[offset] = value
    packet = read_packet(bytes(data))
    cache = MdnsCache(DOMAINS)
    if packet is not None:
        cache.ingest(packet.records, 0.0)
    for view in cache.views().values():
        assert len(view.nodes) == 1
    cache.names()
    cache.next_deadline(lambda _: True)
    cache.due_refresh(100.0, lambda _: True)
