"""The default selector: a registry cache kept current by a watch, and a failure blacklist.

:class:`RegistrySelector` answers ``select`` from memory. Per service name it caches the
registry's answer for ``ttl`` seconds (1 minute, as go-micro's registry cache). The first
lookup starts **one** ``registry.watch()`` over all services (one stream however many services
the client calls, as go-micro's cache did; results for uncached services are ignored), and its
create/update/delete results are applied to the cache, so a running client learns of new and
removed nodes without asking the registry per call. The TTL refetch is only the safety net for
missed results. If the watch fails or ends, it is restarted with backoff and every entry is
refetched on its next use.

**A registry that forgets a node does not take it away from callers.** A ``delete`` result
naming a node removes it at once. A lookup that merely no longer lists a node (an etcd
restarted empty, a store reset, a watch gap: the registry says "not found" or names fewer
nodes, and nothing said "delete") keeps it as *unlisted* if a call to it succeeded within
the last ``ttl`` and it is not skipped for failures; it is called like any other node. It is
listed again by a ``create``/``update`` result or a lookup naming it, and it leaves once it
is skipped for failures (a listed node would be offered again later; an unlisted one is
dropped) or when a lookup made a whole ``ttl`` after it went unlisted still does not name
it. A node that no call reached lately is not kept: with no evidence of its own, the
selector takes the registry's word.

When the registry fails (:class:`~micro.errors.RegistryError`) and a cached entry exists, the
stale entry is served (a warning is logged once per outage and service) while a background task
retries the registry with go-micro's backoff (10 ms, 100 ms, 1 s, ... capped at 30 s). An
unknown service raises :class:`~micro.errors.ServiceNotFound`, as the registry does.

:meth:`RegistrySelector.mark` keeps go-plugins' blacklist: ``failures`` (3) consecutive failures
of a node skip it for ``blacklist_for`` (30 s); then it is tried again (half-open: one more
failure skips it for another window, one success clears it). Only failures that say the node
is unwell count: errors that are not :class:`~micro.errors.MicroError`, timeouts (408) and
5xx; a 4xx answer proves the node alive and counts as a success.

**Outlier ejection** extends the same blacklist (one mechanism, one ``_Mark`` per node):
with ``eject_rate`` set, a node whose failures reach that share of at least
``eject_min_calls`` calls within ``eject_window`` seconds is skipped for ``blacklist_for``
too, even without consecutive failures; and at most ``eject_max`` of a service's nodes are
skipped at once (the worst, by failures): the rest are offered despite their marks, so a
fault seen by many nodes (often the caller's own) cannot empty the service.

**Every node blacklisted:** the selector then offers all of them anyway (fails open), where
go-plugins raised ``ErrNoneAvailable``. Refusing every call for 30 s turns a blip seen by
all nodes into an outage and hides recovery; a dead node fails fast anyway (the same choice
as Envoy's panic threshold). Nodes blacklisted while others are healthy are never offered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import msgspec

from micro._window import Window
from micro.errors import MicroError, NoneAvailable, RegistryError, ServiceNotFound
from micro.registry import Node, Registry, Result, Service
from micro.selector import Filter, Next, Selector
from micro.selector.strategies import Strategy
from micro.selector.strategies import strategy as strategy_named

__all__ = ["RegistrySelector"]

log = logging.getLogger("micro.selector")


def _backoff(attempt: int) -> float:
    """go-micro's registry-cache backoff: 10^attempt ms (attempt >= 1), capped at 30 s."""
    return min(10.0 ** min(attempt, 6) / 1000.0, 30.0)


def _is_failure(error: BaseException) -> bool:
    if isinstance(error, MicroError):
        return error.code >= 500 or error.code == 408
    return True


def _normalise(services: Sequence[Service]) -> list[Service]:
    """Nodes sorted by id, versions by name: a stable order keeps round robin fair."""
    out = [
        msgspec.structs.replace(s, nodes=sorted(s.nodes, key=lambda n: n.id))
        for s in services
        if s.nodes
    ]
    return sorted(out, key=lambda s: s.version)


def _merge(services: list[Service], result: Result) -> list[Service]:
    """``services`` with one watch result applied (copy on write: Next keeps old lists)."""
    changed = result.service
    ids = {node.id for node in changed.nodes}
    add = result.action != "delete"
    out: list[Service] = []
    placed = False
    for service in services:
        keep = [node for node in service.nodes if node.id not in ids]
        if add and service.version == changed.version:
            placed = True
            out.append(
                msgspec.structs.replace(
                    service,
                    nodes=keep + list(changed.nodes),
                    endpoints=changed.endpoints or service.endpoints,
                    metadata=changed.metadata or service.metadata,
                )
            )
        elif len(keep) == len(service.nodes):
            out.append(service)
        elif keep:
            out.append(msgspec.structs.replace(service, nodes=keep))
    if add and not placed:
        out.append(changed)
    return _normalise(out)


def _with_nodes(services: list[Service], old: list[Service], ids: Iterable[str]) -> list[Service]:
    """``services`` plus the nodes of ``old`` named in ``ids``, each under its old version."""
    wanted = set(ids)
    if not wanted:
        return services
    out = list(services)
    for service in old:
        nodes = [node for node in service.nodes if node.id in wanted]
        if not nodes:
            continue
        at = next((i for i, s in enumerate(out) if s.version == service.version), None)
        if at is None:
            out.append(msgspec.structs.replace(service, nodes=nodes))
        else:
            out[at] = msgspec.structs.replace(out[at], nodes=out[at].nodes + nodes)
    return _normalise(out)


class _Entry:
    __slots__ = ("answered", "expires", "nodes", "services", "stale", "unlisted")

    def __init__(
        self,
        services: list[Service],
        expires: float,
        *,
        stale: bool = False,
        answered: dict[str, float] | None = None,
        unlisted: dict[str, float] | None = None,
    ) -> None:
        self.services = services
        self.nodes = tuple(node for service in services for node in service.nodes)
        self.expires = expires
        self.stale = stale  # the registry failed; a recovery task is retrying it
        self.answered = answered or {}  # node id -> when a call to it last succeeded
        self.unlisted = unlisted or {}  # node id -> since when the registry has not listed it

    def evolve(self, services: list[Service], listed: Iterable[str] = ()) -> _Entry:
        """This entry with ``services``; nodes in ``listed`` are the registry's again."""
        ids = {node.id for service in services for node in service.nodes}
        unlisted = {i: t for i, t in self.unlisted.items() if i in ids}
        for node_id in listed:
            unlisted.pop(node_id, None)
        answered = {i: t for i, t in self.answered.items() if i in ids}
        return _Entry(
            services, self.expires, stale=self.stale, answered=answered, unlisted=unlisted
        )


def _fails(marks: dict[str, _Mark], node: Node) -> int:
    mark = marks.get(node.id)
    return mark.failures if mark is not None else 0


class _Mark:
    __slots__ = ("failures", "until")

    def __init__(self) -> None:
        self.failures = 0
        self.until = 0.0


class RegistrySelector(Selector):
    """Selects from a watched cache of ``registry``; skips failing nodes for a while.

    Args:
        registry: where services are looked up and watched.
        strategy: a :class:`Strategy` or its name (``round_robin``, ``random``, ``hashed``).
        ttl: seconds a cached lookup is trusted before it is fetched again (watch results
            keep it current in between).
        failures: consecutive failures after which a node is skipped.
        blacklist_for: seconds a failing node is skipped before it is tried again.
        eject_rate: also skip a node whose failure rate reaches this (0: off).
        eject_window: seconds the failure rate is computed over.
        eject_min_calls: calls within the window before the rate can eject a node.
        eject_max: the largest share of a service's nodes skipped at once (1: all, and
            then every node is offered).
        clock: the monotonic time source (tests pass a fake one).

    The watch starts with :meth:`start` or the first ``select``; :meth:`close` stops it.
    After ``close`` the selector still answers (from the cache, then the registry) but
    starts no background task until :meth:`start` is called again.
    """

    name = "registry"

    def __init__(
        self,
        registry: Registry,
        *,
        strategy: Strategy | str = "round_robin",
        ttl: float = 60.0,
        failures: int = 3,
        blacklist_for: float = 30.0,
        eject_rate: float = 0.0,
        eject_window: float = 10.0,
        eject_min_calls: int = 10,
        eject_max: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1:
            raise ValueError("failures must be at least 1")
        if not (0.0 <= eject_rate <= 1.0 and 0.0 <= eject_max <= 1.0 and eject_window > 0):
            raise ValueError("eject_rate and eject_max must be in [0, 1], eject_window > 0")
        self.eject_rate = eject_rate
        self.eject_window = eject_window
        self.eject_min_calls = eject_min_calls
        self.eject_max = eject_max
        self._rates: dict[tuple[str, str], Window] = {}
        self.registry = registry
        self.strategy = strategy_named(strategy) if isinstance(strategy, str) else strategy
        self.ttl = ttl
        self.failures = failures
        self.blacklist_for = blacklist_for
        self._clock = clock
        self._cache: dict[str, _Entry] = {}
        self._marks: dict[str, dict[str, _Mark]] = {}
        self._inflight: dict[str, asyncio.Task[_Entry]] = {}
        self._pending: dict[str, list[list[Result]]] = {}  # watch results during a fetch
        self._recovering: dict[str, asyncio.Task[None]] = {}
        self._watch: asyncio.Task[None] | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"RegistrySelector({self.registry!r}, strategy={self.strategy!r})"

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._closed = False
        if self._watch is None or self._watch.done():
            self._watch = asyncio.create_task(self._watch_loop(), name="micro-selector-watch")
            await asyncio.sleep(0)  # let the watch subscribe before the first lookup returns

    async def close(self) -> None:
        self._closed = True
        tasks = [*self._inflight.values(), *self._recovering.values()]
        if self._watch is not None:
            tasks.append(self._watch)
        self._watch = None
        self._inflight.clear()
        self._recovering.clear()
        for entry in self._cache.values():
            entry.stale = False  # nothing retries in the background any more
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- Selector --------------------------------------------------------------------------

    async def select(
        self,
        service: str,
        *,
        filters: Sequence[Filter] = (),
        metadata: Mapping[str, str] | None = None,
    ) -> Next:
        entry = self._cache.get(service)
        if entry is None or (entry.expires <= self._clock() and not entry.stale):
            entry = await self._lookup(service)
        nodes: Sequence[Node] = entry.nodes
        if filters:
            services = list(entry.services)
            for keep in filters:
                services = keep(services)
            nodes = [node for s in services for node in s.nodes]
        if not nodes:
            raise NoneAvailable(f"service {service}: none available", id="go.micro.selector")
        marks = self._marks.get(service)
        if marks:
            nodes = self._usable(nodes, marks)
        return self.strategy(service, nodes, metadata)

    def mark(self, service: str, node: Node, error: BaseException | None) -> None:
        if isinstance(error, asyncio.CancelledError):
            return  # says nothing about the node
        marks = self._marks.get(service)
        failed = error is not None and _is_failure(error)
        if self.eject_rate and self._rate_ejects(service, node, failed):
            marks = marks if marks is not None else self._marks.setdefault(service, {})
            ejected = marks.setdefault(node.id, _Mark())
            ejected.failures = max(ejected.failures, self.failures - 1)
        if not failed:
            entry = self._cache.get(service)
            if entry is not None:
                entry.answered[node.id] = self._clock()
            if marks and marks.pop(node.id, None) is not None and not marks:
                del self._marks[service]
            return
        if marks is None:
            marks = self._marks[service] = {}
        state = marks.get(node.id)
        if state is None:
            state = marks[node.id] = _Mark()
        state.failures += 1
        if state.failures >= self.failures:
            state.until = self._clock() + self.blacklist_for
            if state.failures == self.failures:
                log.info(
                    "node %s of %s failed %d times: skipped for %.0f s",
                    node.id,
                    service,
                    state.failures,
                    self.blacklist_for,
                )
            self._drop_unlisted(service, node)

    def ejected(self) -> int:
        """Nodes skipped for failures now, every service together."""
        now = self._clock()
        return sum(m.until > now for marks in self._marks.values() for m in marks.values())

    def _rate_ejects(self, service: str, node: Node, failed: bool) -> bool:
        """Count the outcome; whether the node's failure rate now ejects it."""
        key = (service, node.id)
        now = self._clock()
        window = self._rates.get(key)
        if window is None:
            if len(self._rates) >= 4096:
                self._rates.clear()
            window = self._rates[key] = Window(self.eject_window, now)
        window.add(now, failed)
        if (
            failed
            and window.calls >= self.eject_min_calls
            and window.failures >= self.eject_rate * window.calls
        ):
            window.clear()
            return True
        return False

    def reset(self, service: str) -> None:
        self._cache.pop(service, None)
        self._marks.pop(service, None)
        self.strategy.reset(service)
        recovering = self._recovering.pop(service, None)
        if recovering is not None:
            recovering.cancel()

    # -- lookups ---------------------------------------------------------------------------

    def _usable(self, nodes: Sequence[Node], marks: dict[str, _Mark]) -> Sequence[Node]:
        now = self._clock()
        usable = [n for n in nodes if (m := marks.get(n.id)) is None or m.until <= now]
        skipped = len(nodes) - len(usable)
        if skipped and usable and self.eject_max < 1.0:
            allowed = int(self.eject_max * len(nodes))
            if skipped > allowed:  # offer the least failing of the skipped ones again
                out = sorted((n for n in nodes if n not in usable), key=lambda n: -_fails(marks, n))
                keep = {n.id for n in out[allowed:]}
                usable = [n for n in nodes if n.id in keep or n in usable]
        return usable or nodes  # all skipped: fail open (module docstring)

    async def _lookup(self, service: str) -> _Entry:
        """Fetch ``service`` once however many callers wait for it."""
        if self._closed:
            return await self._fetch(service)
        if self._watch is None:
            await self.start()
        task = self._inflight.get(service)
        if task is None:
            task = asyncio.create_task(self._fetch(service), name=f"micro-selector-get-{service}")
            self._inflight[service] = task
            task.add_done_callback(lambda done: self._fetched(service, done))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and current is not None and not current.cancelling():
                raise RegistryError(
                    "selector closed during lookup", id="go.micro.selector"
                ) from None
            raise

    def _fetched(self, service: str, task: asyncio.Task[_Entry]) -> None:
        if self._inflight.get(service) is task:
            del self._inflight[service]
        if not task.cancelled():
            task.exception()  # retrieved here; the waiters get it too

    async def _fetch(self, service: str) -> _Entry:
        try:
            return await self._snapshot(service)
        except RegistryError as exc:
            entry = self._cache.get(service)
            if entry is None:
                raise
            self._go_stale(service, entry, exc)
            return entry

    async def _snapshot(self, service: str) -> _Entry:
        """``get_service`` into the cache, replaying watch results that arrived meanwhile."""
        buffer: list[Result] = []
        self._pending.setdefault(service, []).append(buffer)
        try:
            services = await self.registry.get_service(service)
        except ServiceNotFound:
            services = []
        finally:
            buffers = self._pending.get(service, [])
            if buffer in buffers:
                buffers.remove(buffer)
            if not buffers:
                self._pending.pop(service, None)
        entry = self._refreshed(service, _normalise(services))
        if entry is None:
            self._cache.pop(service, None)
            raise ServiceNotFound(f"service {service}: not found", id="go.micro.registry")
        self._cache[service] = entry
        for result in buffer:
            self._apply(result)
        if self._cache.get(service) is None:  # the replay deleted every node
            raise ServiceNotFound(f"service {service}: not found", id="go.micro.registry")
        return self._cache.get(service, entry)

    def _refreshed(self, service: str, services: list[Service]) -> _Entry | None:
        """The entry for the registry's new answer (None: no node), keeping the nodes it left
        out that still answer calls (see the module docstring)."""
        now = self._clock()
        old = self._cache.get(service)
        if old is None:
            return _Entry(services, now + self.ttl) if services else None
        keep = self._unlisted(service, old, services, now)
        if keep.keys() - old.unlisted.keys():
            names = ", ".join(sorted(keep))
            log.warning(
                "the registry no longer lists %s nodes that answer: kept %s", service, names
            )
        services = _with_nodes(services, old.services, keep)
        if not services:
            return None
        entry = old.evolve(services)
        entry.expires, entry.stale, entry.unlisted = now + self.ttl, False, keep
        return entry

    def _unlisted(
        self, service: str, old: _Entry, services: list[Service], now: float
    ) -> dict[str, float]:
        """Nodes of ``old`` missing from ``services`` that answered a call within ``ttl``,
        are not skipped for failures, and have not gone unlisted for a whole ``ttl``."""
        listed = {node.id for s in services for node in s.nodes}
        marks = self._marks.get(service, {})
        keep: dict[str, float] = {}
        for node in old.nodes:
            answered = old.answered.get(node.id)
            since = old.unlisted.get(node.id, now)
            mark = marks.get(node.id)
            if (
                node.id not in listed
                and answered is not None
                and answered > now - self.ttl
                and since > now - self.ttl
                and (mark is None or mark.failures < self.failures)
            ):
                keep[node.id] = since
        return keep

    def _drop_unlisted(self, service: str, node: Node) -> None:
        """A node the registry no longer lists was skipped for failures: it is gone."""
        entry = self._cache.get(service)
        if entry is None or node.id not in entry.unlisted:
            return
        log.info("node %s of %s is not in the registry and fails: dropped", node.id, service)
        self._change(service, entry, Result("delete", Service(name=service, nodes=[node])))

    def _go_stale(self, service: str, entry: _Entry, exc: RegistryError) -> None:
        if entry.stale:
            return
        log.warning(
            "registry failed looking up %s (%s); serving %d cached nodes until it answers",
            service,
            exc.detail or repr(exc),
            len(entry.nodes),
        )
        if self._closed:
            return  # no background retry: the next select past the TTL asks again
        entry.stale = True
        if service not in self._recovering:
            task = asyncio.create_task(self._recover(service), name=f"micro-selector-{service}")
            self._recovering[service] = task

    async def _recover(self, service: str) -> None:
        attempt = 1
        try:
            while service in self._cache:
                await asyncio.sleep(_backoff(attempt))
                try:
                    await self._snapshot(service)
                except ServiceNotFound:
                    return
                except Exception as exc:  # RegistryError, or a backend bug: keep retrying
                    log.debug("registry still failing for %s: %r", service, exc)
                    attempt += 1
                    continue
                log.info("registry answers again for %s", service)
                return
        finally:
            if self._recovering.get(service) is asyncio.current_task():
                del self._recovering[service]

    # -- the watch -------------------------------------------------------------------------

    async def _watch_loop(self) -> None:
        attempt = 0
        # checked, not only cancelled: a watch that swallows the cancellation (Python 3.11's
        # wait_for does when the awaited event is set at the same moment, as a registry's
        # close does) ends normally, and the loop must not start a new one after close()
        while not self._closed:
            if attempt:
                await asyncio.sleep(_backoff(attempt))
                for entry in self._cache.values():
                    entry.expires = float("-inf")  # results may have been missed: refetch
            watch: Any = None
            try:
                watch = self.registry.watch(None)
                async for result in watch:
                    attempt = 0
                    self._apply(result)
                log.debug("registry watch ended; restarting it")
            except Exception as exc:  # a backend bug must not stop cache updates for good
                log.warning("registry watch failed (%r); restarting it", exc)
            finally:
                aclose = getattr(watch, "aclose", None)
                if aclose is not None:
                    await aclose()
            attempt += 1

    def _apply(self, result: Result) -> None:
        name = result.service.name
        for buffer in self._pending.get(name, ()):
            buffer.append(result)
        entry = self._cache.get(name)
        if entry is not None:
            self._change(name, entry, result)

    def _change(self, name: str, entry: _Entry, result: Result) -> None:
        """Apply one create, update or delete of ``name``'s nodes to its cached entry."""
        listed: list[str] = []
        if result.action == "delete":
            marks = self._marks.get(name)
            if marks:
                for node in result.service.nodes:
                    marks.pop(node.id, None)
                if not marks:
                    del self._marks[name]
        else:
            listed = [node.id for node in result.service.nodes]
        services = _merge(entry.services, result)
        if services:
            self._cache[name] = entry.evolve(services, listed)
        else:
            del self._cache[name]  # every node was deleted: "not found", as the registry says
