"""Where the HTTP broker's subscribers are: a registry cache kept fresh by a watch.

Publishing never waits on the registry once a topic is known: the first lookup of a topic
reads ``go.micro.http.broker`` (go-micro v1.18+ layout, nodes filtered by their ``topic``
metadata) and ``topic:<topic>`` (go-micro v1.0 to v1.12); a watch applies changes as they
come, and a lookup older than ``ttl`` is refreshed in the background while the cached answer
is used. A node found under both names (this project registers each subscription under both)
counts once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence

from micro.broker._http_wire import BROADCAST, LEGACY_PREFIX, SERVICE
from micro.errors import RegistryError, ServiceNotFound
from micro.registry import Node, Registry, Result, Service

__all__ = ["SubscriberCache", "Targets"]

log = logging.getLogger("micro.broker.http")

Targets = dict[str, list[Node]]
"""Subscriber nodes of one topic by version: ``ff.http.broadcast`` or a queue name."""


class _Entry:
    __slots__ = ("fetched", "nodes", "refreshing")

    def __init__(self) -> None:
        self.nodes: dict[str, tuple[str, Node]] = {}  # node id -> (version, node)
        self.fetched = -1.0
        self.refreshing: asyncio.Task[None] | None = None


class SubscriberCache:
    """Subscriber nodes per registry service name, for :meth:`targets` by topic."""

    def __init__(self, registry: Registry, *, ttl: float = 30.0) -> None:
        self.registry = registry
        self.ttl = ttl
        self._entries: dict[str, _Entry] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._bad: dict[str, float] = {}  # address -> loop time until which it is avoided

    async def targets(self, topic: str) -> Targets:
        """The nodes subscribed to ``topic``, grouped by version.

        Raises:
            RegistryError: the registry cannot be read and nothing is cached.
        """
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch(), name="http-broker-watch")
        for name in (SERVICE, LEGACY_PREFIX + topic):
            await self._entry(name)
        return self.cached(topic)

    def cached(self, topic: str) -> Targets:
        """What :meth:`targets` would answer from the cache alone (no registry call)."""
        out: Targets = {}
        seen: set[str] = set()
        for name in (SERVICE, LEGACY_PREFIX + topic):
            entry = self._entries.get(name)
            if entry is None:
                continue
            for version, node in entry.nodes.values():
                if node.id in seen or (name == SERVICE and node.metadata.get("topic") != topic):
                    continue
                seen.add(node.id)
                out.setdefault(version, []).append(node)
        return out

    def find(self, topic: str, node_id: str) -> Node | None:
        """The cached subscriber node ``node_id`` of ``topic``, if still known."""
        for nodes in self.cached(topic).values():
            for node in nodes:
                if node.id == node_id:
                    return node
        return None

    def pick(self, nodes: Sequence[Node], exclude: str = "") -> Node | None:
        """One node of a queue group, preferring nodes that have not failed lately."""
        now = asyncio.get_running_loop().time()
        fine = [n for n in nodes if self._bad.get(n.address, 0.0) <= now and n.id != exclude]
        if fine:
            return random.choice(fine)
        rest = [n for n in nodes if n.id != exclude] or list(nodes)
        return random.choice(rest) if rest else None

    def mark_bad(self, address: str, seconds: float = 5.0) -> None:
        self._bad[address] = asyncio.get_running_loop().time() + seconds
        if len(self._bad) > 1024:
            self._bad.clear()

    def forget(self, topic: str, node_id: str) -> None:
        """Drop a node that answered it has no such subscriber."""
        for name in (SERVICE, LEGACY_PREFIX + topic):
            entry = self._entries.get(name)
            if entry is not None:
                entry.nodes.pop(node_id, None)

    async def close(self) -> None:
        tasks = [e.refreshing for e in self._entries.values() if e.refreshing is not None]
        if self._watcher is not None:
            tasks.append(self._watcher)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    # -- internals ---------------------------------------------------------------------------

    async def _entry(self, name: str) -> _Entry:
        entry = self._entries.get(name)
        if entry is None:
            entry = self._entries[name] = _Entry()
        now = asyncio.get_running_loop().time()
        if entry.fetched < 0:
            if entry.refreshing is None:
                entry.refreshing = asyncio.create_task(self._refresh(name, entry))
            await asyncio.shield(entry.refreshing)
            if entry.fetched < 0:
                raise RegistryError(f"cannot look up {name} in the registry", id="go.micro.broker")
        elif now - entry.fetched > self.ttl and entry.refreshing is None:
            entry.refreshing = asyncio.create_task(self._refresh(name, entry))
        return entry

    async def _refresh(self, name: str, entry: _Entry) -> None:
        try:
            try:
                services = await self.registry.get_service(name)
            except ServiceNotFound:
                services = []
            except Exception as exc:  # a background refresh: log, keep the old nodes
                log.warning("http broker: looking up %s failed: %s", name, exc)
                return
            entry.nodes = {node.id: (svc.version, node) for svc in services for node in svc.nodes}
            entry.fetched = asyncio.get_running_loop().time()
        finally:
            entry.refreshing = None

    async def _watch(self) -> None:
        while True:
            try:
                async for result in self.registry.watch():
                    self.apply(result)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a background watch: log and retry
                log.warning("http broker: registry watch failed (%s); retrying", exc)
            await asyncio.sleep(1.0)
            stale = asyncio.get_running_loop().time() - self.ttl - 1.0
            for entry in self._entries.values():  # changes may have been missed: re-read
                if entry.fetched >= 0:
                    entry.fetched = min(entry.fetched, stale)

    def apply(self, result: Result) -> None:
        """Apply a registry change (from the watch, or one this broker made itself)."""
        service: Service = result.service
        entry = self._entries.get(service.name)
        if entry is None:
            return
        for node in service.nodes:
            if result.action == "delete":
                entry.nodes.pop(node.id, None)
            else:
                entry.nodes[node.id] = (service.version or BROADCAST, node)
