"""A sliding window of call and failure counts, shared by breakers, budgets and ejection.

Ten buckets of a tenth of the window each: adding and reading are O(1), and outcomes leave
the window in steps of a tenth of it. Time comes from the caller (an injected clock).
"""

from __future__ import annotations

__all__ = ["Window"]


class Window:
    """Counts of calls and failures over the last ``seconds``, in ten buckets."""

    __slots__ = ("_calls", "_failures", "_slot", "_span", "calls", "failures")

    BUCKETS = 10

    def __init__(self, seconds: float, now: float) -> None:
        self._span = seconds / self.BUCKETS
        self._calls = [0] * self.BUCKETS
        self._failures = [0] * self.BUCKETS
        self._slot = int(now / self._span) if self._span > 0 else 0
        self.calls = 0
        self.failures = 0

    def add(self, now: float, failed: bool, calls: int = 1) -> None:
        self.roll(now)
        i = self._slot % self.BUCKETS
        self._calls[i] += calls
        self.calls += calls
        if failed:
            self._failures[i] += 1
            self.failures += 1

    def roll(self, now: float) -> None:
        """Drop the buckets older than the window."""
        slot = int(now / self._span) if self._span > 0 else 0
        if slot <= self._slot:
            return
        for s in range(self._slot + 1, min(slot, self._slot + self.BUCKETS) + 1):
            i = s % self.BUCKETS
            self.calls -= self._calls[i]
            self.failures -= self._failures[i]
            self._calls[i] = self._failures[i] = 0
        self._slot = slot

    def clear(self) -> None:
        self._calls = [0] * self.BUCKETS
        self._failures = [0] * self.BUCKETS
        self.calls = self.failures = 0
