"""Test doubles for the selector tests: a fake clock and a registry that counts and fails."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping, Sequence

from micro.errors import NoneAvailable, RegistryError
from micro.registry import Node, Registry, Result, Service
from micro.registry.memory import MemoryRegistry
from micro.selector import Filter, Next, Selector

NAME = "greeter"


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FlakyRegistry(Registry):
    """A MemoryRegistry that counts lookups and can be made unreachable."""

    def __init__(self) -> None:
        self.inner = MemoryRegistry()
        self.gets = 0
        self.watches = 0
        self.down = False  # get_service raises RegistryError
        self.watch_down = False  # watch raises RegistryError at once
        self.gate: asyncio.Event | None = None  # get_service answers once it is set

    async def close(self) -> None:
        await self.inner.close()

    async def register(self, service: Service, *, ttl: float | None = None) -> None:
        await self.inner.register(service, ttl=ttl)

    async def deregister(self, service: Service) -> None:
        await self.inner.deregister(service)

    async def get_service(self, name: str) -> list[Service]:
        self.gets += 1
        if self.down:
            raise RegistryError("registry unreachable", id="test")
        services = await self.inner.get_service(name)  # the snapshot is taken now...
        if self.gate is not None:
            await self.gate.wait()  # ...and arrives late
        return services

    async def list_services(self) -> list[Service]:
        return await self.inner.list_services()

    async def watch(self, service: str | None = None) -> AsyncGenerator[Result, None]:
        self.watches += 1
        if self.watch_down:
            raise RegistryError("watch refused", id="test")
        async for result in self.inner.watch(service):
            yield result


def node(node_id: str, **metadata: str) -> Node:
    return Node(id=node_id, address=f"10.0.0.{len(node_id)}:8080", metadata=metadata)


def service(*node_ids: str, version: str = "1.0.0", name: str = NAME) -> Service:
    return Service(name=name, version=version, nodes=[node(i) for i in node_ids])


def drain(next_node: Next) -> list[str]:
    """Every node id a Next yields before NoneAvailable (fails if it never stops)."""
    ids: list[str] = []
    for _ in range(1000):
        try:
            ids.append(next_node().id)
        except NoneAvailable:
            return ids
    raise AssertionError("Next never raised NoneAvailable")


def nodes(*node_ids: str) -> Sequence[Node]:
    return [node(i) for i in node_ids]


async def ids(
    selector: Selector,
    *,
    filters: Sequence[Filter] = (),
    metadata: Mapping[str, str] | None = None,
) -> list[str]:
    """The sorted ids of every node one request may try."""
    return sorted(drain(await selector.select(NAME, filters=filters, metadata=metadata)))
