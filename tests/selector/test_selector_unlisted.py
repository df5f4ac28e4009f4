"""A registry that lost its data must not take away the nodes a client is calling.

The registry here comes back empty (its watch ends and no delete is ever sent), as an etcd
restarted on a wiped data dir does; the nodes it forgot still answer until they fail.
"""

from __future__ import annotations

import pytest

from micro.errors import ConnectError, ServiceNotFound
from micro.registry.memory import MemoryRegistry
from micro.selector.cache import RegistrySelector
from micro.testing import eventually
from tests.selector.helpers import NAME, FakeClock, FlakyRegistry, ids, node, service


async def _wipe(registry: FlakyRegistry, *, keep: tuple[str, ...] = ()) -> None:
    """The registry restarts knowing only ``keep``; the selector's watch restarts on it."""
    old, registry.inner = registry.inner, MemoryRegistry()
    if keep:
        await registry.inner.register(service(*keep))
    watches = registry.watches
    await old.close()  # ends the running watch: the selector will refetch what it caches
    await eventually(lambda: registry.watches > watches)


def _answered(selector: RegistrySelector, *node_ids: str) -> None:
    for node_id in node_ids:
        selector.mark(NAME, node(node_id), None)


async def test_nodes_that_answer_stay_when_the_registry_comes_back_empty(
    registry: FlakyRegistry, selector: RegistrySelector
) -> None:
    assert await ids(selector) == ["a", "b", "c"]
    _answered(selector, "a", "b")  # c was never called: nothing says it is still there
    await _wipe(registry)
    assert await ids(selector) == ["a", "b"]
    assert registry.gets == 2  # the refetch happened, and said "not found"


async def test_nodes_that_answer_stay_when_the_registry_comes_back_with_fewer(
    registry: FlakyRegistry, selector: RegistrySelector
) -> None:
    await selector.select(NAME)
    _answered(selector, "a", "b", "c")
    await _wipe(registry, keep=("a",))
    assert await ids(selector) == ["a", "b", "c"]
    assert registry.gets == 2


async def test_unlisted_nodes_leave_after_a_ttl_unless_registered_again(
    registry: FlakyRegistry, selector: RegistrySelector, clock: FakeClock
) -> None:
    await selector.select(NAME)
    _answered(selector, "a", "b", "c")
    await _wipe(registry)
    assert await ids(selector) == ["a", "b", "c"]
    await registry.register(service("a"))  # a registers again
    clock.advance(30)
    _answered(selector, "a", "b")  # b keeps answering, c falls silent
    clock.advance(31)  # the entry's TTL: refetched; b has been unlisted for a whole TTL
    assert await ids(selector) == ["a"]
    assert registry.gets == 3


async def test_an_unlisted_node_leaves_once_it_is_skipped_for_failures(
    registry: FlakyRegistry, selector: RegistrySelector
) -> None:
    await selector.select(NAME)
    _answered(selector, "a", "b")
    await _wipe(registry)
    assert await ids(selector) == ["a", "b"]
    for _ in range(3):
        selector.mark(NAME, node("a"), ConnectError("refused"))
    assert await ids(selector) == ["b"]  # dropped, not skipped and offered again later
    for _ in range(3):
        selector.mark(NAME, node("b"), ConnectError("refused"))
    with pytest.raises(ServiceNotFound):  # the last one gone: the registry answers
        await selector.select(NAME)


async def test_a_listed_node_that_fails_is_still_only_skipped(
    registry: FlakyRegistry, selector: RegistrySelector
) -> None:
    await selector.select(NAME)
    for node_id in "abc":
        for _ in range(3):
            selector.mark(NAME, node(node_id), ConnectError("refused"))
    assert await ids(selector) == ["a", "b", "c"]  # every node skipped: fail open
    assert registry.gets == 1


async def test_a_skipped_node_is_not_kept_when_the_registry_forgets_it(
    registry: FlakyRegistry, selector: RegistrySelector
) -> None:
    await selector.select(NAME)
    _answered(selector, "a", "b")
    for _ in range(3):
        selector.mark(NAME, node("b"), ConnectError("refused"))
    await _wipe(registry)
    assert await ids(selector) == ["a"]


async def test_a_delete_removes_a_node_that_answers(
    registry: FlakyRegistry, selector: RegistrySelector
) -> None:
    await selector.select(NAME)
    _answered(selector, "a", "b", "c")
    await registry.deregister(service("a", "b", "c"))

    async def not_found() -> bool:
        try:
            await selector.select(NAME)
        except ServiceNotFound:
            return True
        return False

    await eventually(not_found)
