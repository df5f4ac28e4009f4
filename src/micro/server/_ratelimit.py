"""A per-client rate limit: a token bucket for each caller; an empty bucket answers 429.

Each caller gets ``rate`` calls per second with bursts of up to ``burst`` calls (default:
one second's worth). The caller is named by a metadata key when one is configured (for
example an API key a gateway forwards, or ``Micro-From-Service``), else by the host of its
remote address. A call arriving to an empty bucket is refused with
:class:`~micro.errors.TooManyRequests` (429) saying when a token comes back; the handler
never runs. Buckets of callers not seen for a while are forgotten once there are many.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from micro.errors import TooManyRequests
from micro.metadata import canonical

__all__ = ["RateLimiter"]

_MAX_BUCKETS = 10_000


class _Bucket:
    __slots__ = ("at", "tokens")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens = tokens
        self.at = at


class RateLimiter:
    """Token buckets keyed by caller.

    Args:
        rate: tokens (calls) added per second.
        burst: the bucket's size (0: ``rate``, at least 1).
        key: the metadata key naming the caller (None: the remote host).
        service: the error id.
        clock: the monotonic time source (tests pass a fake one).
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: int = 0,
        key: str | None = None,
        service: str = "go.micro.server",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = rate
        self.burst = float(burst or max(rate, 1.0))
        self.key = canonical(key) if key else None
        self._lower = self.key.lower() if self.key else ""
        self.service = service
        self.limited = 0
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def caller(self, remote: str, header: Mapping[str, str]) -> str:
        """Who is calling: the metadata key's value, else the remote host."""
        if self.key is not None:
            value = header.get(self.key) or next(
                (v for k, v in header.items() if k.lower() == self._lower), None
            )
            if value:
                return f"{self.key}={value}"
        host = remote.rsplit(":", 1)[0] if remote.count(":") == 1 or "]" in remote else remote
        return host.strip("[]") or "unknown"

    def check(self, remote: str, header: Mapping[str, str]) -> TooManyRequests | None:
        """Take a token for this call; the error refuses it."""
        who = self.caller(remote, header)
        now = self._clock()
        bucket = self._buckets.get(who)
        if bucket is None:
            if len(self._buckets) >= _MAX_BUCKETS:
                self._forget(now)
            bucket = self._buckets[who] = _Bucket(self.burst, now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        self.limited += 1
        wait = (1.0 - bucket.tokens) / self.rate
        return TooManyRequests(
            f"rate limit: {who} is over {self.rate:g} calls/s (burst {self.burst:g}) on "
            f"{self.service}; next call allowed in {wait:.3f}s",
            id=self.service,
        )

    def _forget(self, now: float) -> None:
        """Drop the buckets that have refilled (their callers went quiet)."""
        full = now - self.burst / self.rate
        for who in [w for w, b in self._buckets.items() if b.at <= full]:
            del self._buckets[who]
        if len(self._buckets) >= _MAX_BUCKETS:
            self._buckets.clear()
