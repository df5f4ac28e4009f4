"""The built-in ``Debug`` handler: ``Debug.Health`` and ``Debug.Stats`` on every server.

Like go-micro's, it is internal: served, but not advertised in the registry. The field
names and integer units match go-micro's ``debug.proto`` so Go tools read them.
"""

from __future__ import annotations

import gc
import os
import resource
import sys
import threading
import time

import msgspec

__all__ = ["Debug", "HealthResponse", "StatsResponse"]


class HealthResponse(msgspec.Struct):
    status: str


class StatsResponse(msgspec.Struct):
    started: int  # unix seconds
    uptime: int  # seconds
    memory: int  # resident set size, bytes
    threads: int
    gc: int  # garbage collections so far, all generations


class Debug:
    """Health and runtime statistics of the serving process."""

    def __init__(self) -> None:
        self.started = time.time()

    async def health(self) -> HealthResponse:
        return HealthResponse(status="ok")

    async def stats(self) -> StatsResponse:
        return StatsResponse(
            started=int(self.started),
            uptime=int(time.time() - self.started),
            memory=rss_bytes(),
            threads=threading.active_count(),
            gc=sum(generation["collections"] for generation in gc.get_stats()),
        )


def rss_bytes() -> int:
    """The process's current resident set size (its peak where the current one is unknown)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
