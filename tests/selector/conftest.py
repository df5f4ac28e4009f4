"""Fixtures of the selector tests: a counting registry with 3 nodes, a fake clock, a selector."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from micro.selector.cache import RegistrySelector
from tests.selector.helpers import FakeClock, FlakyRegistry, service


@pytest.fixture
async def registry() -> AsyncIterator[FlakyRegistry]:
    registry = FlakyRegistry()
    await registry.register(service("a", "b", "c"))
    yield registry
    await registry.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def selector(registry: FlakyRegistry, clock: FakeClock) -> AsyncIterator[RegistrySelector]:
    async with RegistrySelector(registry, clock=clock) as selector:
        yield selector
