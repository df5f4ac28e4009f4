"""Client settings from the environment, and Go-style durations (``"5s"``, ``"1m30s"``)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

__all__ = ["ClientSettings", "parse_duration", "timeout_header"]

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,  # micro sign
    "\u03bcs": 1e-6,  # greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+\.?\d*|\.\d+)([a-z\u00b5\u03bc]+)")


def parse_duration(value: str | float | int) -> float:
    """Seconds from a number or a Go duration: ``2``, ``"2.5"``, ``"500ms"``, ``"1m30s"``.

    Raises:
        ValueError: the text is neither a number nor a Go duration.
    """
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    sign = -1.0 if text.startswith("-") else 1.0
    rest = text.lstrip("+-")
    total, pos = 0.0, 0
    while pos < len(rest):
        match = _PART.match(rest, pos)
        if match is None or match.group(2) not in _UNITS:
            raise ValueError(f"invalid duration {value!r} (use seconds or e.g. 500ms, 5s, 1m)")
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not rest:
        raise ValueError(f"invalid duration {value!r} (use seconds or e.g. 500ms, 5s, 1m)")
    return sign * total


def timeout_header(seconds: float) -> str:
    """The ``Timeout`` header for ``seconds`` left: nanoseconds, at least 1 (0 means none)."""
    return str(max(int(seconds * 1e9), 1))


class ClientSettings:
    """The client defaults, read from ``MICRO_CLIENT_*`` and ``MICRO_CONTENT_TYPE``.

    ==============================  =================  =========================
    env var                         attribute          default
    ==============================  =================  =========================
    MICRO_CLIENT_REQUEST_TIMEOUT    timeout            5 s (seconds or "5s")
    MICRO_CLIENT_RETRIES            retries            1 (up to 2 attempts)
    MICRO_CLIENT_POOL_SIZE          pool_size          100 idle connections
    MICRO_CLIENT_POOL_TTL           pool_ttl           60 s
    MICRO_CLIENT_DIAL_TIMEOUT       dial_timeout       5 s
    MICRO_CONTENT_TYPE              content_type       application/json
    ==============================  =================  =========================
    """

    __slots__ = ("content_type", "dial_timeout", "pool_size", "pool_ttl", "retries", "timeout")

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.timeout = _duration(env, "MICRO_CLIENT_REQUEST_TIMEOUT", 5.0)
        self.retries = _count(env, "MICRO_CLIENT_RETRIES", 1)
        self.pool_size = _count(env, "MICRO_CLIENT_POOL_SIZE", 100)
        self.pool_ttl = _duration(env, "MICRO_CLIENT_POOL_TTL", 60.0)
        self.dial_timeout = _duration(env, "MICRO_CLIENT_DIAL_TIMEOUT", 5.0)
        self.content_type = env.get("MICRO_CONTENT_TYPE", "").strip() or "application/json"


def _duration(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        seconds = parse_duration(raw)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    if seconds < 0:
        raise ValueError(f"{name}: duration {raw!r} is negative")
    return seconds


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}: expected a whole number, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name}: expected a number >= 0, got {raw!r}")
    return value
