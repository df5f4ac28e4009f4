"""The registry contract: behaviour every :class:`~micro.registry.Registry` backend must show.

    from micro.testing.registry import check_registry, shared

    async def test_my_backend() -> None:
        await check_registry(lambda: MyRegistry(addr="..."))

``make`` is called once per registry a check needs and may return an async context manager
(entered to start it, exited to close it) or a registry, or an awaitable of one (started with
``start()`` and closed with ``close()``). Registries made while another is open must see each
other (a registering one and a looking-up one); for an in-process backend wrap its class in
:func:`shared`, which hands every concurrent caller the same instance.

Each check uses fresh service names, so the suite may run against a shared network or
server. Propagation between instances may be asynchronous: checks wait up to ``settle``
seconds for it. Compared: name, version, endpoints and nodes (id, address, metadata);
service-level metadata is backend-defined (go-micro's mDNS layout does not carry it).
Pytest-free: failures are plain ``AssertionError``.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from micro.errors import ServiceNotFound
from micro.registry import Endpoint, Node, Registry, Result, Service, Value

__all__ = ["CHECKS", "RegistryFactory", "check_registry", "shared"]

RegistryFactory = Callable[[], Any]
"""Returns an async context manager of a registry, a registry, or an awaitable of one."""

Check = Callable[[RegistryFactory, float], Awaitable[None]]


async def check_registry(make: RegistryFactory, *, settle: float = 5.0) -> None:
    """Run every check in :data:`CHECKS` against registries from ``make``.

    Args:
        make: gives a fresh registry per call (see the module docs).
        settle: the longest a change may take to show on another instance, in seconds.

    Raises:
        AssertionError: the first check that fails, naming it.
    """
    for name, check in CHECKS.items():
        try:
            await check(make, settle)
        except AssertionError as exc:
            raise AssertionError(f"registry contract {name}: {exc}") from exc


def shared(factory: Callable[[], Registry]) -> RegistryFactory:
    """A ``make`` for in-process backends: registries open at the same time are one instance.

    The instance is created by the first concurrent caller and closed when the last one
    exits, so every check still starts from an empty registry.
    """
    state: dict[str, Any] = {"registry": None, "users": 0}

    @asynccontextmanager
    async def make() -> AsyncIterator[Registry]:
        if state["users"] == 0:
            state["registry"] = factory()
            await state["registry"].start()
        state["users"] += 1
        try:
            yield state["registry"]
        finally:
            state["users"] -= 1
            if state["users"] == 0:
                await state["registry"].close()

    return make


@asynccontextmanager
async def _open(make: RegistryFactory) -> AsyncIterator[Registry]:
    made = make()
    if isinstance(made, AbstractAsyncContextManager) or hasattr(made, "__aenter__"):
        async with made as registry:
            yield registry
        return
    registry = await made if inspect.isawaitable(made) else made
    await registry.start()
    try:
        yield registry
    finally:
        await registry.close()


# -- helpers ------------------------------------------------------------------------------


def _name(label: str) -> str:
    return f"contract-{label}-{uuid.uuid4().hex[:8]}"


def _service(name: str, version: str = "1.0.0", *nodes: Node) -> Service:
    endpoint = Endpoint(
        "Greeter.Hello",
        Value("Request", "Request", [Value("name", "string")]),
        Value("Response", "Response", [Value("msg", "string")]),
        {"stream": "false"},
    )
    nodes = nodes or (Node(f"{name}-{uuid.uuid4()}", "127.0.0.1:50051", {"protocol": "mucp"}),)
    return Service(name, version, {}, [endpoint], list(nodes))


def _node(name: str, port: int, **metadata: str) -> Node:
    return Node(f"{name}-{uuid.uuid4()}", f"127.0.0.1:{port}", metadata)


def _shape(services: list[Service]) -> dict[str, dict[str, tuple[str, dict[str, str]]]]:
    """version -> node id -> (address, metadata)."""
    return {s.version: {n.id: (n.address, dict(n.metadata)) for n in s.nodes} for s in services}


async def _lookup(registry: Registry, name: str) -> list[Service]:
    try:
        return await registry.get_service(name)
    except ServiceNotFound:
        return []


async def _eventually(
    probe: Callable[[], Awaitable[Any]], want: Callable[[Any], bool], settle: float, what: str
) -> Any:
    """Poll ``probe`` until ``want`` holds; fail after ``settle`` seconds."""
    deadline = time.monotonic() + settle
    while True:
        got = await probe()
        if want(got):
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still {got!r} after {settle} s")
        await asyncio.sleep(0.05)


class _Events:
    """Collect a watch iterator's results on a task, so the test can wait with a bound."""

    def __init__(self, iterator: AsyncIterator[Result]) -> None:
        self._iterator = iterator
        self._queue: asyncio.Queue[Result | None] = asyncio.Queue()
        self._task = asyncio.ensure_future(self._pump())

    @classmethod
    async def start(cls, registry: Registry, service: str | None) -> _Events:
        events = cls(registry.watch(service))
        await asyncio.sleep(0.05)  # a lazy async generator subscribes on its first step
        return events

    async def _pump(self) -> None:
        try:
            async for result in self._iterator:
                await self._queue.put(result)
        finally:
            await self._queue.put(None)

    async def next(self, name: str | None, timeout: float) -> Result | None:
        """The next result about ``name`` (others are skipped; ``None``: the very next one).

        Returns ``None`` when the watch ended.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                result = await asyncio.wait_for(self._queue.get(), max(remaining, 0.001))
            except TimeoutError:
                raise AssertionError(f"no watch result for {name} within {timeout} s") from None
            if result is None or name is None or result.service.name == name:
                return result

    async def expect(self, name: str, action: str, timeout: float) -> Service:
        result = await self.next(name, timeout)
        assert result is not None, f"watch ended while waiting for {action} of {name}"
        assert result.action == action, f"expected {action} of {name}, got {result.action}"
        return result.service

    async def ended(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        aclose = getattr(self._iterator, "aclose", None)
        if aclose is not None:
            await aclose()


# -- the checks ---------------------------------------------------------------------------


async def register_then_get_from_another_instance(make: RegistryFactory, settle: float) -> None:
    name = _name("get")
    svc = _service(name, "1.0.0", _node(name, 50051, protocol="mucp"), _node(name, 50052))
    async with _open(make) as a, _open(make) as b:
        await a.register(svc, ttl=30)
        found = await _eventually(
            lambda: _lookup(b, name), lambda s: len(_nodes(s)) == 2, settle, name
        )
        assert [s.name for s in found] == [name]
        assert found[0].endpoints == svc.endpoints, found[0].endpoints
        assert _shape(found) == _shape([svc]), _shape(found)
        assert _shape(await a.get_service(name)) == _shape([svc])


async def unknown_service_is_not_found(make: RegistryFactory, settle: float) -> None:
    name = _name("unknown")
    async with _open(make) as registry:
        for _ in range(2):  # also on the second, possibly cached, lookup
            try:
                await registry.get_service(name)
            except ServiceNotFound as exc:
                code = exc.code
            else:
                raise AssertionError("get_service of an unknown name returned")
            assert code == 404, code


async def versions_are_grouped(make: RegistryFactory, settle: float) -> None:
    name = _name("versions")
    one, two, three = _node(name, 1001), _node(name, 1002), _node(name, 1003)
    async with _open(make) as a, _open(make) as b:
        await a.register(_service(name, "1.0.0", one), ttl=30)
        await a.register(_service(name, "1.0.0", two), ttl=30)
        await a.register(_service(name, "2.0.0", three), ttl=30)
        found = await _eventually(
            lambda: _lookup(b, name), lambda s: len(_nodes(s)) == 3, settle, name
        )
        got = {s.version: {n.id for n in s.nodes} for s in found}
        assert got == {"1.0.0": {one.id, two.id}, "2.0.0": {three.id}}, got
        assert len(found) == 2


async def list_services_names_it(make: RegistryFactory, settle: float) -> None:
    name = _name("list")
    async with _open(make) as a, _open(make) as b:
        await a.register(_service(name), ttl=30)
        listed = await _eventually(
            b.list_services, lambda s: name in {x.name for x in s}, settle, "list_services"
        )
        assert all(isinstance(s, Service) for s in listed)


async def deregister_removes_only_those_nodes(make: RegistryFactory, settle: float) -> None:
    name = _name("dereg")
    keep, drop = _node(name, 2001), _node(name, 2002)
    async with _open(make) as a, _open(make) as b:
        await a.register(_service(name, "1.0.0", keep, drop), ttl=30)
        await _eventually(lambda: _lookup(b, name), lambda s: len(_nodes(s)) == 2, settle, name)
        await a.deregister(_service(name, "1.0.0", drop))
        await a.deregister(_service(name, "1.0.0", _node(name, 2003)))  # unknown: ignored
        left = await _eventually(
            lambda: _lookup(b, name), lambda s: _ids(s) == {keep.id}, settle, "partial deregister"
        )
        assert _shape(left) == _shape([_service(name, "1.0.0", keep)])
        await a.deregister(_service(name, "1.0.0", keep))
        await _eventually(lambda: _lookup(b, name), lambda s: s == [], settle, "deregister")
        assert await _lookup(a, name) == []


async def ttl_expiry_removes_the_node(make: RegistryFactory, settle: float) -> None:
    name, ttl = _name("ttl"), 1.0
    async with _open(make) as a, _open(make) as b:
        events = await _Events.start(b, name)
        try:
            registered = time.monotonic()  # the TTL runs from the register, not its event
            await a.register(_service(name), ttl=ttl)
            await events.expect(name, "create", settle)
            await events.expect(name, "delete", ttl + settle)
            took = time.monotonic() - registered
            assert took >= ttl * 0.9, f"expired after {took:.2f} s, before its {ttl} s TTL"
            assert await _lookup(b, name) == []
        finally:
            await events.close()


async def watch_sees_create_update_delete(make: RegistryFactory, settle: float) -> None:
    name = _name("watch")
    node = _node(name, 3001, protocol="mucp")
    async with _open(make) as a, _open(make) as b:
        only, every = await _Events.start(b, name), await _Events.start(b, None)
        try:
            await a.register(_service(name, "1.0.0", node), ttl=30)
            for events in (only, every):
                created = await events.expect(name, "create", settle)
                assert _ids([created]) == {node.id}
            changed = Node(node.id, node.address, {"protocol": "mucp", "color": "blue"})
            await a.register(_service(name, "1.0.0", changed), ttl=30)
            await a.register(_service(name, "1.0.0", changed), ttl=30)  # unchanged: no event
            for events in (only, every):
                updated = await events.expect(name, "update", settle)
                assert updated.nodes[0].metadata == changed.metadata, updated
            await a.deregister(_service(name, "1.0.0", changed))
            for events in (only, every):
                deleted = await events.expect(name, "delete", settle)
                assert _ids([deleted]) == {node.id}
        finally:
            await only.close()
            await every.close()


async def watch_filters_by_name(make: RegistryFactory, settle: float) -> None:
    name, other = _name("mine"), _name("other")
    async with _open(make) as a, _open(make) as b:
        events = await _Events.start(b, name)
        try:
            mine, theirs = _service(name), _service(other)
            await a.register(theirs, ttl=30)
            await a.register(mine, ttl=30)
            await a.deregister(theirs)
            await a.deregister(mine)
            seen = [await events.next(None, settle) for _ in range(2)]
            got = [(r.action, r.service.name) if r else None for r in seen]
            assert got == [("create", name), ("delete", name)], got
        finally:
            await events.close()


async def reregister_is_idempotent(make: RegistryFactory, settle: float) -> None:
    name = _name("again")
    svc = _service(name)
    async with _open(make) as a, _open(make) as b:
        events = await _Events.start(b, name)
        try:
            for _ in range(5):
                await a.register(svc, ttl=30)
            await events.expect(name, "create", settle)
            found = await _eventually(lambda: _lookup(b, name), bool, settle, name)
            assert _shape(found) == _shape([svc])
            await a.deregister(svc)
            await events.expect(name, "delete", settle)  # nothing came between
        finally:
            await events.close()


async def close_ends_watches_and_is_idempotent(make: RegistryFactory, settle: float) -> None:
    made: list[Registry] = []
    async with _open(make) as registry:
        made.append(registry)
        events = await _Events.start(registry, None)
    assert await events.ended(settle), "a watch outlived its registry"
    await made[0].close()  # again: never raises
    await events.close()


def _nodes(services: list[Service]) -> list[Node]:
    return [n for s in services for n in s.nodes]


def _ids(services: list[Service]) -> set[str]:
    return {n.id for n in _nodes(services)}


CHECKS: dict[str, Check] = {
    "register_then_get_from_another_instance": register_then_get_from_another_instance,
    "unknown_service_is_not_found": unknown_service_is_not_found,
    "versions_are_grouped": versions_are_grouped,
    "list_services_names_it": list_services_names_it,
    "deregister_removes_only_those_nodes": deregister_removes_only_those_nodes,
    "ttl_expiry_removes_the_node": ttl_expiry_removes_the_node,
    "watch_sees_create_update_delete": watch_sees_create_update_delete,
    "watch_filters_by_name": watch_filters_by_name,
    "reregister_is_idempotent": reregister_is_idempotent,
    "close_ends_watches_and_is_idempotent": close_ends_watches_and_is_idempotent,
}
"""Every check by name: ``await CHECKS[name](make, settle)`` runs one."""
