"""RegistrySelector.mark: 3 failures skip a node for 30 s, then it is tried again."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from micro.errors import BadRequest, ConnectError, InternalServerError, MicroError, Timeout
from micro.selector.cache import RegistrySelector
from micro.testing import eventually
from tests.selector.helpers import NAME, FakeClock, FlakyRegistry, ids, node, service


async def test_three_failures_skip_a_node_for_30_seconds(
    selector: RegistrySelector, clock: FakeClock
) -> None:
    a = node("a")
    for _ in range(2):
        selector.mark(NAME, a, ConnectError("refused"))
    assert await ids(selector) == ["a", "b", "c"]
    selector.mark(NAME, a, ConnectError("refused"))
    for _ in range(10):
        assert await ids(selector) == ["b", "c"]
    clock.advance(29.9)
    assert await ids(selector) == ["b", "c"]
    clock.advance(0.2)
    assert await ids(selector) == ["a", "b", "c"]  # tried again after the window


async def test_half_open_node_is_skipped_again_after_one_failure(
    selector: RegistrySelector, clock: FakeClock
) -> None:
    a = node("a")
    for _ in range(3):
        selector.mark(NAME, a, ConnectError("refused"))
    clock.advance(31)
    selector.mark(NAME, a, ConnectError("still refused"))
    assert await ids(selector) == ["b", "c"]
    clock.advance(31)
    selector.mark(NAME, a, None)  # recovered: the slate is clean
    for _ in range(2):
        selector.mark(NAME, a, ConnectError("refused"))
    assert await ids(selector) == ["a", "b", "c"]


async def test_success_clears_the_failure_count(selector: RegistrySelector) -> None:
    a = node("a")
    for _ in range(10):
        selector.mark(NAME, a, ConnectError("refused"))
        selector.mark(NAME, a, ConnectError("refused"))
        selector.mark(NAME, a, None)
    assert await ids(selector) == ["a", "b", "c"]
    assert not selector._marks


@pytest.mark.parametrize(
    ("error", "counts"),
    [
        (ConnectError("refused"), True),
        (Timeout("slow"), True),
        (InternalServerError("boom"), True),
        (OSError("reset"), True),
        (BadRequest("bad"), False),
        (MicroError("plain text", code=0), False),
    ],
)
async def test_which_errors_count(
    selector: RegistrySelector, error: BaseException, counts: bool
) -> None:
    for _ in range(3):
        selector.mark(NAME, node("a"), error)
    assert ("a" not in await ids(selector)) is counts


async def test_cancellation_is_not_a_failure(selector: RegistrySelector) -> None:
    for _ in range(3):
        selector.mark(NAME, node("a"), asyncio.CancelledError())
    assert await ids(selector) == ["a", "b", "c"]


async def test_round_robin_rotates_over_the_healthy_nodes(selector: RegistrySelector) -> None:
    for _ in range(3):
        selector.mark(NAME, node("b"), ConnectError("refused"))
    firsts = Counter([(await selector.select(NAME))().id for _ in range(20)])
    assert firsts == {"a": 10, "c": 10}


async def test_every_node_blacklisted_fails_open(selector: RegistrySelector) -> None:
    for node_id in "abc":
        for _ in range(3):
            selector.mark(NAME, node(node_id), ConnectError("refused"))
    assert await ids(selector) == ["a", "b", "c"]


async def test_reset_drops_cache_and_marks(
    registry: FlakyRegistry, selector: RegistrySelector
) -> None:
    for _ in range(3):
        selector.mark(NAME, node("a"), ConnectError("refused"))
    assert await ids(selector) == ["b", "c"]
    selector.reset(NAME)
    assert await ids(selector) == ["a", "b", "c"]
    assert registry.gets == 2


async def test_a_deleted_node_loses_its_marks(
    registry: FlakyRegistry, selector: RegistrySelector
) -> None:
    await selector.select(NAME)
    for _ in range(3):
        selector.mark(NAME, node("a"), ConnectError("refused"))
    await registry.deregister(service("a"))
    await eventually(lambda: not selector._marks)
    await registry.register(service("a"))

    async def back() -> bool:
        return await ids(selector) == ["a", "b", "c"]

    await eventually(back)
