"""Per-request metadata, carried in a context variable and sent as headers.

A server puts the inbound request's metadata in the context before it calls the handler, so
the handler reads it with :func:`get`, and any call the handler makes carries it onward.
Keys are canonicalised the way Go canonicalises HTTP header names (``x-user-id`` becomes
``X-User-Id``), so a key reads the same whichever side wrote it.

    with metadata.context({"X-User-Id": "42"}):
        await client.call(...)          # the call sends X-User-Id: 42
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType

__all__ = ["canonical", "context", "get", "get_value", "outgoing"]

_EMPTY: Mapping[str, str] = MappingProxyType({})
_current: ContextVar[Mapping[str, str]] = ContextVar("micro_metadata", default=_EMPTY)
_canonical_cache: dict[str, str] = {}

# Headers that describe one hop of the transport, not the request: never propagated.
HOP_HEADERS = frozenset(
    {
        "Accept",
        "Accept-Encoding",
        "Connection",
        "Content-Length",
        "Content-Type",
        "Host",
        "Keep-Alive",
        "Timeout",
        "Transfer-Encoding",
        "User-Agent",
        "Micro-Id",
        "Micro-Service",
        "Micro-Method",
        "Micro-Endpoint",
        "Micro-Error",
        "Micro-Stream",
        "Micro-Topic",
        "Micro-Protocol",
        "X-Micro-Id",
        "X-Micro-Service",
        "X-Micro-Method",
        "X-Micro-Endpoint",
        "X-Micro-Error",
        "X-Micro-Stream",
        "X-Micro-Topic",
    }
)


def canonical(key: str) -> str:
    """Go's canonical header form: ``micro-from-service`` -> ``Micro-From-Service``."""
    found = _canonical_cache.get(key)
    if found is None:
        found = "-".join(part[:1].upper() + part[1:].lower() for part in key.split("-"))
        # keys can come from HTTP clients (the gateway): keep only short ones, so the cache
        # stays under 4096 x 64 characters whatever they send
        if len(_canonical_cache) < 4096 and len(key) <= 64:
            _canonical_cache[key] = found
    return found


def get() -> Mapping[str, str]:
    """The metadata of the current request (read-only; empty outside a request)."""
    return _current.get()


def get_value(key: str, default: str | None = None) -> str | None:
    """One metadata value by (case-insensitive) key."""
    return _current.get().get(canonical(key), default)


@contextmanager
def context(md: Mapping[str, str], *, merge: bool = True) -> Iterator[Mapping[str, str]]:
    """Run a block with ``md`` as the request metadata (merged over the current by default)."""
    fresh = {canonical(k): v for k, v in md.items()}
    base = dict(_current.get()) if merge else {}
    base.update(fresh)
    token = _current.set(MappingProxyType(base))
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def set_incoming(headers: Mapping[str, str]) -> None:
    """Make ``headers`` (already canonical) the metadata of the running task.

    Servers call this inside the task that runs one handler, so the context change stays
    in that task.
    """
    _current.set(MappingProxyType({k: v for k, v in headers.items() if k not in HOP_HEADERS}))


def outgoing(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The headers a call made now should carry: the current metadata plus ``extra``."""
    out = dict(_current.get())
    if extra:
        for k, v in extra.items():
            out[canonical(k)] = v
    return out
