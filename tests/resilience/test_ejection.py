"""Outlier ejection in the selector: failure rate, and the most nodes ejected at once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from micro import plugins
from micro.errors import ConnectError
from micro.selector.cache import RegistrySelector
from micro.settings import BACKEND_GROUPS, load
from tests.selector.helpers import NAME, FakeClock, FlakyRegistry, ids, node

FAIL = ConnectError("refused")


@pytest.fixture
async def ejecting(registry: FlakyRegistry, clock: FakeClock) -> AsyncIterator[RegistrySelector]:
    async with RegistrySelector(
        registry, clock=clock, eject_rate=0.5, eject_min_calls=10, eject_max=0.34
    ) as selector:
        yield selector


async def test_a_node_failing_half_its_calls_is_ejected(
    ejecting: RegistrySelector, clock: FakeClock
) -> None:
    a = node("a")
    for _ in range(4):  # alternating: never 3 consecutive failures
        ejecting.mark(NAME, a, FAIL)
        ejecting.mark(NAME, a, None)
    assert await ids(ejecting) == ["a", "b", "c"]
    ejecting.mark(NAME, a, FAIL)
    ejecting.mark(NAME, a, None)  # 10 calls, 5 failed
    assert await ids(ejecting) == ["a", "b", "c"]  # the last outcome was a success
    ejecting.mark(NAME, a, FAIL)  # 11 calls, 6 failed: ejected
    assert await ids(ejecting) == ["b", "c"]
    assert ejecting.ejected() == 1
    clock.advance(30.1)
    assert await ids(ejecting) == ["a", "b", "c"]


async def test_at_most_the_share_of_nodes_is_ejected(ejecting: RegistrySelector) -> None:
    for name in ("a", "b"):
        for _ in range(3 if name == "b" else 4):
            ejecting.mark(NAME, node(name), FAIL)
    # both reached 3 consecutive failures; 34 % of 3 nodes is 1: the worst (a) stays out
    assert await ids(ejecting) == ["b", "c"]


async def test_default_keeps_ejecting_every_failing_node(
    selector: RegistrySelector,
) -> None:
    for name in ("a", "b"):
        for _ in range(3):
            selector.mark(NAME, node(name), FAIL)
    assert await ids(selector) == ["c"]


def test_bad_options_are_refused(registry: FlakyRegistry) -> None:
    with pytest.raises(ValueError, match="eject_rate"):
        RegistrySelector(registry, eject_rate=2.0)


def test_settings_configure_the_registry_selector(
    registry: FlakyRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MICRO_RESILIENCE_EJECT_RATE", "0.4")
    monkeypatch.setenv("MICRO_RESILIENCE_EJECT_MAX", "0.3")
    monkeypatch.setenv("MICRO_RESILIENCE_EJECT_FAILURES", "5")
    monkeypatch.setenv("MICRO_RESILIENCE_EJECT_FOR", "10s")
    made = plugins.create(
        "selector", "registry", settings=load(groups=BACKEND_GROUPS), registry=registry
    )
    assert isinstance(made, RegistrySelector)
    assert (made.eject_rate, made.eject_max, made.failures, made.blacklist_for) == (
        0.4,
        0.3,
        5,
        10.0,
    )
