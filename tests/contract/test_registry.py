"""The registry contract over every backend: memory, and mDNS over real sockets on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from micro.registry import Registry, Service
from micro.registry.mdns import MdnsRegistry
from micro.registry.memory import MemoryRegistry
from micro.testing.registry import CHECKS, RegistryFactory, check_registry, shared


@asynccontextmanager
async def _mdns() -> AsyncIterator[Registry]:
    async with MdnsRegistry() as registry:  # MICRO_MDNS_INTERFACES=127.0.0.1 (conftest)
        yield registry


BACKENDS: dict[str, RegistryFactory] = {"memory": shared(MemoryRegistry), "mdns": _mdns}


@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("backend", list(BACKENDS))
async def test_contract(backend: str, check: str) -> None:
    await CHECKS[check](BACKENDS[backend], 5.0)


async def test_whole_suite_on_memory() -> None:
    await check_registry(shared(MemoryRegistry))


async def test_suite_accepts_plain_and_awaitable_factories() -> None:
    async def make_later() -> Registry:
        return MemoryRegistry()

    await CHECKS["unknown_service_is_not_found"](MemoryRegistry, 1.0)
    await CHECKS["close_ends_watches_and_is_idempotent"](make_later, 1.0)


async def test_suite_catches_a_backend_that_forgets_ttls() -> None:
    class Forgetful(MemoryRegistry):
        async def register(self, service: Service, *, ttl: float | None = None) -> None:
            await super().register(service, ttl=None)

    with pytest.raises(AssertionError, match="ttl_expiry"):
        await check_registry(shared(Forgetful), settle=0.5)
