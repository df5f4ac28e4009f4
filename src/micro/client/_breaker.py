"""Circuit breakers: stop calling a node (or a service) that keeps failing, then probe it.

One :class:`Breaker` per key (a node id, or a service name) moves through three states::

    closed --(>= min_calls in the window and failure rate >= threshold)--> open
    open --(open_for seconds)--> half-open
    half-open --(probes successes)--> closed      half-open --(one failure)--> open

While closed every call passes and its outcome is counted in a sliding window of ``window``
seconds (ten buckets, so old outcomes fall out in steps of a tenth). While open nothing
passes: the caller gets :class:`~micro.errors.CircuitOpen` without a request being sent.
Half-open lets ``probes`` calls through at a time; they decide. A failure is what says the
node is unwell, as for the selector's blacklist: a connection error, a timeout (408) or a
5xx answer. A 4xx answer proves the node alive and counts as a success.

Everything is plain state over an injected clock: one event loop touches it, and tests
drive it without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from micro._window import Window
from micro.errors import MicroError

__all__ = ["Breaker", "BreakerPolicy", "Breakers", "is_failure"]

Clock = Callable[[], float]


def is_failure(error: BaseException | None) -> bool:
    """Whether an attempt's outcome counts against the node (the selector's rule)."""
    if error is None:
        return False
    if isinstance(error, MicroError):
        return error.code >= 500 or error.code == 408
    return True


@dataclass(frozen=True)
class BreakerPolicy:
    """How breakers decide.

    Attributes:
        failure_rate: the share of failed calls (0..1) in the window that opens it.
        window: seconds of outcomes the rate is computed over.
        min_calls: calls the window must hold before the rate can open it.
        open_for: seconds it stays open before letting probes through.
        probes: calls let through at a time when half-open; that many successes close it.
        per_service: also keep one breaker per service (over whole calls, retries
            included), which stops every call to a service that fails as a whole; False:
            node breakers only.
    """

    failure_rate: float = 0.5
    window: float = 10.0
    min_calls: int = 20
    open_for: float = 5.0
    probes: int = 3
    per_service: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.failure_rate <= 1.0:
            raise ValueError("failure_rate must be in (0, 1]")
        if self.window <= 0 or self.open_for < 0:
            raise ValueError("window must be > 0 and open_for >= 0")
        if self.min_calls < 1 or self.probes < 1:
            raise ValueError("min_calls and probes must be at least 1")


CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class Breaker:
    """One circuit breaker (see the module docstring for its states)."""

    __slots__ = ("_clock", "_window", "opened", "policy", "probing", "state", "successes", "until")

    def __init__(self, policy: BreakerPolicy, clock: Clock) -> None:
        self.policy = policy
        self._clock = clock
        self._window = Window(policy.window, clock())
        self.state = CLOSED
        self.until = 0.0  # when an open breaker turns half-open
        self.probing = 0  # half-open calls in flight
        self.successes = 0  # half-open successes so far
        self.opened = 0  # times it opened

    def allow(self) -> bool:
        """Whether a call may go now; a True in half-open takes a probe slot."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            if self._clock() < self.until:
                return False
            self.state, self.probing, self.successes = HALF_OPEN, 0, 0
        if self.probing >= self.policy.probes:
            return False
        self.probing += 1
        return True

    def record(self, error: BaseException | None) -> None:
        """The outcome of a call :meth:`allow` let through."""
        failed = is_failure(error)
        if self.state == HALF_OPEN:
            self.probing = max(self.probing - 1, 0)
            if failed:
                self._open()
            else:
                self.successes += 1
                if self.successes >= self.policy.probes:
                    self.state = CLOSED
                    self._window.clear()
            return
        if self.state == OPEN:
            return  # a call let through before it opened: already decided
        window = self._window
        window.add(self._clock(), failed)
        if (
            failed
            and window.calls >= self.policy.min_calls
            and window.failures >= self.policy.failure_rate * window.calls
        ):
            self._open()

    def release(self) -> None:
        """A call :meth:`allow` let through ended without an outcome (cancelled)."""
        if self.state == HALF_OPEN:
            self.probing = max(self.probing - 1, 0)

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when not open)."""
        return max(self.until - self._clock(), 0.0) if self.state == OPEN else 0.0

    def rate(self) -> float:
        window = self._window
        window.roll(self._clock())
        return window.failures / window.calls if window.calls else 0.0

    def _open(self) -> None:
        self.state = OPEN
        self.until = self._clock() + self.policy.open_for
        self.probing = self.successes = 0
        self.opened += 1
        self._window.clear()


class Breakers:
    """The breakers of one client: one per node and one per service, made on first use.

    Args:
        policy: the thresholds every breaker uses.
        clock: the monotonic time source (tests pass a fake one).
        limit: breakers kept per kind; past it, closed ones are forgotten.
    """

    def __init__(
        self, policy: BreakerPolicy, *, clock: Clock = time.monotonic, limit: int = 4096
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.nodes: dict[str, Breaker] = {}
        self.services: dict[str, Breaker] = {}
        self._limit = limit

    def node(self, node_id: str) -> Breaker:
        return self.nodes.get(node_id) or self._make(self.nodes, node_id)

    def service(self, name: str) -> Breaker:
        return self.services.get(name) or self._make(self.services, name)

    def open_count(self) -> int:
        """Breakers open or half-open now, nodes and services together."""
        return sum(b.state != CLOSED for b in (*self.nodes.values(), *self.services.values()))

    def _make(self, table: dict[str, Breaker], key: str) -> Breaker:
        if len(table) >= self._limit:
            for old in [k for k, b in table.items() if b.state == CLOSED]:
                del table[old]
        breaker = table[key] = Breaker(self.policy, self.clock)
        return breaker
