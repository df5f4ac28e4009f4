"""The Consul registry, in go-micro's layout (docs/registry-consul.md), over py-consul.

One Consul agent service per node: ID = node id, Name = service name, Address/Port from the
node, and version, endpoints and node metadata in ``v-``/``e-``/``t-`` tags (see
:mod:`micro.registry._consul_tags`), so Go services in the same Consul see Python ones and
back. With a TTL, a TTL check ``service:<id>`` is attached, with
DeregisterCriticalServiceAfter = max(TTL, 1 min) + 5 s; every re-register of an unchanged
node only passes the check (a full register again if the agent forgot it).

``get_service`` reads ``/v1/health/service/<name>`` and drops nodes with a critical check (a
TTL that lapsed); ``list_services`` reads the catalog (name-only entries, without Consul's own
``consul`` service); ``watch`` runs blocking queries (``index``/``wait``) and reports the
differences. The tests run against a stand-in of the agent API
(``tests/registry/consul/agent.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import aiohttp
import msgspec
from consul import ConsulException  # type: ignore[import-untyped,unused-ignore]

from micro.errors import RegistryError, ServiceNotFound, translate
from micro.registry import Registry, Result, Service, group_by_version
from micro.registry._consul_http import ConsulClient
from micro.registry._consul_tags import decode_entry, encode_tags, node_address
from micro.registry._watch import Follow, WatchQueue, diff, watch_queue

__all__ = ["ConsulRegistry"]

log = logging.getLogger("micro.registry.consul")

DEFAULT_ADDRESS = "127.0.0.1:8500"
_ID = "go.micro.registry"
_DRIVER_ERRORS = (ConsulException, aiohttp.ClientError, ValueError)  # ValueError: bad JSON
_ERRORS = (*_DRIVER_ERRORS, OSError, TimeoutError)


def _failing(what: str) -> contextlib.AbstractContextManager[None]:
    """Consul's failures in the block as :class:`RegistryError` ("consul registry: <what>")."""
    return translate(
        RegistryError, f"consul registry: {what}", id=_ID, driver_errors=_DRIVER_ERRORS
    )


class ConsulRegistry(Registry):
    """Registry on a Consul agent.

    Args:
        address: the agent, ``host:port`` or ``http(s)://host:port`` (first of a comma
            list); default ``MICRO_REGISTRY_ADDRESS``, else ``127.0.0.1:8500``.
        token: ACL token (``X-Consul-Token``).
        tls_verify: for https: verify the agent's certificate (or a CA bundle path).
        cert: client certificate for https (path, or ``(cert, key)``).
        timeout: seconds to connect to the agent.
        watch_wait: the longest one blocking query of a watch waits, in seconds.
        allow_stale: let any Consul server answer reads (go-micro's default).
    """

    name = "consul"

    def __init__(
        self,
        *,
        address: str | Sequence[str] | None = None,
        token: str | None = None,
        tls_verify: bool | str = True,
        cert: Any = None,
        timeout: float = 5.0,
        watch_wait: float = 30.0,
        allow_stale: bool = True,
    ) -> None:
        address = address or DEFAULT_ADDRESS
        first = (address.split(",") if isinstance(address, str) else list(address))[0].strip()
        scheme, _, hostport = first.rpartition("://")
        self.scheme = scheme or "http"
        host, _, port = hostport.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"consul address {first!r} must be host:port")
        self.host, self.port = host, int(port)
        self._options = {"token": token, "verify": tls_verify, "cert": cert, "timeout": timeout}
        self.watch_wait = watch_wait
        self._consistency = "stale" if allow_stale else "default"
        self._client: ConsulClient | None = None
        self._registered: dict[str, bytes] = {}  # node id -> what we last registered
        self._watchers: set[WatchQueue] = set()

    async def start(self) -> None:
        """Create the HTTP client (connections are made per request)."""
        if self._client is None:
            self._client = ConsulClient(
                host=self.host,
                port=self.port,
                scheme=self.scheme,
                consistency=self._consistency,
                **self._options,
            )

    async def close(self) -> None:
        for queue in list(self._watchers):
            queue.put_nowait(None)
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(*_ERRORS):
                await client.close()

    async def _api(self) -> ConsulClient:
        await self.start()
        assert self._client is not None
        return self._client

    # -- registering ----------------------------------------------------------------------

    async def register(self, service: Service, *, ttl: float | None = None) -> None:
        api = await self._api()
        for node in service.nodes:
            one = msgspec.structs.replace(service, nodes=[node])
            fingerprint = msgspec.json.encode([one, ttl])
            unchanged = self._registered.pop(node.id, None) == fingerprint  # kept on success
            with _failing(f"register {node.id}"):
                heartbeat = unchanged and ttl  # then a TTL pass is enough, if the check is there
                if not (heartbeat and await api.agent.check.ttl_pass(f"service:{node.id}")):
                    await self._register_node(api, one, ttl)
            self._registered[node.id] = fingerprint

    async def _register_node(self, api: ConsulClient, service: Service, ttl: float | None) -> None:
        node = service.nodes[0]
        host, port = node_address(node)
        check = None
        if ttl:
            after = max(ttl, 60.0) + 5.0
            check = {
                "CheckID": f"service:{node.id}",
                "TTL": _duration(ttl),
                "DeregisterCriticalServiceAfter": _duration(after),
                "Status": "passing",
            }
        await api.agent.service.register(
            service.name,
            service_id=node.id,
            address=host,
            port=port,
            tags=encode_tags(service, node),
            check=check,
        )
        if ttl:
            await api.agent.check.ttl_pass(f"service:{node.id}")

    async def deregister(self, service: Service) -> None:
        api = await self._api()
        for node in service.nodes:
            self._registered.pop(node.id, None)
            with _failing(f"deregister {node.id}"):
                await api.agent.service.deregister(node.id)  # unknown id: False, not an error

    # -- looking up -----------------------------------------------------------------------

    async def get_service(self, name: str) -> list[Service]:
        _, nodes = await self._health(name)
        if not nodes:
            raise ServiceNotFound(f"service {name}: not found", id=_ID)
        return group_by_version(nodes.values())

    async def list_services(self) -> list[Service]:
        _, names = await self._catalog()
        return [Service(name) for name in sorted(names)]

    async def _health(
        self, name: str, index: str | None = None
    ) -> tuple[str | None, dict[str, Service]]:
        """Live nodes of ``name`` by node id (blocking when ``index`` is given)."""
        api = await self._api()
        wait = _duration(self.watch_wait) if index else None
        with _failing(f"lookup {name}"):
            index, entries = await api.health.service(name, index=index, wait=wait)
        nodes = {}
        for entry in entries or []:
            svc = decode_entry(entry)
            if svc is not None and svc.name == name:
                nodes[svc.nodes[0].id] = svc
        return index, nodes

    async def _catalog(self, index: str | None = None) -> tuple[str | None, set[str]]:
        api = await self._api()
        wait = _duration(self.watch_wait) if index else None
        with _failing("list"):
            index, names = await api.catalog.services(index=index, wait=wait)
        return index, {n for n in (names or {}) if n != "consul"}

    # -- watching -------------------------------------------------------------------------

    async def watch(self, service: str | None = None) -> AsyncGenerator[Result, None]:
        await self._api()
        follow: Follow = self._watch_all
        if service is not None:
            follow = functools.partial(self._watch_service, service, report_first=False)
        async with contextlib.aclosing(watch_queue(self._watchers, follow)) as results:
            async for result in results:
                yield result

    async def _watch_service(
        self,
        name: str,
        queue: WatchQueue,
        ready: asyncio.Future[None] | None,
        report_first: bool,
    ) -> None:
        """Blocking queries on one service; the first answer is the baseline (or reported)."""
        index: str | None = None
        known: dict[str, Service] = {}
        failures = 0
        while True:
            try:
                new_index, nodes = await self._health(name, index)
            except RegistryError as exc:
                failures += 1
                delay = min(5.0, 0.1 * 2**failures)
                log.warning("consul registry: watch %s: %s; retry in %.1f s", name, exc, delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            if index is not None or report_first:
                for result in diff(known, nodes):
                    queue.put_nowait(result)
            known = nodes
            if ready is not None and not ready.done():
                ready.set_result(None)
            index = _next_index(index, new_index)

    async def _watch_all(self, queue: WatchQueue, ready: asyncio.Future[None]) -> None:
        """Blocking queries on the catalog, one service watch per name."""
        tasks: dict[str, asyncio.Task[None]] = {}
        index: str | None = None
        try:
            while True:
                try:
                    new_index, names = await self._catalog(index)
                except RegistryError as exc:
                    log.warning("consul registry: watch: %s; retrying", exc)
                    await asyncio.sleep(1.0)
                    continue
                waits = []
                for name in names:
                    if name not in tasks:  # kept for the whole watch: names may come back
                        first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                        tasks[name] = asyncio.ensure_future(
                            self._watch_service(name, queue, first, index is not None)
                        )
                        waits.append(first)
                if waits:
                    await asyncio.wait(waits)
                if not ready.done():
                    ready.set_result(None)
                index = _next_index(index, new_index)
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)


def _next_index(old: str | None, new: str | None) -> str | None:
    """Consul's rule: an index that went backwards (agent restarted) starts over."""
    if new is None or (old is not None and int(new) < int(old)):
        return None
    return new


def _duration(seconds: float) -> str:
    """Seconds as a Go duration Consul accepts (whole milliseconds)."""
    return f"{math.ceil(seconds * 1000)}ms"
