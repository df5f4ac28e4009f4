"""In-process registry: for tests and single-process apps. Share one instance."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator

import msgspec

from micro.registry import Registry, Result, Service, ServiceNotFound, group_by_version

__all__ = ["MemoryRegistry"]


class _Entry(msgspec.Struct):
    service: Service  # holds exactly one node
    expires: float | None


class MemoryRegistry(Registry):
    """Keeps services in a dict; TTLs are honoured on read; watchers get every change."""

    name = "memory"

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], _Entry] = {}  # (service name, node id)
        self._watchers: set[tuple[str | None, asyncio.Queue[Result | None]]] = set()
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}

    async def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for _, queue in list(self._watchers):
            queue.put_nowait(None)

    async def register(self, service: Service, *, ttl: float | None = None) -> None:
        expires = time.monotonic() + ttl if ttl else None
        for node in service.nodes:
            one = msgspec.structs.replace(service, nodes=[node])
            key = (service.name, node.id)
            old = self._live(key)
            self._entries[key] = _Entry(one, expires)
            self._expire_later(key, ttl)
            if old is None or old.service != one:
                self._notify(Result("create" if old is None else "update", one))

    async def deregister(self, service: Service) -> None:
        for node in service.nodes:
            entry = self._entries.pop((service.name, node.id), None)
            if (timer := self._timers.pop((service.name, node.id), None)) is not None:
                timer.cancel()
            if entry is not None:
                self._notify(Result("delete", entry.service))

    async def get_service(self, name: str) -> list[Service]:
        found = [e.service for e in self._live_entries() if e.service.name == name]
        if not found:
            raise ServiceNotFound(f"service {name}: not found", id="go.micro.registry")
        return group_by_version(found)

    async def list_services(self) -> list[Service]:
        services = group_by_version(e.service for e in self._live_entries())
        return sorted(services, key=lambda s: (s.name, s.version))

    async def watch(self, service: str | None = None) -> AsyncGenerator[Result, None]:
        queue: asyncio.Queue[Result | None] = asyncio.Queue()
        watcher = (service, queue)
        self._watchers.add(watcher)
        try:
            while (result := await queue.get()) is not None:
                yield result
        finally:
            self._watchers.discard(watcher)

    def _expire_later(self, key: tuple[str, str], ttl: float | None) -> None:
        """Watchers hear of a lapsed TTL when it lapses, not at the next read."""
        if (timer := self._timers.pop(key, None)) is not None:
            timer.cancel()
        if ttl:
            loop = asyncio.get_running_loop()
            self._timers[key] = loop.call_later(ttl + 0.001, self._live, key)

    def _notify(self, result: Result) -> None:
        for name, queue in self._watchers:
            if name is None or name == result.service.name:
                queue.put_nowait(result)

    def _live(self, key: tuple[str, str]) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires is not None and entry.expires < time.monotonic():
            del self._entries[key]
            self._timers.pop(key, None)
            self._notify(Result("delete", entry.service))
            return None
        return entry

    def _live_entries(self) -> list[_Entry]:
        return [e for key in list(self._entries) if (e := self._live(key)) is not None]
