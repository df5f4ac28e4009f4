"""Catalog: a live index of the services the gateway can reach, fed by a registry watch.

It serves three readers: the OpenAPI document (endpoint schemas), the ``meta`` handler
(endpoints that declare routing metadata ``path``/``method``/``host``/``handler``, as
go-micro's ``api.Endpoint``) and the WebSocket handler (which endpoints stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass

from micro.errors import MicroError, ServiceNotFound
from micro.registry import Endpoint, Registry, Service
from micro.toolkit.api.resolver import Route, in_namespace

__all__ = ["Catalog", "MetaRoute"]

log = logging.getLogger("micro.api")
_RETRY = 1.0


@dataclass(frozen=True, slots=True)
class MetaRoute:
    """An endpoint that asked for its own route through its registry metadata."""

    service: str
    endpoint: str
    handler: str
    paths: tuple[re.Pattern[str], ...]
    methods: frozenset[str]
    hosts: frozenset[str]

    def matches(self, method: str, path: str, host: str) -> bool:
        if self.methods and method not in self.methods:
            return False
        if self.hosts and host.rsplit(":", 1)[0] not in self.hosts:
            return False
        return any(p.search(path) for p in self.paths)


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _meta_route(service: str, ep: Endpoint) -> MetaRoute | None:
    md = ep.metadata or {}
    if not md.get("path"):
        return None
    paths = []
    for text in _split(md["path"]):
        try:
            paths.append(re.compile(text))
        except re.error as exc:
            log.warning("%s %s: bad path pattern %r: %s", service, ep.name, text, exc)
    if not paths:
        return None
    return MetaRoute(
        service=service,
        endpoint=md.get("endpoint") or ep.name,
        handler=md.get("handler") or "rpc",
        paths=tuple(paths),
        methods=frozenset(m.upper() for m in _split(md.get("method", ""))),
        hosts=frozenset(_split(md.get("host", ""))),
    )


class Catalog:
    """Services in ``namespace`` with their endpoints, kept current by a registry watch.

    ``version`` increases on every change, so readers can cache what they derive.
    """

    def __init__(self, registry: Registry, namespace: str) -> None:
        self.registry = registry
        self.namespace = namespace
        self.services: dict[str, list[Service]] = {}
        self.version = 0
        self.meta: list[MetaRoute] = []
        self._endpoints: dict[tuple[str, str], Endpoint] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        """Start watching, then load every service once (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="micro-api-catalog")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await self._ready.wait()

    async def close(self) -> None:
        """Stop watching; never raises."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    def endpoint(self, service: str, endpoint: str) -> Endpoint | None:
        """The registered endpoint, or None when not (yet) known."""
        return self._endpoints.get((service, endpoint))

    def match(self, method: str, path: str, host: str) -> Route | None:
        """The route of the first endpoint whose metadata matches the request."""
        for m in self.meta:
            if m.matches(method, path, host):
                return Route(m.service, m.endpoint, path, m.handler)
        return None

    # -- keeping current -----------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                watch = self.registry.watch()
                names = [s.name for s in await self.registry.list_services()]
                for name in dict.fromkeys(names):
                    await self.refresh(name)
                self._ready.set()
                async for result in watch:
                    await self.refresh(result.service.name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the registry failed: keep what we have, try again
                log.warning("registry watch failed (%s); retrying in %.0fs", exc, _RETRY)
                self._ready.set()
                await asyncio.sleep(_RETRY)

    async def refresh(self, name: str) -> None:
        """Fetch ``name`` again (or drop it once gone)."""
        if in_namespace(self.namespace, name) is None:
            return
        try:
            found = await self.registry.get_service(name)
        except ServiceNotFound:
            found = []
        except MicroError as exc:
            log.warning("registry lookup of %s failed: %s", name, exc)
            return
        found = [s for s in found if s.nodes]
        if not found and name not in self.services:
            return
        if found:
            self.services[name] = found
        else:
            self.services.pop(name, None)
        self._reindex()

    def _reindex(self) -> None:
        endpoints: dict[tuple[str, str], Endpoint] = {}
        meta: list[MetaRoute] = []
        for name in sorted(self.services):
            for svc in self.services[name]:
                for ep in svc.endpoints:
                    endpoints.setdefault((name, ep.name), ep)
                    route = _meta_route(name, ep)
                    if route is not None:
                        meta.append(route)
        self._endpoints = endpoints
        self.meta = meta
        self.version += 1
