"""Sans-IO parts of the NATS registry: subject names and the JSON carried on them.

Subjects, under a prefix (default ``micro.registry``):

    <prefix>.query.<name>    a lookup of one service; every instance holding nodes of that
                             service answers on the reply inbox
    <prefix>.list            a lookup of every service; every instance holding nodes answers
    <prefix>.events.<name>   announcements: every register (also each heartbeat) and
                             deregister of a node; watchers subscribe here (``.>`` for all)

``<name>`` is the service name made subject-safe by :func:`token` (dots kept, so
``go.micro.srv.greeter`` is four subject tokens). The mapping need not be one-to-one: bodies
carry the real name and receivers filter on it.

Bodies are JSON. An answer is a list of announcements; an event is one announcement::

    {"action": "create"|"update"|"delete"|"refresh", "service": <go-micro Service JSON
     holding one node>, "ttl": <seconds left, or null for no expiry>}
"""

from __future__ import annotations

import logging
import re
from typing import Literal

import msgspec

from micro.errors import RegistryError
from micro.registry import Service, decode_service

__all__ = [
    "Announcement",
    "decode_answer",
    "decode_event",
    "encode_answer",
    "encode_event",
    "event_subject",
    "list_subject",
    "query_subject",
    "token",
    "validate_prefix",
]

log = logging.getLogger("micro.registry.nats")

Action = Literal["create", "update", "delete", "refresh"]

_SAFE = re.compile(r"[^A-Za-z0-9_\-]")
_PREFIX = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")


class Announcement(msgspec.Struct):
    """One node of one service, with what happened to it and how long it lives."""

    action: Action
    service: Service
    ttl: float | None = None


class _RawAnnouncement(msgspec.Struct):
    action: Action = "refresh"
    service: msgspec.Raw = msgspec.Raw(b"null")
    ttl: float | None = None


_encoder = msgspec.json.Encoder()


def token(name: str) -> str:
    """``name`` as subject tokens: ``.`` separates tokens, anything else unsafe is escaped."""
    parts = name.split(".")
    return ".".join(_SAFE.sub(lambda m: f"%{ord(m.group()):X}", p) or "%" for p in parts)


def validate_prefix(prefix: str) -> str:
    """Check a subject prefix (dot-separated tokens of letters, digits, ``_`` and ``-``).

    Raises:
        ValueError: the prefix is empty or holds spaces, wildcards or empty tokens.
    """
    if not _PREFIX.match(prefix):
        raise ValueError(f"invalid NATS registry prefix {prefix!r}: use tokens like a.b-c")
    return prefix


def query_subject(prefix: str, name: str) -> str:
    return f"{prefix}.query.{token(name)}"


def list_subject(prefix: str) -> str:
    return f"{prefix}.list"


def event_subject(prefix: str, name: str | None) -> str:
    """The events subject of one service, or the wildcard of all (``None``)."""
    return f"{prefix}.events.{token(name) if name is not None else '>'}"


def encode_event(announcement: Announcement) -> bytes:
    return _encoder.encode(announcement)


def encode_answer(announcements: list[Announcement]) -> bytes:
    return _encoder.encode(announcements)


def decode_event(data: bytes, source: str) -> Announcement | None:
    """Parse one event; a corrupt or foreign one is logged and gives ``None``."""
    try:
        raw = msgspec.json.decode(data, type=_RawAnnouncement)
        return _convert(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, RegistryError) as exc:
        log.warning("nats registry: skipped a malformed message on %s: %s", source, exc)
        return None


def decode_answer(data: bytes, source: str) -> list[Announcement]:
    """Parse one answer; corrupt entries are logged and skipped, the rest kept."""
    try:
        raws = msgspec.json.decode(data, type=list[msgspec.Raw])
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        log.warning("nats registry: skipped a malformed answer on %s: %s", source, exc)
        return []
    found = []
    for item in raws:
        one = decode_event(bytes(item), source)
        if one is not None:
            found.append(one)
    return found


def _convert(raw: _RawAnnouncement) -> Announcement:
    service = decode_service(bytes(raw.service))
    if len(service.nodes) != 1:
        raise RegistryError(f"expected one node, got {len(service.nodes)}")
    if raw.ttl is not None and raw.ttl < 0:
        raise RegistryError(f"negative ttl {raw.ttl}")
    return Announcement(raw.action, service, raw.ttl)
