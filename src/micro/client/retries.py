"""When a failed attempt is tried again, and how long the client waits first.

go-micro v1 retries errors whose code is 408 or 500 and waits 10^n ms before retry ``n``
(10 ms, 100 ms, 1 s, ...). micro keeps that schedule and adds jitter, so that clients failing
together do not retry in lock step:

    retry n (n >= 1) waits  min(cap, base * factor**(n-1)) * U[1 - jitter, 1 + jitter)
    defaults: base 10 ms, factor 10, cap 5 s, jitter 0.5
    -> retry 1: 5-15 ms, retry 2: 50-150 ms, retry 3: 0.5-1.5 s, retry 4: 2.5-5 s (capped)

The wait never outlives the call: the call's deadline covers attempts and waits alike.

Which errors are retried by default (:func:`retry_on_error`): connection failures
(:class:`~micro.errors.ConnectError`, :class:`~micro.errors.ConnectionClosed`) and answers
with code 408 or 500. Like go-micro, this retries a 500 from a handler that is not
idempotent: its side effects may happen twice. Turn retries off per call (``retries=0``) or
per client (``RpcClient(retries=0)``), or pass ``retry_on=retry_on_connect_error`` to retry
only when the request never reached a server. ``retry_on=retry_on_refusal`` also retries a
server's 503 (it shed the call or is shutting down: nothing ran, so another node may take
it), but never the client's own :class:`~micro.errors.CircuitOpen` or
:class:`~micro.errors.BulkheadFull` (see ``docs/resilience.md``).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from micro.errors import (
    BulkheadFull,
    CircuitOpen,
    ConnectError,
    ConnectionClosed,
    MicroError,
    ServiceUnavailable,
)

__all__ = [
    "ExponentialBackoff",
    "exponential_backoff",
    "retry_always",
    "retry_never",
    "retry_on_connect_error",
    "retry_on_error",
    "retry_on_refusal",
]

RETRY_CODES = frozenset({408, 500})


def retry_on_error(error: BaseException) -> bool:
    """go-micro's ``RetryOnError``: connection failures and codes 408 and 500."""
    if isinstance(error, ConnectError):
        return True
    return isinstance(error, MicroError) and error.code in RETRY_CODES


def retry_on_refusal(error: BaseException) -> bool:
    """:func:`retry_on_error`, and a server's 503 (shed or shutting down: nothing ran)."""
    if isinstance(error, CircuitOpen | BulkheadFull):
        return False
    return retry_on_error(error) or isinstance(error, ServiceUnavailable)


def retry_on_connect_error(error: BaseException) -> bool:
    """Only failures to connect, where the request was never sent (safe for any handler)."""
    return isinstance(error, ConnectError) and not isinstance(error, ConnectionClosed)


def retry_always(error: BaseException) -> bool:
    """Every :class:`~micro.errors.MicroError` (go-micro's ``RetryAlways``)."""
    return isinstance(error, MicroError)


def retry_never(error: BaseException) -> bool:
    return False


class ExponentialBackoff:
    """``min(cap, base * factor**(n-1))`` seconds before retry ``n``, times a random factor
    in ``[1 - jitter, 1 + jitter)`` (capped again). Attempt 0 never waits."""

    __slots__ = ("base", "cap", "factor", "jitter", "random")

    def __init__(
        self,
        *,
        base: float = 0.01,
        factor: float = 10.0,
        cap: float = 5.0,
        jitter: float = 0.5,
        random: Callable[[], float] = random.random,
    ) -> None:
        self.base = base
        self.factor = factor
        self.cap = cap
        self.jitter = jitter
        self.random = random

    def __call__(self, attempt: int) -> float:
        if attempt <= 0:
            return 0.0
        delay = min(self.cap, self.base * self.factor ** min(attempt - 1, 64))
        spread = 1.0 - self.jitter + 2.0 * self.jitter * self.random()
        return min(self.cap, delay * spread)

    def __repr__(self) -> str:
        return (
            f"ExponentialBackoff(base={self.base}, factor={self.factor}, cap={self.cap}, "
            f"jitter={self.jitter})"
        )


exponential_backoff = ExponentialBackoff()
"""The default backoff: 10 ms, 100 ms, 1 s, ... each +-50 %, at most 5 s."""
