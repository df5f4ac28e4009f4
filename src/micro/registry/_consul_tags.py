"""Sans-IO parts of the Consul registry: go-micro's tag encodings and health-entry decoding.

go-micro stores a node as one Consul agent service: ID = node id, Name = service name,
Address/Port from the node, and the rest in tags:

    v-<hex(zlib(version))>                   the version
    e-<hex(zlib(JSON endpoint))>             one per endpoint
    t-<hex(zlib(JSON {key: value}))>         one per node-metadata key

Older go-micro wrote the same without compression as ``v=<version>``, ``e=<JSON>`` and
``t=<JSON>``; both forms are read. A tag that does not decode is skipped with a warning.
"""

from __future__ import annotations

import binascii
import logging
import zlib
from typing import Any

import msgspec

from micro.registry import Endpoint, Node, Service, _clean, join_host_port, split_host_port

__all__ = ["decode_entry", "decode_tags", "encode_tags", "node_address"]

log = logging.getLogger("micro.registry.consul")

_encoder = msgspec.json.Encoder()


def _pack(data: bytes) -> str:
    return zlib.compress(data).hex()


def _unpack(text: str) -> bytes:
    return zlib.decompress(binascii.unhexlify(text))


def encode_tags(service: Service, node: Node) -> list[str]:
    """The tags go-micro writes for ``node`` of ``service``."""
    tags = [f"t-{_pack(_encoder.encode({k: v}))}" for k, v in sorted(node.metadata.items())]
    tags += [f"e-{_pack(_encoder.encode(e))}" for e in service.endpoints]
    tags.append(f"v-{_pack(service.version.encode())}")
    return tags


def decode_tags(tags: list[str], where: str) -> tuple[str | None, list[Endpoint], dict[str, str]]:
    """(version, endpoints, node metadata) from tags; foreign tags are ignored."""
    version: str | None = None
    endpoints: list[Endpoint] = []
    metadata: dict[str, str] = {}
    for tag in tags:
        if len(tag) < 2 or tag[0] not in "vet" or tag[1] not in "-=":
            continue  # not ours (users may add their own tags)
        try:
            raw = _unpack(tag[2:]) if tag[1] == "-" else tag[2:].encode()
            if tag[0] == "v":
                version = raw.decode()
            elif tag[0] == "e":
                endpoints.append(msgspec.convert(_clean(msgspec.json.decode(raw)), Endpoint))
            else:
                metadata.update(msgspec.json.decode(raw, type=dict[str, str]))
        except (ValueError, zlib.error, msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning(
                "consul registry: skipped an unreadable tag %.40r on %s: %s", tag, where, exc
            )
    return version, endpoints, metadata


def node_address(node: Node) -> tuple[str, int]:
    """Consul's Address and Port for a node (``ValueError`` without a port)."""
    return split_host_port(node.address)


class _HealthService(msgspec.Struct):
    ID: str
    Service: str
    Port: int = 0
    Address: str = ""
    Tags: list[str] | None = None


class _HealthNode(msgspec.Struct, frozen=True):
    Address: str = ""


class _HealthCheck(msgspec.Struct):
    Status: str = ""


class _HealthEntry(msgspec.Struct):
    Service: _HealthService
    Node: _HealthNode = _HealthNode()
    Checks: list[_HealthCheck] | None = None


def decode_entry(entry: Any) -> Service | None:
    """One ``/v1/health/service`` entry as a one-node Service.

    ``None`` for a node with a critical check (go-micro drops those) and for an entry that
    is not a service at all (logged).
    """
    try:
        item = msgspec.convert(entry, _HealthEntry)
    except msgspec.ValidationError as exc:
        log.warning("consul registry: skipped a malformed health entry: %s", exc)
        return None
    if any(c.Status == "critical" for c in item.Checks or ()):
        return None
    svc = item.Service
    version, endpoints, metadata = decode_tags(svc.Tags or [], svc.ID)
    host = svc.Address or item.Node.Address
    address = join_host_port(host, svc.Port) if svc.Port else host
    node = Node(svc.ID, address, metadata)
    return Service(svc.Service, version if version is not None else "", {}, endpoints, [node])
