"""A watcher's view of live nodes, fed by announcements: sans-IO, the caller passes the time.

Announcers re-publish on every heartbeat; the table turns that stream into create, update and
delete results, and deletes nodes whose TTL passes with no new announcement (a crashed
process sends no goodbye).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from micro.registry import Result, Service
from micro.registry._nats_wire import Announcement

__all__ = ["NodeTable"]


@dataclass(slots=True)
class _Live:
    service: Service  # one node
    expires: float | None


class NodeTable:
    """Live nodes keyed by (service name, node id)."""

    def __init__(self) -> None:
        self._live: dict[tuple[str, str], _Live] = {}
        self._heap: list[tuple[float, tuple[str, str]]] = []  # lazily pruned expiry times

    def __len__(self) -> int:
        return len(self._live)

    def apply(self, ann: Announcement, now: float) -> Result | None:
        """Fold one announcement in; the result to report, if anything changed."""
        key = (ann.service.name, ann.service.nodes[0].id)
        old = self._live.get(key)
        if ann.action == "delete":
            if old is None:
                return None
            del self._live[key]
            return Result("delete", old.service)
        self._put(key, ann, now)
        if old is None:
            return Result("create", ann.service)
        if old.service != ann.service:
            return Result("update", ann.service)
        return None

    def seed(self, ann: Announcement, now: float) -> None:
        """Learn a node that was live before the watch began, without reporting it."""
        key = (ann.service.name, ann.service.nodes[0].id)
        if key not in self._live and ann.action != "delete":
            self._put(key, ann, now)

    def next_expiry(self) -> float | None:
        """The soonest time a node lapses (``None``: none will)."""
        while self._heap:
            when, key = self._heap[0]
            live = self._live.get(key)
            if live is not None and live.expires == when:
                return when
            heapq.heappop(self._heap)  # superseded by a later announcement or a delete
        return None

    def expire(self, now: float) -> list[Result]:
        """Drop and report every node whose TTL has passed."""
        gone = []
        while (when := self.next_expiry()) is not None and when <= now:
            _, key = heapq.heappop(self._heap)
            gone.append(Result("delete", self._live.pop(key).service))
        return gone

    def _put(self, key: tuple[str, str], ann: Announcement, now: float) -> None:
        expires = now + ann.ttl if ann.ttl else None
        self._live[key] = _Live(ann.service, expires)
        if expires is not None:
            heapq.heappush(self._heap, (expires, key))
