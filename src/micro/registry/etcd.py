"""The etcd v3 registry, in go-micro's storage layout (so Go services share it).

One key per node, ``<prefix><service>/<node id>`` (``/`` inside either name becomes ``-``),
holding go-micro's one-node Service JSON. A registration with a TTL puts its key under a lease
of that many seconds (rounded up; etcd may raise it to its minimum); registering again renews
the lease once (go-micro's ``KeepAliveOnce``), re-creating it if etcd lost it. Nothing renews a
lease in the background: a node whose process stops re-registering expires after its TTL, as
with every other backend.

Lookups read the prefix and merge nodes per version; :meth:`EtcdRegistry.watch` maps PUT of a
new key to ``create``, PUT of an existing key to ``update`` (unchanged values are skipped),
DELETE to ``delete``, and resumes from the last seen revision after a connection loss.
Entries that are not a valid one-node service (non-JSON, missing fields, a foreign layout)
are skipped with one warning per key; they never fail a lookup or a watch.

See docs/registry-etcd.md for options, TLS, clusters and failure behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Literal

import msgspec

from micro.errors import RegistryError, ServiceNotFound, translate
from micro.registry import (
    Registry,
    Result,
    Service,
    decode_service,
    encode_service,
    group_by_version,
)
from micro.registry._etcd_client import Batch, EtcdClient, EtcdError, Event, KeyValue, WatchGap
from micro.registry._etcd_options import Pem, parse_endpoints, tls_credentials

__all__ = ["DEFAULT_PREFIX", "GO_PLUGINS_PREFIX", "EtcdRegistry"]

log = logging.getLogger("micro.registry.etcd")

DEFAULT_PREFIX = "/micro/registry/"
GO_PLUGINS_PREFIX = "/micro-registry/"
_ID = "go.micro.registry"
_WARNED_LIMIT = 10_000


@dataclass(slots=True)
class _Lease:
    """What this process last wrote for one node key."""

    id: int  # 0: no lease (registered without a TTL)
    ttl: int
    value: bytes


def _escape(name: str) -> str:
    return name.replace("/", "-")


def _failing(doing: str) -> contextlib.AbstractContextManager[None]:
    """etcd's failures in the block as :class:`RegistryError` ("etcd <doing>: ...")."""
    return translate(RegistryError, f"etcd {doing}", id=_ID, driver_errors=(EtcdError,))


class EtcdRegistry(Registry):
    """Service discovery in etcd (API v3).

    Args:
        address: endpoints, as a list or a comma-separated string of ``host[:port]`` or
            ``http(s)://[user:password@]host[:port]`` (default ``MICRO_REGISTRY_ADDRESS``,
            else ``127.0.0.1:2379``). Several endpoints of one cluster fail over.
        prefix: the key prefix (go-micro's ``/micro/registry/``; go-plugins' etcdv3 used
            ``/micro-registry/``, :data:`GO_PLUGINS_PREFIX`).
        timeout: seconds per etcd call.
        username, password: etcd auth (``MICRO_REGISTRY_USERNAME``/``_PASSWORD``).
        tls_ca, tls_cert, tls_key: PEM bytes, PEM text or file paths
            (``MICRO_REGISTRY_TLS_CA``/``_CERT``/``_KEY``); any of them, or an ``https``
            address, or ``secure=True`` turns TLS on.
        tls_server_name: the name to verify the server certificate against, when the
            endpoints are IP addresses that the certificate does not list.
        secure: TLS with the system's root certificates.

    Raises:
        RegistryError: from the constructor, for a malformed address or unreadable TLS file.
    """

    name = "etcd"

    def __init__(
        self,
        *,
        address: str | Sequence[str] | None = None,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = 5.0,
        username: str | None = None,
        password: str | None = None,
        tls_ca: Pem | None = None,
        tls_cert: Pem | None = None,
        tls_key: Pem | None = None,
        tls_server_name: str | None = None,
        secure: bool = False,
    ) -> None:
        endpoints = parse_endpoints(address)
        if timeout <= 0:
            raise RegistryError("etcd timeout must be positive", id=_ID)
        self.prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else "/"
        self.endpoints = endpoints.hosts
        self.timeout = timeout
        self._username = username or endpoints.username
        self._password = password or endpoints.password
        self._credentials = tls_credentials(
            secure=secure or endpoints.secure, ca=tls_ca, cert=tls_cert, key=tls_key
        )
        self._server_name = tls_server_name
        self._client: EtcdClient | None = None
        self._leases: dict[bytes, _Lease] = {}
        self._warned: set[bytes] = set()
        self._closed = asyncio.Event()

    def __repr__(self) -> str:
        where = ",".join(f"{h}:{p}" for h, p in self.endpoints)
        return f"EtcdRegistry(address={where!r}, prefix={self.prefix!r})"

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._etcd()

    async def close(self) -> None:
        self._closed.set()
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.close()
            except Exception as exc:  # close never raises
                log.debug("closing the etcd channel failed: %r", exc)

    def _etcd(self) -> EtcdClient:
        if self._client is None:
            if self._closed.is_set():  # started again after close()
                self._closed = asyncio.Event()
            client = EtcdClient(
                self.endpoints,
                timeout=self.timeout,
                username=self._username,
                password=self._password,
                credentials=self._credentials,
                server_name=self._server_name,
            )
            with _failing("connect"):
                client.connect()
            self._client = client
        return self._client

    # -- keys ------------------------------------------------------------------------------

    def node_key(self, service: str, node: str) -> bytes:
        """The key of one node: ``<prefix><service>/<node>``, ``/`` in names as ``-``."""
        return f"{self.prefix}{_escape(service)}/{_escape(node)}".encode()

    def service_prefix(self, service: str) -> bytes:
        return f"{self.prefix}{_escape(service)}/".encode()

    # -- Registry --------------------------------------------------------------------------

    async def register(self, service: Service, *, ttl: float | None = None) -> None:
        if not service.name:
            raise RegistryError("cannot register a service without a name", id=_ID)
        seconds = max(1, math.ceil(ttl)) if ttl else 0
        client = self._etcd()
        for node in service.nodes:
            one = msgspec.structs.replace(service, nodes=[node])
            key = self.node_key(service.name, node.id)
            with _failing(f"register {service.name}/{node.id}"):
                await self._register_node(client, key, encode_service(one), seconds)

    async def _register_node(self, client: EtcdClient, key: bytes, value: bytes, ttl: int) -> None:
        held = self._leases.get(key) or await self._adopt(client, key, ttl)
        alive = False
        if held is not None and held.id:
            alive = await client.keepalive_once(held.id) > 0
            if not alive:
                log.warning(
                    "etcd lost the lease of %s; registering again", key.decode(errors="replace")
                )
        elif held is not None:  # no lease: the key itself must still be there
            current = await client.get(key)
            alive = current is not None and current.value == held.value
        if held is not None and alive and held.value == value and held.ttl == ttl:
            return
        lease = held.id if held is not None and alive and held.ttl == ttl else 0
        if ttl and not lease:
            lease = await client.grant(ttl)
        await client.put(key, value, lease=lease)
        self._leases[key] = _Lease(lease, ttl, value)
        if held is not None and held.id and held.id != lease and alive:
            await client.revoke(held.id)

    async def _adopt(self, client: EtcdClient, key: bytes, ttl: int) -> _Lease | None:
        """A key this node wrote in an earlier life (a restart): keep renewing its lease."""
        current = await client.get(key)
        if current is None or not current.lease:
            return None
        return _Lease(current.lease, ttl, current.value)

    async def deregister(self, service: Service) -> None:
        client = self._etcd()
        for node in service.nodes:
            key = self.node_key(service.name, node.id)
            held = self._leases.pop(key, None)
            with _failing(f"deregister {service.name}/{node.id}"):
                await client.delete(key)
                if held is not None and held.id:
                    await client.revoke(held.id)

    async def get_service(self, name: str) -> list[Service]:
        with _failing(f"get {name}"):
            _, kvs = await self._etcd().range_prefix(self.service_prefix(name))
        found = [s for kv in kvs if (s := self._decode(kv)) is not None and s.name == name]
        if not found:
            raise ServiceNotFound(f"service {name}: not found", id=_ID)
        return group_by_version(found)

    async def list_services(self) -> list[Service]:
        with _failing("list"):
            _, kvs = await self._etcd().range_prefix(self.prefix.encode())
        services = group_by_version(s for kv in kvs if (s := self._decode(kv)) is not None)
        return sorted(services, key=lambda s: (s.name, s.version))

    async def watch(self, service: str | None = None) -> AsyncGenerator[Result, None]:
        prefix = self.service_prefix(service) if service else self.prefix.encode()
        self._etcd()
        closed = self._closed
        try:  # changes from now on, even if the first stream breaks before it is in place
            revision = await self._etcd().revision(prefix) + 1
        except (EtcdError, RegistryError):
            revision = 0  # unreachable: the first stream that gets through says "now"
        failures = 0
        while not closed.is_set():
            try:
                async for batch in self._etcd().watch(prefix, revision):
                    failures = 0
                    revision = self._advance(batch, revision)
                    for event in batch.events:
                        result = self._result(event, service)
                        if result is not None:
                            yield result
            except WatchGap as exc:
                raise RegistryError(f"etcd watch: {exc}", id=_ID) from exc
            except (EtcdError, RegistryError) as exc:
                if closed.is_set():
                    return
                failures += 1
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(level, "etcd watch broke (%s); resuming from revision %d", exc, revision)
            delay = min(0.1 * 2 ** max(failures - 1, 0), 2.0)
            await _until(closed, delay)

    async def lost(self, service: Service) -> AsyncGenerator[None, None]:
        """Yields once its watch on ``service``'s keys is in place, again each time that watch
        is back after a break (etcd restarted, maybe empty: nothing says what it kept), and
        when one of those keys is deleted (its lease expired, or someone deleted it).
        :meth:`register` then renews each lease and writes what is missing."""
        keys = {self.node_key(service.name, node.id) for node in service.nodes}
        closed = self._closed
        breaks = 0
        while not closed.is_set():
            try:
                async for batch in self._etcd().watch(self.service_prefix(service.name), 0):
                    breaks = 0
                    deleted = [e.kv.key for e in batch.events if e.kind == "DELETE"]
                    gone = [key for key in deleted if key in keys and self._forget_value(key)]
                    if gone or batch.created:
                        yield None
            except (EtcdError, RegistryError) as exc:
                if closed.is_set():
                    return
                breaks += 1
                log.debug("etcd watch of %s's keys broke (%s); resuming", service.name, exc)
            # a short delay: etcd coming back is exactly what this waits for
            await _until(closed, min(0.1 * 2 ** max(breaks - 1, 0), 0.5))

    def _forget_value(self, key: bytes) -> bool:
        """A key we hold was deleted: the next register writes it again, lease alive or not.

        Returns False for a key we no longer hold (our own deregister deleted it).
        """
        held = self._leases.get(key)
        if held is None:
            return False
        log.warning("etcd: %s was deleted; registering it again", key.decode(errors="replace"))
        held.value = b""
        return True

    @staticmethod
    def _advance(batch: Batch, revision: int) -> int:
        if batch.created and not revision:
            revision = batch.revision + 1
        for event in batch.events:
            revision = max(revision, event.kv.mod_revision + 1)
        return revision

    # -- decoding --------------------------------------------------------------------------

    def _result(self, event: Event, name: str | None) -> Result | None:
        if event.kind == "DELETE":
            if event.prev is None:
                return None  # the value is gone from history: nothing to say what it was
            service = self._decode(event.prev)
            action: Literal["create", "update", "delete"] = "delete"
        else:
            if event.prev is not None and event.prev.value == event.kv.value:
                return None  # re-put of the same value
            service = self._decode(event.kv)
            created = event.kv.create_revision == event.kv.mod_revision
            action = "create" if created or event.prev is None else "update"
        if service is None or (name is not None and service.name != name):
            return None
        return Result(action, service)

    def _decode(self, kv: KeyValue) -> Service | None:
        """The one-node service in ``kv``, or ``None`` (warned once per key) if it is not."""
        try:
            service = decode_service(kv.value)
        except RegistryError as exc:
            self._warn(kv.key, str(exc.detail or exc))
            return None
        except Exception as exc:  # foreign data must never fail a lookup or a watch
            self._warn(kv.key, repr(exc))
            return None
        if not service.nodes or not service.name:
            self._warn(kv.key, "no service name or no node")
            return None
        return service

    def _warn(self, key: bytes, why: str) -> None:
        if key in self._warned:
            return
        if len(self._warned) >= _WARNED_LIMIT:
            self._warned.clear()
        self._warned.add(key)
        log.warning("etcd: skipping %s: %s", key.decode(errors="replace"), why)


async def _until(event: asyncio.Event, seconds: float) -> None:
    """Wait until ``event`` is set or ``seconds`` pass.

    ``asyncio.timeout`` rather than ``wait_for``: on Python 3.11, a ``wait_for`` cancelled
    just as its event is set (a close racing a cancel) returns normally and the cancellation
    is lost, so the loop around it would go on after its task was cancelled.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
