"""go-micro's mDNS TXT payload: hex(zlib(JSON)) cut into 255-character strings (sans-IO).

The JSON is ``{"Service", "Version", "Endpoints", "Metadata"}`` with capitalised top-level
keys and lowercase keys inside endpoints; ``Metadata`` is the node's metadata. The node id,
host and port are not in it: they come from the instance name, the SRV and the A record.
"""

from __future__ import annotations

import binascii
import ipaddress
import zlib
from typing import Any

import msgspec

from micro.errors import RegistryError
from micro.registry import Endpoint, decode_service

__all__ = [
    "NAME_ADDRESS_KEY",
    "TxtPayload",
    "decode_txt",
    "encode_txt",
    "is_name_address",
    "join_strings",
    "split_strings",
]

NAME_ADDRESS_KEY = "micro-address"
"""Metadata key carrying a node address that is a name, not ``host:port`` (a NATS subject or
a RabbitMQ queue of the nats and rabbitmq transports); its SRV record then has port 0."""


def is_name_address(address: str) -> bool:
    """Whether ``address`` is a transport's name rather than ``host:port``: no colon, and
    not an IP address."""
    if not address or ":" in address:
        return False
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return True
    return False


_CHUNK = 255
_MAX_JSON = 1 << 20  # a larger decompressed payload is refused (zip bomb guard)


class TxtPayload(msgspec.Struct, frozen=True):
    """What one node's TXT record says about it."""

    service: str
    version: str = "latest"
    endpoints: tuple[Endpoint, ...] = ()
    metadata: dict[str, str] = {}


class _Wire(msgspec.Struct):
    Service: str
    Version: str
    Endpoints: list[Endpoint] | None
    Metadata: dict[str, str] | None


_encoder = msgspec.json.Encoder()


def payload_json(payload: TxtPayload) -> bytes:
    """The JSON text, key for key as go-micro writes it."""
    wire = _Wire(
        Service=payload.service,
        Version=payload.version,
        Endpoints=list(payload.endpoints) or None,
        Metadata=dict(payload.metadata) or None,
    )
    return _encoder.encode(wire)


def encode_txt(payload: TxtPayload) -> list[bytes]:
    """The TXT strings (each at most 255 bytes) that carry ``payload``."""
    text = zlib.compress(payload_json(payload)).hex().encode()
    return [text[i : i + _CHUNK] for i in range(0, len(text), _CHUNK)]


def decode_txt(strings: list[bytes]) -> TxtPayload | None:
    """The payload carried by ``strings``; ``None`` for an empty TXT (a wildcard entry).

    Raises:
        RegistryError: the strings are not a go-micro payload.
    """
    text = b"".join(strings).strip()
    if not text:
        return None
    try:
        inflater = zlib.decompressobj()
        data = inflater.decompress(binascii.unhexlify(text), _MAX_JSON)
        if inflater.unconsumed_tail:
            raise RegistryError("mdns TXT payload too large", id="go.micro.registry")
        return _from_json(msgspec.json.decode(data))
    except RegistryError:
        raise
    except Exception as exc:  # a parser of network bytes: nothing may escape unmapped
        raise RegistryError(f"malformed mdns TXT: {exc!r}", id="go.micro.registry") from exc


def _from_json(raw: Any) -> TxtPayload:
    """Build a payload from decoded JSON; top-level keys match case-insensitively, as in Go."""
    if not isinstance(raw, dict):
        raise RegistryError("mdns TXT is not a JSON object", id="go.micro.registry")
    fields = {str(k).lower(): v for k, v in raw.items()}
    service = decode_service(
        {
            "name": fields.get("service"),
            "version": fields.get("version", "latest"),
            "endpoints": fields.get("endpoints"),
            "nodes": [{"id": "-", "address": "-", "metadata": fields.get("metadata")}],
        }
    )
    if not service.name:
        raise RegistryError("mdns TXT names no service", id="go.micro.registry")
    return TxtPayload(
        service=service.name,
        version=service.version,
        endpoints=tuple(service.endpoints),
        metadata=service.nodes[0].metadata,
    )


def split_strings(rdata: bytes) -> list[bytes]:
    """TXT RDATA -> its length-prefixed strings (a truncated last string is kept as is)."""
    strings, offset = [], 0
    while offset < len(rdata):
        size = rdata[offset]
        strings.append(rdata[offset + 1 : offset + 1 + size])
        offset += 1 + size
    return strings


def join_strings(strings: list[bytes]) -> bytes:
    """Strings -> TXT RDATA; no strings gives one empty string (RFC 6763 forbids none)."""
    if not strings:
        return b"\x00"
    return b"".join(bytes([len(s)]) + s for s in strings)
