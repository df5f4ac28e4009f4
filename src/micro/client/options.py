"""Client option helpers: Go-style durations (``"5s"``, ``"1m30s"``) and the Timeout header.

The client's settings themselves (timeout, retries, pool) are in :mod:`micro.settings`.
"""

from __future__ import annotations

from micro.settings import parse_duration

__all__ = ["parse_duration", "timeout_header"]


def timeout_header(seconds: float) -> str:
    """The ``Timeout`` header for ``seconds`` left: nanoseconds, at least 1 (0 means none)."""
    return str(max(int(seconds * 1e9), 1))
