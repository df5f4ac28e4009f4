"""RegistrySelector: the watched cache, stale results on registry errors, the lifecycle."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncGenerator

import pytest

from micro.errors import NoneAvailable, RegistryError, ServiceNotFound
from micro.registry import Result, Service
from micro.selector.cache import RegistrySelector
from micro.selector.filters import filter_version
from micro.selector.strategies import Hashed, RoundRobin
from micro.testing import eventually
from tests.selector.helpers import NAME, FakeClock, FlakyRegistry, ids, service

# -- round robin and hashing through the selector -------------------------------------------


async def test_round_robin_rotates_over_separate_selects(selector: RegistrySelector) -> None:
    firsts = Counter([(await selector.select(NAME))().id for _ in range(30)])
    assert firsts == {"a": 10, "b": 10, "c": 10}


async def test_hashed_keeps_a_key_on_one_node(registry: FlakyRegistry) -> None:
    async with RegistrySelector(registry, strategy="hashed") as selector:
        md = {"x-micro-shard": "user-42"}
        picks = {(await selector.select(NAME, metadata=md))().id for _ in range(100)}
        assert len(picks) == 1
        spread = Counter(
            [
                (await selector.select(NAME, metadata={"X-Micro-Shard": str(k)}))().id
                for k in range(300)
            ]
        )
        assert set(spread) == {"a", "b", "c"}


async def test_strategy_instance_and_bad_name(registry: FlakyRegistry) -> None:
    hashed = Hashed("X-User")
    assert RegistrySelector(registry, strategy=hashed).strategy is hashed
    assert isinstance(RegistrySelector(registry).strategy, RoundRobin)
    with pytest.raises(ValueError, match="unknown selector strategy"):
        RegistrySelector(registry, strategy="nope")
    with pytest.raises(ValueError, match="failures"):
        RegistrySelector(registry, failures=0)


# -- the cache --------------------------------------------------------------------------------


async def test_cached_selects_do_not_ask_the_registry(
    registry: FlakyRegistry, selector: RegistrySelector
) -> None:
    for _ in range(50):
        await selector.select(NAME)
    assert registry.gets == 1


async def test_concurrent_cold_selects_share_one_lookup(registry: FlakyRegistry) -> None:
    registry.gate = asyncio.Event()
    async with RegistrySelector(registry) as selector:
        waiting = [asyncio.create_task(selector.select(NAME)) for _ in range(10)]
        await asyncio.sleep(0.01)
        registry.gate.set()
        for next_node in await asyncio.gather(*waiting):
            assert next_node().id in "abc"
    assert registry.gets == 1


async def test_ttl_expiry_refetches(
    registry: FlakyRegistry, selector: RegistrySelector, clock: FakeClock
) -> None:
    await selector.select(NAME)
    clock.advance(59)
    await selector.select(NAME)
    assert registry.gets == 1
    clock.advance(2)
    await selector.select(NAME)
    assert registry.gets == 2


async def test_unknown_service_is_not_found_and_not_cached(
    registry: FlakyRegistry, selector: RegistrySelector
) -> None:
    for _ in range(2):
        with pytest.raises(ServiceNotFound):
            await selector.select("nope")
    assert registry.gets == 2


async def test_filters_leaving_nothing_raise_none_available(selector: RegistrySelector) -> None:
    with pytest.raises(NoneAvailable):
        await selector.select(NAME, filters=[filter_version("9.9.9")])


async def test_a_filter_cannot_corrupt_the_cache(selector: RegistrySelector) -> None:
    def greedy(services: list[Service]) -> list[Service]:
        services.clear()
        return services

    with pytest.raises(NoneAvailable):
        await selector.select(NAME, filters=[greedy])
    assert await ids(selector) == ["a", "b", "c"]


async def test_watch_adds_a_node_without_asking_the_registry(
    registry: FlakyRegistry, selector: RegistrySelector
) -> None:
    assert await ids(selector) == ["a", "b", "c"]
    await registry.register(service("d"))

    async def has_d() -> bool:
        return "d" in await ids(selector)

    await eventually(has_d)
    await registry.register(service("e", version="2.0.0"))

    async def has_e() -> bool:
        return await ids(selector) == ["a", "b", "c", "d", "e"]

    await eventually(has_e)
    assert registry.gets == 1
    assert await ids(selector, filters=[filter_version("2.0.0")]) == ["e"]


async def test_watch_removes_a_deleted_node(
    registry: FlakyRegistry, selector: RegistrySelector
) -> None:
    await selector.select(NAME)
    await registry.deregister(service("b"))

    async def gone() -> bool:
        return await ids(selector) == ["a", "c"]

    await eventually(gone)
    assert registry.gets == 1


async def test_watch_update_moves_a_node_to_its_new_version(
    registry: FlakyRegistry, selector: RegistrySelector
) -> None:
    await selector.select(NAME)
    await registry.register(service("a", version="2.0.0"))

    async def moved() -> bool:
        try:
            return await ids(selector, filters=[filter_version("2.0.0")]) == ["a"]
        except NoneAvailable:
            return False  # not seen yet

    await eventually(moved)
    assert await ids(selector, filters=[filter_version("1.0.0")]) == ["b", "c"]
    assert registry.gets == 1


async def test_service_gone_from_the_watch_is_not_found(
    registry: FlakyRegistry, selector: RegistrySelector
) -> None:
    await selector.select(NAME)
    await registry.deregister(service("a", "b", "c"))

    async def not_found() -> bool:
        try:
            await selector.select(NAME)
        except ServiceNotFound:
            return True
        return False

    await eventually(not_found)


async def test_watch_ignores_services_not_cached(
    registry: FlakyRegistry, selector: RegistrySelector
) -> None:
    await selector.select(NAME)
    await registry.register(service("x", name="other"))
    await asyncio.sleep(0.01)
    assert await ids(selector) == ["a", "b", "c"]
    assert (await selector.select("other"))().id == "x"
    assert registry.gets == 2


async def test_watch_results_during_a_lookup_are_not_lost(registry: FlakyRegistry) -> None:
    registry.gate = asyncio.Event()
    async with RegistrySelector(registry) as selector:
        lookup = asyncio.create_task(selector.select(NAME))
        await asyncio.sleep(0.01)  # the snapshot (a, b, c) is taken, its answer delayed
        await registry.deregister(service("b"))  # the watch sees these meanwhile
        await registry.register(service("b"))
        await registry.deregister(service("c"))
        await asyncio.sleep(0.01)
        registry.gate.set()
        await lookup
        assert await ids(selector) == ["a", "b"]


async def test_watch_restarts_and_refetches(
    registry: FlakyRegistry, selector: RegistrySelector
) -> None:
    await selector.select(NAME)
    assert registry.watches == 1
    registry.watch_down = True
    await registry.inner.close()  # ends the running watch
    await registry.register(service("d"))  # missed: no watch is running
    await eventually(lambda: registry.watches >= 3)  # restarts keep failing, with backoff
    registry.watch_down = False
    await eventually(lambda: registry.watches >= 4, timeout=3.0)

    async def has_d() -> bool:
        return "d" in await ids(selector)

    await eventually(has_d)  # the missed node came from a refetch
    assert registry.gets == 2
    await registry.register(service("e"))  # and the new watch works

    async def has_e() -> bool:
        return "e" in await ids(selector)

    await eventually(has_e)
    assert registry.gets == 2


# -- stale results when the registry fails ------------------------------------------------------


async def test_stale_entry_served_while_the_registry_is_down(
    registry: FlakyRegistry,
    selector: RegistrySelector,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert await ids(selector) == ["a", "b", "c"]
    registry.down = True
    clock.advance(61)
    with caplog.at_level(logging.INFO, logger="micro.selector"):
        for _ in range(20):
            assert await ids(selector) == ["a", "b", "c"]
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "serving 3 cached nodes" in warnings[0].getMessage()
        assert registry.gets == 2  # the selects did not wait on the registry again
        await eventually(lambda: registry.gets >= 4)  # retried in the background
        registry.down = False
        await eventually(lambda: "answers again" in caplog.text, timeout=5.0)
    gets = registry.gets
    clock.advance(30)
    await selector.select(NAME)
    assert registry.gets == gets  # recovered: fresh for another TTL


async def test_registry_down_without_cache_raises(registry: FlakyRegistry) -> None:
    registry.down = True
    async with RegistrySelector(registry) as selector:
        with pytest.raises(RegistryError):
            await selector.select(NAME)


async def test_recovery_learns_the_registry_removed_the_service(
    registry: FlakyRegistry, selector: RegistrySelector, clock: FakeClock
) -> None:
    await selector.select(NAME)
    registry.down = True
    registry.watch_down = True
    await registry.inner.close()  # the watch cannot tell us
    clock.advance(61)
    await selector.select(NAME)  # stale
    await registry.deregister(service("a", "b", "c"))
    registry.down = False

    async def not_found() -> bool:
        try:
            await selector.select(NAME)
        except ServiceNotFound:
            return True
        return False

    await eventually(not_found)


# -- lifecycle ------------------------------------------------------------------------------------


async def test_start_subscribes_the_watch_before_returning(registry: FlakyRegistry) -> None:
    selector = RegistrySelector(registry)
    await selector.start()
    await selector.start()  # idempotent
    assert registry.watches == 1
    await selector.close()


async def test_first_select_starts_one_watch_and_close_stops_it(registry: FlakyRegistry) -> None:
    before = asyncio.all_tasks()
    selector = RegistrySelector(registry)
    await selector.select(NAME)
    await selector.select(NAME)
    assert registry.watches == 1
    assert len(asyncio.all_tasks() - before) == 1
    await selector.close()
    await selector.close()
    assert not {t for t in asyncio.all_tasks() - before if not t.done()}


async def test_close_stops_recovery_and_answers_afterwards(
    registry: FlakyRegistry, clock: FakeClock
) -> None:
    before = asyncio.all_tasks()
    selector = RegistrySelector(registry, clock=clock)
    await selector.select(NAME)
    registry.down = True
    clock.advance(61)
    await selector.select(NAME)  # stale, with a recovery task
    assert len(asyncio.all_tasks() - before) == 2
    await selector.close()
    assert not {t for t in asyncio.all_tasks() - before if not t.done()}
    registry.down = False
    clock.advance(61)
    assert await ids(selector) == ["a", "b", "c"]  # still answers, with no task behind
    assert not {t for t in asyncio.all_tasks() - before if not t.done()}


async def test_close_during_a_lookup_fails_it_cleanly(registry: FlakyRegistry) -> None:
    registry.gate = asyncio.Event()
    selector = RegistrySelector(registry)
    lookup = asyncio.create_task(selector.select(NAME))
    await asyncio.sleep(0.01)
    await selector.close()
    with pytest.raises(RegistryError, match="closed"):
        await lookup


async def test_cancelled_caller_does_not_cancel_the_shared_lookup(
    registry: FlakyRegistry,
) -> None:
    registry.gate = asyncio.Event()
    async with RegistrySelector(registry) as selector:
        first = asyncio.create_task(selector.select(NAME))
        second = asyncio.create_task(selector.select(NAME))
        await asyncio.sleep(0.01)
        first.cancel()
        registry.gate.set()
        assert second.done() or (await second)().id in "abc"
        with pytest.raises(asyncio.CancelledError):
            await first
    assert registry.gets == 1


async def test_lazily_started_watch_sees_changes_right_after_the_first_select(
    registry: FlakyRegistry,
) -> None:
    selector = RegistrySelector(registry)  # not started: the first select starts the watch
    try:
        await selector.select(NAME)
        await registry.register(service("d"))  # at once, without yielding to the loop

        async def has_d() -> bool:
            return "d" in await ids(selector)

        await eventually(has_d)
        assert registry.gets == 1
    finally:
        await selector.close()


class _SwallowingRegistry(FlakyRegistry):
    """A watch that ends normally when cancelled, as one waiting in Python 3.11's
    ``wait_for`` on an event that is set at the same moment (a registry's close) does."""

    async def watch(self, service: str | None = None) -> AsyncGenerator[Result, None]:
        self.watches += 1
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            return
        yield Result("create", Service(name="never"))  # pragma: no cover - makes a generator


async def test_close_ends_the_watch_loop_even_when_a_watch_swallows_its_cancellation() -> None:
    registry = _SwallowingRegistry()
    selector = RegistrySelector(registry)
    await selector.start()
    await eventually(lambda: registry.watches == 1)
    await asyncio.wait_for(selector.close(), 2)  # before: a new watch, and close hung
    assert registry.watches == 1
