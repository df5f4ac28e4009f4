"""The selector contract over RegistrySelector, once per strategy."""

from __future__ import annotations

import pytest

from micro.registry import Node, Registry
from micro.selector import Selector
from micro.selector.cache import RegistrySelector
from micro.testing.selector import CHECKS, check_selector

STRATEGIES = ["round_robin", "random", "hashed"]


@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_registry_selector(strategy: str, check: str) -> None:
    def make(registry: Registry) -> Selector:
        return RegistrySelector(registry, strategy=strategy)

    await CHECKS[check](make)


async def test_check_selector_runs_every_check() -> None:
    await check_selector(lambda registry: RegistrySelector(registry), failures=3)


async def test_contract_catches_a_selector_that_ignores_marks() -> None:
    class Forgetful(RegistrySelector):
        def mark(self, service: str, node: Node, error: BaseException | None) -> None:
            pass

    with pytest.raises(AssertionError, match="failures of a"):
        await CHECKS["mark_and_reset"](lambda registry: Forgetful(registry))
