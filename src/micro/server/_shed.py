"""Load shedding: past ``max_in_flight`` calls at once, answer 503 at once instead of queueing.

A server that accepts every call when it is over capacity makes every call slow: each waits
behind the others until the caller's deadline passes, and the work done for it is wasted.
Refusing the excess at once keeps the admitted calls fast, and the caller (or its retry on
another node) learns in microseconds that this node is full. The refusal is a
:class:`~micro.errors.ServiceUnavailable` (503) sent before the request body is decoded;
the handler never runs. Internal endpoints (``Debug.*``) are never shed.
"""

from __future__ import annotations

from micro.errors import ServiceUnavailable

__all__ = ["LoadShedder"]


class LoadShedder:
    """Refuses a call when more than ``limit`` are in flight (``shed`` counts refusals)."""

    __slots__ = ("limit", "service", "shed")

    def __init__(self, limit: int, service: str) -> None:
        if limit < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.limit = limit
        self.service = service
        self.shed = 0

    def check(self, active: int) -> ServiceUnavailable | None:
        """``active``: calls in flight, this one included; the error refuses it."""
        if active <= self.limit:
            return None
        self.shed += 1
        return ServiceUnavailable(
            f"overloaded: {active - 1} calls in flight on {self.service}, limit {self.limit}; "
            "refused without running",
            id=self.service,
        )
