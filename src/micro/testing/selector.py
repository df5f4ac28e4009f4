"""The contract every :class:`~micro.selector.Selector` backend keeps, as a reusable suite.

    from micro.testing.selector import check_selector

    async def test_my_selector() -> None:
        await check_selector(lambda registry: MySelector(registry))

``make`` builds a selector over the :class:`~micro.registry.memory.MemoryRegistry` it is
given; each check gets a fresh registry and selector. The checks are also exported one by one
(:data:`CHECKS`) so a test can parametrize over them. They raise :class:`AssertionError`
and need no test framework.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager

from micro.errors import ConnectError, NoneAvailable, ServiceNotFound
from micro.registry import Endpoint, Node, Registry, Service
from micro.registry.memory import MemoryRegistry
from micro.selector import Filter, Selector
from micro.selector.filters import filter_endpoint, filter_label, filter_version

__all__ = [
    "CHECKS",
    "MakeSelector",
    "check_close",
    "check_filters",
    "check_live_nodes",
    "check_mark_and_reset",
    "check_not_found",
    "check_selector",
    "check_spreads",
    "check_watch",
]

MakeSelector = Callable[[Registry], Selector]
"""Builds the selector under test over the registry it is given."""

Check = Callable[..., Awaitable[None]]

NAME = "contract.greeter"


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _node(node_id: str, **metadata: str) -> Node:
    return Node(id=node_id, address=f"127.0.0.1:{9000 + len(node_id)}", metadata=metadata)


def _service(
    *nodes: Node, version: str = "1.0.0", endpoints: Sequence[str] = (), name: str = NAME
) -> Service:
    return Service(
        name=name,
        version=version,
        nodes=list(nodes),
        endpoints=[Endpoint(name=e) for e in endpoints],
    )


@asynccontextmanager
async def _running(make: MakeSelector) -> AsyncIterator[tuple[MemoryRegistry, Selector]]:
    registry = MemoryRegistry()
    selector = make(registry)
    try:
        async with selector:
            yield registry, selector
    finally:
        await registry.close()


async def _tried(
    selector: Selector,
    service: str = NAME,
    *,
    filters: Sequence[Filter] = (),
    metadata: Mapping[str, str] | None = None,
) -> list[str]:
    """The node ids one request's Next yields, in order, until NoneAvailable."""
    next_node = await selector.select(service, filters=filters, metadata=metadata)
    ids: list[str] = []
    for _ in range(1000):
        try:
            ids.append(next_node().id)
        except NoneAvailable:
            return ids
    raise AssertionError(f"Next never raised NoneAvailable (yielded {ids[:10]}...)")


async def _eventually(probe: Callable[[], Awaitable[bool]], what: str, within: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await probe():
        if loop.time() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.01)


async def check_live_nodes(make: MakeSelector, *, failures: int = 3) -> None:
    """Next yields each live node once, then keeps raising NoneAvailable."""
    async with _running(make) as (registry, selector):
        await registry.register(_service(_node("a"), _node("b"), _node("c")))
        await registry.deregister(_service(_node("b")))
        next_node = await selector.select(NAME)
        ids = [next_node().id, next_node().id]
        _expect(sorted(ids) == ["a", "c"], f"expected the live nodes a, c once each, got {ids}")
        for _ in range(2):
            try:
                extra = next_node()
            except NoneAvailable:
                continue
            raise AssertionError(f"Next yielded {extra.id} after every node was tried")


async def check_spreads(make: MakeSelector, *, failures: int = 3) -> None:
    """Requests without a shard key are spread: 60 first picks reach all 3 nodes."""
    async with _running(make) as (registry, selector):
        await registry.register(_service(_node("a"), _node("b"), _node("c")))
        firsts = {(await selector.select(NAME))().id for _ in range(60)}
        _expect(firsts == {"a", "b", "c"}, f"60 requests only reached {sorted(firsts)}")


async def check_filters(make: MakeSelector, *, failures: int = 3) -> None:
    """Version, label and endpoint filters narrow the nodes; an empty result is NoneAvailable."""
    async with _running(make) as (registry, selector):
        await registry.register(_service(_node("a", zone="x"), _node("b", zone="y")))
        await registry.register(
            _service(_node("c", zone="x"), version="2.0.0", endpoints=["Greeter.Hello"])
        )
        cases: list[tuple[list[Filter], list[str]]] = [
            ([], ["a", "b", "c"]),
            ([filter_version("2.0.0")], ["c"]),
            ([filter_version("1.0.0", "2.0.0")], ["a", "b", "c"]),
            ([filter_label("zone", "x")], ["a", "c"]),
            ([filter_endpoint("Greeter.Hello")], ["c"]),
            ([filter_version("1.0.0"), filter_label("zone", "x")], ["a"]),
        ]
        for filters, want in cases:
            got = sorted(await _tried(selector, filters=filters))
            _expect(got == want, f"filters {filters} gave {got}, expected {want}")
        for filters in ([filter_version("9")], [filter_version("1.0.0"), filter_endpoint("X.Y")]):
            try:
                await selector.select(NAME, filters=filters)
            except NoneAvailable:
                continue
            raise AssertionError(f"filters {filters} left no node but select did not fail")


async def check_not_found(make: MakeSelector, *, failures: int = 3) -> None:
    """Unknown services raise ServiceNotFound, also once every node has gone."""
    async with _running(make) as (registry, selector):
        try:
            await selector.select("contract.missing")
        except ServiceNotFound:
            pass
        else:
            raise AssertionError("select of an unknown service did not raise ServiceNotFound")
        await registry.register(_service(_node("a")))
        _expect(await _tried(selector) == ["a"], "the registered node is not selected")
        await registry.deregister(_service(_node("a")))

        async def gone() -> bool:
            try:
                await selector.select(NAME)
            except ServiceNotFound:
                return True
            return False

        await _eventually(gone, "select raises ServiceNotFound after the last node left")


async def check_mark_and_reset(make: MakeSelector, *, failures: int = 3) -> None:
    """Failing nodes are skipped, success clears the count, reset forgets the marks."""
    async with _running(make) as (registry, selector):
        a, b, c = _node("a"), _node("b"), _node("c")
        await registry.register(_service(a, b, c))
        await selector.select(NAME)
        for _ in range(failures):
            selector.mark(NAME, a, ConnectError("refused"))
        for outcome in [*[ConnectError("refused")] * (failures - 1), None]:
            selector.mark(NAME, b, outcome)  # a success ends the run of failures
        for _ in range(failures - 1):
            selector.mark(NAME, b, ConnectError("refused"))  # so b is still offered
        for _ in range(10):
            got = sorted(await _tried(selector))
            _expect(got == ["b", "c"], f"after {failures} failures of a, got {got}")
        selector.reset(NAME)
        got = sorted(await _tried(selector))
        _expect(got == ["a", "b", "c"], f"reset did not forget the failures: got {got}")


async def check_watch(make: MakeSelector, *, failures: int = 3) -> None:
    """A running selector learns of nodes added and removed after its first lookup."""
    async with _running(make) as (registry, selector):
        await registry.register(_service(_node("a"), _node("b")))
        _expect(sorted(await _tried(selector)) == ["a", "b"], "the first lookup is wrong")
        await registry.register(_service(_node("d")))

        async def added() -> bool:
            return "d" in await _tried(selector)

        await _eventually(added, "a node registered after the first select is offered")
        await registry.deregister(_service(_node("a")))

        async def removed() -> bool:
            return sorted(await _tried(selector)) == ["b", "d"]

        await _eventually(removed, "a deregistered node stops being offered")


async def check_close(make: MakeSelector, *, failures: int = 3) -> None:
    """close() stops every background task it started, and may be called twice."""
    before = asyncio.all_tasks()
    registry = MemoryRegistry()
    selector = make(registry)
    await registry.register(_service(_node("a")))
    await selector.start()
    await selector.select(NAME)
    await selector.close()
    await selector.close()
    await asyncio.sleep(0)
    left = {t for t in asyncio.all_tasks() - before if not t.done()}
    await registry.close()
    _expect(not left, f"close() left tasks running: {left}")


CHECKS: dict[str, Check] = {
    "live_nodes": check_live_nodes,
    "spreads": check_spreads,
    "filters": check_filters,
    "not_found": check_not_found,
    "mark_and_reset": check_mark_and_reset,
    "watch": check_watch,
    "close": check_close,
}
"""Every check by name; each takes ``(make, *, failures=3)``."""


async def check_selector(make: MakeSelector, *, failures: int = 3) -> None:
    """Run every check of the selector contract.

    Args:
        make: builds the selector under test over the registry it is given.
        failures: consecutive failures after which the backend skips a node.

    Raises:
        AssertionError: the first check that fails, with what it saw.
    """
    for check in CHECKS.values():
        await check(make, failures=failures)
