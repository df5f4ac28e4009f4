"""micro metadata <-> gRPC metadata, and the deadline each way.

gRPC metadata keys are lower case; micro's are Go-canonical (``X-User-Id``). Inbound keys
are canonicalised, so ``micro.metadata.get_value("x-user-id")`` reads the same whichever
protocol carried it; outbound keys are lowered. Keys gRPC reserves (``grpc-*``,
``content-type``, ``te``, ``user-agent``...) and binary ``-bin`` values are not micro
metadata and are never copied.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from micro import metadata as md

__all__ = ["incoming", "outgoing", "timeout_ns"]

_RESERVED = frozenset({"content-type", "te", "user-agent", "host", "authority", "accept"})
_HOP = frozenset(key.lower() for key in md.HOP_HEADERS)


def incoming(pairs: Iterable[Any] | None) -> dict[str, str]:
    """The request headers (canonical names) of a call's invocation metadata."""
    header: dict[str, str] = {}
    for key, value in pairs or ():
        if key.startswith(("grpc-", ":")) or key.endswith("-bin") or key in _RESERVED:
            continue
        header[md.canonical(key)] = value
    return header


def outgoing(header: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """gRPC metadata for a call that carries ``header`` (micro metadata; hop headers left)."""
    if not header:
        return ()
    out = []
    for key, value in header.items():
        low = key.lower()
        if low in _HOP or low in _RESERVED or low.startswith("grpc-") or not value.isascii():
            continue
        out.append((low, value))
    return tuple(out)


def timeout_ns(seconds: float | None) -> str | None:
    """micro's ``Timeout`` header (nanoseconds) for a gRPC deadline ``seconds`` away."""
    if seconds is None:
        return None
    return str(max(int(seconds * 1e9), 1))
