"""Selector: picks the node of a service that the next call goes to.

``select`` returns a ``Next`` function; each call of it yields a node to try (a client calls it
once per attempt, so retries may move on to another node). Strategies decide the order
(``random``, ``round_robin`` which rotates across requests, ``hashed`` which keeps one key on
one node); filters narrow the candidates (by version, node metadata, endpoint); nodes marked
as failing are skipped for a while (3 failures, 30 s) and then tried again.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from typing import Self

from micro.errors import NoneAvailable, ServiceNotFound
from micro.registry import Node, Service

__all__ = ["Filter", "Next", "NoneAvailable", "Selector", "ServiceNotFound"]

Next = Callable[[], Node]
"""Returns the next node to try; raises :class:`NoneAvailable` when none is left."""

Filter = Callable[[list[Service]], list[Service]]
"""Narrows the services (versions) and their nodes a selection may use."""


class Selector(abc.ABC):
    """Chooses nodes. An async context manager: ``start()`` on enter, ``close()`` on exit."""

    name: str = "selector"

    async def start(self) -> None:
        """Start background work such as registry watches (idempotent)."""

    async def close(self) -> None:
        """Stop background work; never raises."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @abc.abstractmethod
    async def select(
        self,
        service: str,
        *,
        filters: Sequence[Filter] = (),
        metadata: Mapping[str, str] | None = None,
    ) -> Next:
        """Candidates for one request to ``service``.

        Args:
            service: the service name.
            filters: applied in order to the registry's answer.
            metadata: the request's metadata (the hashed strategy reads its key there).

        Raises:
            ServiceNotFound: the registry knows no such service.
            NoneAvailable: the service exists but no node passes the filters.
        """

    @abc.abstractmethod
    def mark(self, service: str, node: Node, error: BaseException | None) -> None:
        """Report the outcome of a call to ``node`` (``None`` for success)."""

    @abc.abstractmethod
    def reset(self, service: str) -> None:
        """Forget what is known about ``service`` (cached nodes, failure marks)."""
