"""The built-in ``Debug`` handler: ``Debug.Health`` and ``Debug.Stats`` on every server.

Like go-micro's, it is internal: served, but not advertised in the registry. The field
names and integer units match go-micro's ``debug.proto`` so Go tools read them; the request
counts (``requests``, ``errors``, as go-micro v2 names them, and ``in_flight``) come after
go-micro v1's fields, which peers that do not know them ignore. The resilience counts
(``docs/resilience.md``) come last: calls the server refused (``shed``, ``rate_limited``)
and, for a service, what its client refused or saved (``breakers_open`` now, and the totals
``breaker_rejected``, ``bulkhead_rejected``, ``retries_denied``, ``hedges``) and the nodes its
selector skips now (``ejected``); :meth:`Debug.resilience` returns them as a dict. The
latency percentiles (microseconds) come after them, from the handling-time histogram the
metrics wrapper keeps (see ``micro.observability``); they stay 0 while metrics are off.
"""

from __future__ import annotations

import gc
import os
import resource
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Protocol

import msgspec

__all__ = [
    "RESILIENCE_FIELDS",
    "Counts",
    "Debug",
    "HealthResponse",
    "Latency",
    "Source",
    "StatsResponse",
]


class Counts(Protocol):
    """Where the request counts come from (the server's router)."""

    @property
    def requests(self) -> int: ...
    @property
    def errors(self) -> int: ...
    @property
    def active(self) -> int: ...


class Latency(Protocol):
    """Where the latency percentiles come from (the metrics wrapper's histogram)."""

    def percentile(self, q: float) -> float: ...


class HealthResponse(msgspec.Struct):
    status: str


class StatsResponse(msgspec.Struct):
    started: int  # unix seconds
    uptime: int  # seconds
    memory: int  # resident set size, bytes
    threads: int
    gc: int  # garbage collections so far, all generations
    requests: int = 0  # requests handled or being handled (streams too; Debug.* left out)
    errors: int = 0  # of those, answered with an error
    in_flight: int = 0  # of those, being handled now
    shed: int = 0  # calls refused by load shedding (503)
    rate_limited: int = 0  # calls refused by the per-client rate limit (429)
    breakers_open: int = 0  # this process's client: breakers open or half-open now
    breaker_rejected: int = 0  # calls its breakers refused
    bulkhead_rejected: int = 0  # calls its bulkhead refused
    retries_denied: int = 0  # retries its retry budget refused
    hedges: int = 0  # hedged second attempts it sent
    ejected: int = 0  # nodes its selector skips for failures now
    latency_p50_us: int = 0  # handling time percentiles, microseconds (metrics on; else 0)
    latency_p95_us: int = 0
    latency_p99_us: int = 0


RESILIENCE_FIELDS = (
    "shed",
    "rate_limited",
    "breakers_open",
    "breaker_rejected",
    "bulkhead_rejected",
    "retries_denied",
    "hedges",
    "ejected",
)
"""The resilience counts of :class:`StatsResponse`, in order."""

Source = Callable[[], Mapping[str, int]]
"""Returns some of the :data:`RESILIENCE_FIELDS` by name (missing ones are 0)."""


class Debug:
    """Health and runtime statistics of the serving process."""

    def __init__(self, counts: Counts | None = None, *sources: Source) -> None:
        self.started = time.time()
        self._counts = counts
        self.sources: list[Source] = list(sources)
        """Where the resilience counts come from (the server's; a service adds its client's)."""
        self.latency: Latency | None = None  # set when metrics are on

    def resilience(self) -> dict[str, int]:
        """The resilience counts now, every field of :data:`RESILIENCE_FIELDS` (for metrics)."""
        out = dict.fromkeys(RESILIENCE_FIELDS, 0)
        for source in self.sources:
            for name, value in source().items():
                if name in out:
                    out[name] += value
        return out

    async def health(self) -> HealthResponse:
        return HealthResponse(status="ok")

    async def stats(self) -> StatsResponse:
        counts = self._counts
        return StatsResponse(
            started=int(self.started),
            uptime=int(time.time() - self.started),
            memory=rss_bytes(),
            threads=threading.active_count(),
            gc=sum(generation["collections"] for generation in gc.get_stats()),
            requests=counts.requests if counts is not None else 0,
            errors=counts.errors if counts is not None else 0,
            in_flight=counts.active if counts is not None else 0,
            **self.resilience(),
            **self._percentiles(),
        )

    def _percentiles(self) -> dict[str, int]:
        latency = self.latency
        if latency is None:
            return {}
        return {f"latency_p{q}_us": round(latency.percentile(q / 100) * 1e6) for q in (50, 95, 99)}


def rss_bytes() -> int:
    """The process's current resident set size (its peak where the current one is unknown)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
