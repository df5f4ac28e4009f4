"""A bulkhead: at most ``max_in_flight`` calls to one service at a time from this client.

A slow service otherwise collects every task of the caller that waits on it, and the caller
runs out of memory, connections or event-loop time for the services that still answer. Past
the limit a call waits up to ``wait`` seconds for a slot (0: not at all, the default) and
then fails fast with :class:`~micro.errors.BulkheadFull` (503) without a request being sent;
it is not retried, since every node of the service shares the one limit.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass

from micro.errors import BulkheadFull

__all__ = ["Bulkhead", "BulkheadPolicy"]


@dataclass(frozen=True)
class BulkheadPolicy:
    """Attributes:
    max_in_flight: calls to one service in flight at a time.
    wait: seconds a call past the limit waits for a slot (bounded by its deadline too).
    """

    max_in_flight: int = 64
    wait: float = 0.0

    def __post_init__(self) -> None:
        if self.max_in_flight < 1 or self.wait < 0:
            raise ValueError("max_in_flight must be at least 1 and wait >= 0")


class _Slots:
    __slots__ = ("used", "waiters")

    def __init__(self) -> None:
        self.used = 0
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()


class Bulkhead:
    """The per-service limits of one client."""

    def __init__(self, policy: BulkheadPolicy) -> None:
        self.policy = policy
        self.rejected = 0
        self._services: dict[str, _Slots] = {}

    def in_flight(self, service: str) -> int:
        slots = self._services.get(service)
        return slots.used if slots is not None else 0

    async def acquire(self, service: str, deadline: float) -> None:
        """Take a slot for a call to ``service``; wait at most ``wait`` (and to ``deadline``).

        Raises:
            BulkheadFull: no slot came free in time.
        """
        slots = self._services.get(service)
        if slots is None:
            slots = self._services[service] = _Slots()
        if slots.used < self.policy.max_in_flight and not slots.waiters:
            slots.used += 1
            return
        loop = asyncio.get_running_loop()
        wait = min(self.policy.wait, deadline - loop.time())
        if wait > 0:
            waiter: asyncio.Future[None] = loop.create_future()
            slots.waiters.append(waiter)
            try:
                async with asyncio.timeout(wait):
                    await waiter
                return  # release() handed its slot over
            except TimeoutError:
                if waiter.done() and not waiter.cancelled():
                    return  # handed over just as the wait ran out
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self.release(service)  # handed over, but nobody will use it
                raise
            finally:
                if waiter in slots.waiters:
                    slots.waiters.remove(waiter)
        self.rejected += 1
        raise BulkheadFull(
            f"bulkhead full: {slots.used} calls to {service} in flight, limit "
            f"{self.policy.max_in_flight} (waited {max(wait, 0.0):g}s)",
            id="go.micro.client",
        )

    def release(self, service: str) -> None:
        """Give back a slot taken by :meth:`acquire`, handing it to a waiter if any."""
        slots = self._services[service]
        while slots.waiters:
            waiter = slots.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on: ``used`` stays
                return
        slots.used -= 1
        if not slots.used:
            del self._services[service]
