"""A retry budget: retries are at most a share of the calls, so they cannot multiply an outage.

Without one, a client with ``retries=3`` sends four requests for every call while a service
is down: the retries quadruple the load on whatever is left. The budget counts first
attempts and retries over a sliding ``window``; a retry goes only while::

    retries in the window < ratio * calls in the window + min_retries

``min_retries`` is the small floor that lets a client making few calls still retry. A retry
the budget denies is not made: the call raises the error of its last attempt, and the denial
is counted (``retries_denied``). Defaults: 20 % of calls, floor 10, window 10 s.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from micro._window import Window

__all__ = ["RetryBudget", "RetryBudgetPolicy"]


@dataclass(frozen=True)
class RetryBudgetPolicy:
    """Attributes:
    ratio: retries allowed per call made, over the window (0.2: one retry per 5 calls).
    min_retries: retries always allowed per window, whatever the calls.
    window: seconds the calls and retries are counted over.
    """

    ratio: float = 0.2
    min_retries: int = 10
    window: float = 10.0

    def __post_init__(self) -> None:
        if self.ratio < 0 or self.min_retries < 0 or self.window <= 0:
            raise ValueError("ratio and min_retries must be >= 0 and window > 0")


class RetryBudget:
    """One client's retry budget (all services together: an outage is the client's load)."""

    __slots__ = ("_calls", "_clock", "_retries", "denied", "policy")

    def __init__(self, policy: RetryBudgetPolicy, clock: Callable[[], float] = time.monotonic):
        self.policy = policy
        self._clock = clock
        now = clock()
        self._calls = Window(policy.window, now)
        self._retries = Window(policy.window, now)
        self.denied = 0

    def call(self) -> None:
        """A call's first attempt is made."""
        self._calls.add(self._clock(), False)

    def retry(self) -> bool:
        """Whether a retry may go now; when it may, it is counted as spent."""
        now = self._clock()
        self._calls.roll(now)
        self._retries.roll(now)
        allowed = self.policy.ratio * self._calls.calls + self.policy.min_retries
        if self._retries.calls + 1 > allowed:
            self.denied += 1
            return False
        self._retries.add(now, False)
        return True
