"""Which tools a client may see and call: the allow- and deny-lists, read-only mode and
each token's scopes.

Patterns are shell globs (:func:`fnmatch.fnmatchcase`) over the tool's micro name
``service.Handler.Method`` (not its escaped MCP name), so ``greeter.*`` allows every endpoint
of ``greeter`` and ``*.Debug*`` nothing of its kind. The environment's own tools match by
their bare names (``services``, ``call``...); ``call`` also checks the endpoint it is asked
to call, so the lists cannot be stepped around.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

__all__ = ["Policy", "is_safe", "parse_scopes"]

SAFE_VALUES = frozenset({"true", "1", "yes"})


def is_safe(metadata: Mapping[str, str] | None) -> bool:
    """Whether an endpoint's registry metadata marks it safe (``safe: true``): it only reads."""
    return str((metadata or {}).get("safe", "")).strip().lower() in SAFE_VALUES


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(name, p) for p in patterns)


def parse_scopes(entries: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """``["tok1=greeter.*|services", "*=services"]`` -> ``{"tok1": (...), "*": (...)}``.

    Raises:
        ValueError: an entry has no ``=`` or no pattern (the message names it, not the token).
    """
    scopes: dict[str, tuple[str, ...]] = {}
    for i, entry in enumerate(entries, 1):
        token, sep, globs = entry.partition("=")
        patterns = tuple(p.strip() for p in globs.split("|") if p.strip())
        if not sep or not token.strip() or not patterns:
            raise ValueError(f"--auth-scopes entry {i}: expected TOKEN=GLOB|GLOB")
        scopes[token.strip()] = patterns
    return scopes


@dataclass(frozen=True)
class Policy:
    """The rules; every check is a pure function of a name (and the caller's token).

    Attributes:
        allow: globs of the tools offered (empty: all).
        deny: globs never offered; they beat ``allow``.
        read_only: only endpoints marked safe, and no ``publish``.
        enable_publish: offer ``publish``.
        scopes: token -> globs it may use; ``*`` for tokens not listed (absent: all).
    """

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    read_only: bool = False
    enable_publish: bool = False
    scopes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def offers(self, name: str) -> bool:
        """Whether the lists let ``name`` (``service.Handler.Method`` or a built-in) through."""
        if self.allow and not _matches(name, self.allow):
            return False
        return not _matches(name, self.deny)

    def offers_endpoint(
        self, service: str, endpoint: str, metadata: Mapping[str, str] | None
    ) -> bool:
        """Whether an endpoint may be offered or called at all (lists and read-only mode)."""
        if self.read_only and not is_safe(metadata):
            return False
        return self.offers(f"{service}.{endpoint}")

    def offers_publish(self) -> bool:
        return self.enable_publish and not self.read_only and self.offers("publish")

    def in_scope(self, token: str | None, name: str) -> bool:
        """Whether the caller with ``token`` (None: not over HTTP, or no auth) may use ``name``."""
        if not self.scopes or token is None:
            return True
        patterns = self._patterns(token)
        return patterns is not None and _matches(name, patterns)

    def _patterns(self, token: str) -> tuple[str, ...] | None:
        given = token.encode()
        for known, patterns in self.scopes.items():
            if known != "*" and hmac.compare_digest(given, known.encode()):
                return patterns
        return self.scopes.get("*")
