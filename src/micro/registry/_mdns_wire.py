"""go-micro's mDNS record layout, and DNS packets in and out (sans-IO).

python-zeroconf is the DNS codec here (``DNSIncoming`` parses, ``DNSOutgoing`` writes); its
service browser cannot be used because go-micro's names are not DNS-SD ``_x._tcp`` names.

Layout, per node of service ``S`` in domain ``D`` (``micro``; ``local`` before go-micro 1.10):

    S.D.                         PTR  -> <node id>.S.D.
    <node id>.S.D.               SRV  port, target <hostname>.
    <hostname>.                  A    the node's IPv4 (AAAA for IPv6)
    <node id>.S.D.               TXT  hex(zlib(JSON))

and, per service name, a wildcard entry that lets ``list_services`` enumerate names:

    _services.D.                 PTR  -> S._services.D.
    S._services.D.               SRV  port 9999, target S._services.D.   TXT empty
    S._services.D.               A    0.0.0.0

Each instance (a node, or a service's wildcard entry) travels in a packet of its own: go-micro
runs one responder per service, and its client takes one entry from each packet it receives
(the instance the packet's last record leads to), so a packet carrying two instances shows Go
only one of them.
"""

from __future__ import annotations

import ipaddress
import random
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

from zeroconf._dns import DNSAddress, DNSPointer, DNSQuestion, DNSService, DNSText
from zeroconf._dns import DNSRecord as _ZRecord
from zeroconf._protocol.incoming import DNSIncoming
from zeroconf._protocol.outgoing import DNSOutgoing
from zeroconf.const import (
    _CLASS_IN,
    _FLAGS_AA,
    _FLAGS_QR_QUERY,
    _FLAGS_QR_RESPONSE,
    _TYPE_A,
    _TYPE_AAAA,
    _TYPE_ANY,
    _TYPE_PTR,
    _TYPE_SRV,
    _TYPE_TXT,
)

from micro.registry._mdns_txt import join_strings, split_strings

__all__ = [
    "ANY",
    "PTR",
    "SRV",
    "TXT",
    "A",
    "Addr",
    "Packet",
    "Ptr",
    "Publication",
    "Question",
    "Record",
    "Srv",
    "Txt",
    "answers",
    "check_name",
    "instance_packets",
    "is_dns_name",
    "is_ip",
    "local_hostname",
    "query_packets",
    "read_packet",
    "response_packets",
]

A, PTR, TXT, SRV, ANY, AAAA = _TYPE_A, _TYPE_PTR, _TYPE_TXT, _TYPE_SRV, _TYPE_ANY, _TYPE_AAAA
WILDCARD_PORT = 9999


@dataclass(frozen=True, slots=True)
class Question:
    name: str
    type: int
    unicast: bool = False


@dataclass(frozen=True, slots=True)
class Ptr:
    name: str
    ttl: int
    alias: str


@dataclass(frozen=True, slots=True)
class Srv:
    name: str
    ttl: int
    port: int
    target: str


@dataclass(frozen=True, slots=True)
class Txt:
    name: str
    ttl: int
    strings: list[bytes] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Addr:
    name: str
    ttl: int
    address: str


Record = Ptr | Srv | Txt | Addr


@dataclass(frozen=True, slots=True)
class Packet:
    """One parsed DNS message: only the parts the registry uses."""

    id: int
    query: bool
    questions: list[Question]
    records: list[Record]


def check_name(name: str) -> None:
    """Raise ValueError unless ``name`` can be written as a DNS name."""
    labels = name.rstrip(".").split(".")
    if len(name.encode()) > 253 or any(not 0 < len(label.encode()) < 64 for label in labels):
        raise ValueError(f"{name!r} is not a valid DNS name (labels of 1-63 bytes, 253 in all)")


def is_dns_name(name: str) -> bool:
    try:
        check_name(name)
    except ValueError:
        return False
    return True


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def local_hostname() -> str:
    """This host's name for SRV targets, as go-micro uses the OS hostname."""
    name = socket.gethostname().rstrip(".") or "localhost"
    return name if is_dns_name(name + ".") else "localhost"


@dataclass(frozen=True, slots=True)
class Publication:
    """One node as this process publishes it."""

    service: str
    domain: str
    node_id: str
    target: str  # SRV target, ends with "."
    address: str | None  # IP for the A/AAAA record; None when the host is a name
    port: int
    txt: list[bytes]

    @property
    def instance(self) -> str:
        return f"{self.node_id}.{self.service}.{self.domain}."

    @property
    def service_type(self) -> str:
        return f"{self.service}.{self.domain}."

    def records(self, ttl: int) -> list[_ZRecord]:
        """PTR, SRV, the address record and TXT, at ``ttl`` (0 is a goodbye).

        go-micro's order: the address follows the SRV, so when a large TXT makes the codec
        split the group (it keeps packets to 1460 bytes but lets one long record go alone)
        the SRV and its address still travel in one packet, and a receiver pairs them.
        """
        out: list[_ZRecord] = [
            DNSPointer(self.service_type, PTR, _CLASS_IN, ttl, self.instance),
            DNSService(self.instance, SRV, _CLASS_IN, ttl, 10, 1, self.port, self.target),
        ]
        if self.address is not None:
            out.append(_address_record(self.target, self.address, ttl))
        out.append(DNSText(self.instance, TXT, _CLASS_IN, ttl, join_strings(self.txt)))
        return out


def wildcard_records(service: str, domain: str, ttl: int) -> list[_ZRecord]:
    """The ``_services`` entry that makes ``service`` listable (go-micro's layout)."""
    kind = f"_services.{domain}."
    instance = f"{service}.{kind}"
    return [
        DNSPointer(kind, PTR, _CLASS_IN, ttl, instance),
        DNSService(instance, SRV, _CLASS_IN, ttl, 10, 1, WILDCARD_PORT, instance),
        DNSText(instance, TXT, _CLASS_IN, ttl, join_strings([])),
        _address_record(instance, "0.0.0.0", ttl),
    ]


def _address_record(name: str, address: str, ttl: int) -> DNSAddress:
    ip = ipaddress.ip_address(address)
    kind = A if ip.version == 4 else AAAA
    return DNSAddress(name, kind, _CLASS_IN, ttl, ip.packed)


def response_packets(
    records: list[_ZRecord], *, query_id: int | None = None, questions: Sequence[Question] = ()
) -> list[bytes]:
    """An authoritative response; ``query_id`` makes it a legacy unicast reply (RFC 6762 6.7)."""
    legacy = query_id is not None
    out = DNSOutgoing(_FLAGS_QR_RESPONSE | _FLAGS_AA, multicast=not legacy, id_=query_id or 0)
    for q in questions if legacy else ():
        out.add_question(DNSQuestion(q.name, q.type, _CLASS_IN))
    for record in records:
        out.add_answer_at_time(record, 0)
    return out.packets()


def instance_packets(
    groups: Sequence[Sequence[_ZRecord]],
    *,
    query_id: int | None = None,
    questions: Sequence[Question] = (),
) -> list[bytes]:
    """One response per group of records (one instance each), as go-micro's responders send."""
    out: list[bytes] = []
    for group in groups:
        out += response_packets(list(group), query_id=query_id, questions=questions)
    return out


def answers(question: Question, pub: Publication, ttl: int) -> list[list[_ZRecord]]:
    """The record groups of ``pub`` (its node, its wildcard entry) that answer ``question``."""
    name, qtype = question.name.lower(), question.type
    node, wildcard = pub.records(ttl), wildcard_records(pub.service, pub.domain, ttl)
    out = []
    if qtype in (PTR, ANY) and name == pub.service_type.lower():
        out.append(node)
    elif qtype in (SRV, TXT, ANY) and name == pub.instance.lower():
        out.append(node[1:])
    elif qtype in (A, ANY) and name == pub.target.lower() and pub.address is not None:
        out.append(node[2:3])
    if qtype in (PTR, ANY) and name == wildcard[0].name.lower():
        out.append(wildcard)
    elif qtype in (SRV, TXT, ANY) and name == wildcard[1].name.lower():
        out.append(wildcard[1:])
    return out


def query_packets(names: list[str], qtype: int = PTR) -> list[bytes]:
    """A one-shot query (non-zero id, no QU bit) for ``names``."""
    out = DNSOutgoing(_FLAGS_QR_QUERY, multicast=False, id_=random.randint(1, 0xFFFF))
    for name in names:
        out.add_question(DNSQuestion(name, qtype, _CLASS_IN))
    return out.packets()


def read_packet(data: bytes) -> Packet | None:
    """Parse ``data``; ``None`` when it is not a DNS message. Never raises."""
    try:
        msg = DNSIncoming(data)
        if not msg.valid:
            return None
        questions = [Question(q.name, q.type, q.unique) for q in msg.questions]
        records = [r for z in msg.answers() if (r := _convert(z)) is not None]
        return Packet(msg.id, msg.is_query(), questions, records)
    except Exception:  # a parser of network bytes: malformed input is dropped, never raised
        return None


def _convert(record: _ZRecord) -> Record | None:
    """zeroconf record -> ours; other record types are ignored."""
    if isinstance(record, DNSPointer):
        return Ptr(record.name, record.ttl, record.alias)
    if isinstance(record, DNSService):
        return Srv(record.name, record.ttl, record.port, record.server)
    if isinstance(record, DNSText):
        return Txt(record.name, record.ttl, split_strings(record.text))
    if isinstance(record, DNSAddress) and len(record.address) in (4, 16):
        return Addr(record.name, record.ttl, str(ipaddress.ip_address(record.address)))
    return None
