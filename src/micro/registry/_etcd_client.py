"""A small asyncio etcd v3 client: the calls the registry needs, over grpc.aio.

It uses aetcd's generated gRPC stubs (``aetcd.rpc``) but owns the channel, because aetcd's
client takes a single ``host:port``, has no TLS and no retry. Here:

- several endpoints become one gRPC target (``ipv4:a:1,b:2,...``, pick_first), so a client
  keeps working while a cluster member is down (host names are resolved when connecting);
- a call that fails with UNAVAILABLE is retried for a short while (a leader election);
- TLS (CA, client certificate and key) and username/password auth (the token is renewed
  once when etcd says it expired);
- reconnection backoff is capped at 1 s, so a restarted etcd is found again within about a
  second (servers whose registrations it lost write them again that soon).

Every driver error becomes :class:`EtcdError` with the gRPC status name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc  # type: ignore[import-untyped]
from aetcd import rpc  # type: ignore[import-untyped]

__all__ = ["Batch", "EtcdClient", "EtcdError", "Event", "KeyValue", "WatchGap"]

T = TypeVar("T")

_RETRY_FOR = 2.0  # seconds a refused connection is retried (the channel trying other members)
_CHANNEL_OPTIONS = (
    ("grpc.lb_policy_name", "pick_first"),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.keepalive_time_ms", 10_000),  # etcd refuses pings more often than every 5 s
    ("grpc.keepalive_timeout_ms", 5_000),
)


class EtcdError(Exception):
    """An etcd call failed; ``status`` is the gRPC status name (``UNAVAILABLE``...)."""

    def __init__(self, message: str, status: str = "UNKNOWN") -> None:
        super().__init__(message)
        self.status = status


class WatchGap(EtcdError):
    """A watch cannot resume: the history it needs was compacted or the store was reset."""


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int


@dataclass(frozen=True, slots=True)
class Event:
    """One watch event: ``kind`` is ``PUT`` or ``DELETE``; ``prev`` the value before it."""

    kind: str
    kv: KeyValue
    prev: KeyValue | None


@dataclass(frozen=True, slots=True)
class Batch:
    """One watch reply: ``created`` for the first (``revision`` is then the store's)."""

    created: bool
    revision: int
    events: list[Event]


def _kv(raw: Any) -> KeyValue:
    return KeyValue(raw.key, raw.value, raw.create_revision, raw.mod_revision, raw.lease)


def prefix_end(prefix: bytes) -> bytes:
    """The range end that selects every key starting with ``prefix``."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\x00"


def target(endpoints: Sequence[tuple[str, int]]) -> str:
    """The gRPC target for ``endpoints``: ``host:port`` for one, an address list for more.

    Raises:
        EtcdError: a host name does not resolve, or IPv4 and IPv6 endpoints are mixed.
    """
    if len(endpoints) == 1:
        host, port = endpoints[0]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    addresses = [(_resolve(host), port) for host, port in endpoints]
    families = {ipaddress.ip_address(ip).version for ip, _ in addresses}
    if len(families) > 1:
        raise EtcdError("etcd endpoints mix IPv4 and IPv6 addresses", "INVALID_ARGUMENT")
    if families == {6}:
        return "ipv6:" + ",".join(f"[{ip}]:{port}" for ip, port in addresses)
    return "ipv4:" + ",".join(f"{ip}:{port}" for ip, port in addresses)


def _resolve(host: str) -> str:
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    try:
        return str(socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)[0][4][0])
    except OSError as exc:
        raise EtcdError(f"etcd endpoint {host!r} does not resolve: {exc}", "UNAVAILABLE") from exc


def _reraise_if_we_are_cancelled() -> None:
    """grpc.aio raises CancelledError for calls its channel cancelled; tell the two apart."""
    task = asyncio.current_task()
    if task is None or task.cancelling():
        raise


def _electing(exc: Any) -> bool:
    """etcd itself answered UNAVAILABLE: it is up but has no leader for the moment."""
    return "etcdserver:" in (exc.details() or "")


def _status(exc: BaseException) -> str:
    code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None
    return code.name if code is not None else "UNKNOWN"


def _error(exc: BaseException) -> EtcdError:
    if isinstance(exc, grpc.aio.AioRpcError):
        return EtcdError(f"{exc.code().name}: {exc.details()}", exc.code().name)
    return EtcdError(repr(exc))


class EtcdClient:
    """The KV, lease and watch calls of etcd v3 (see the module docs)."""

    def __init__(
        self,
        endpoints: Sequence[tuple[str, int]],
        *,
        timeout: float,
        username: str | None = None,
        password: str | None = None,
        credentials: Any = None,
        server_name: str | None = None,
    ) -> None:
        if not endpoints:
            raise EtcdError("no etcd endpoint given", "INVALID_ARGUMENT")
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self._auth = (username, password) if username else None
        self._credentials = credentials
        self._server_name = server_name
        self._channel: Any = None
        self._kv: Any = None
        self._lease: Any = None
        self._watch: Any = None
        self._metadata: tuple[tuple[str, str], ...] | None = None
        self._auth_lock = asyncio.Lock()

    def connect(self) -> None:
        """Create the channel; no packet is sent until the first call."""
        if self._channel is not None:
            return
        options = list(_CHANNEL_OPTIONS)
        if self._server_name:
            options.append(("grpc.ssl_target_name_override", self._server_name))
        where = target(self.endpoints)
        if self._credentials is not None:
            self._channel = grpc.aio.secure_channel(where, self._credentials, options=options)
        else:
            self._channel = grpc.aio.insecure_channel(where, options=options)
        self._kv = rpc.KVStub(self._channel)
        self._lease = rpc.LeaseStub(self._channel)
        self._watch = rpc.WatchStub(self._channel)

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()

    # -- calls -----------------------------------------------------------------------------

    async def range_prefix(self, prefix: bytes) -> tuple[int, list[KeyValue]]:
        """Every key under ``prefix`` and the store revision they were read at."""
        request = rpc.RangeRequest(key=prefix, range_end=prefix_end(prefix))
        reply = await self._call(lambda md: self._kv.Range(request, **md))
        return reply.header.revision, [_kv(kv) for kv in reply.kvs]

    async def revision(self, prefix: bytes) -> int:
        """The store's current revision (read with a count-only range: no values move)."""
        request = rpc.RangeRequest(key=prefix, range_end=prefix_end(prefix), count_only=True)
        reply = await self._call(lambda md: self._kv.Range(request, **md))
        return int(reply.header.revision)

    async def get(self, key: bytes) -> KeyValue | None:
        reply = await self._call(lambda md: self._kv.Range(rpc.RangeRequest(key=key), **md))
        return _kv(reply.kvs[0]) if reply.kvs else None

    async def put(self, key: bytes, value: bytes, *, lease: int = 0) -> int:
        """Store ``value``; returns the new revision."""
        request = rpc.PutRequest(key=key, value=value, lease=lease)
        reply = await self._call(lambda md: self._kv.Put(request, **md))
        return int(reply.header.revision)

    async def delete(self, key: bytes) -> int:
        """Delete ``key``; returns how many keys went (0 or 1)."""
        request = rpc.DeleteRangeRequest(key=key)
        reply = await self._call(lambda md: self._kv.DeleteRange(request, **md))
        return int(reply.deleted)

    async def grant(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds; returns its id."""
        request = rpc.LeaseGrantRequest(TTL=ttl)
        reply = await self._call(lambda md: self._lease.LeaseGrant(request, **md))
        if reply.error:
            raise EtcdError(f"lease grant failed: {reply.error}", "FAILED_PRECONDITION")
        return int(reply.ID)

    async def keepalive_once(self, lease: int) -> int:
        """Renew ``lease`` once; returns its TTL, 0 when the lease no longer exists."""

        async def once(md: dict[str, Any]) -> Any:
            stream = self._lease.LeaseKeepAlive(iter([rpc.LeaseKeepAliveRequest(ID=lease)]), **md)
            async for reply in stream:
                stream.cancel()
                return reply
            return None

        reply = await self._call(once)
        return int(reply.TTL) if reply is not None else 0

    async def revoke(self, lease: int) -> None:
        request = rpc.LeaseRevokeRequest(ID=lease)
        try:
            await self._call(lambda md: self._lease.LeaseRevoke(request, **md))
        except EtcdError as exc:
            if exc.status != "NOT_FOUND":
                raise

    async def watch(self, prefix: bytes, start_revision: int) -> AsyncIterator[Batch]:
        """Events under ``prefix`` from ``start_revision`` (0: from now), batch by batch.

        The first batch is the ``created`` one: the watch is in place. Raises :class:`EtcdError`
        when the stream breaks and :class:`WatchGap` when the history is gone.
        """
        self.connect()
        create = rpc.WatchCreateRequest(
            key=prefix, range_end=prefix_end(prefix), start_revision=start_revision, prev_kv=True
        )
        stop = asyncio.Event()

        async def requests() -> AsyncIterator[Any]:
            yield rpc.WatchRequest(create_request=create)
            await stop.wait()

        await self._authenticate_if_needed()
        call = self._watch.Watch(requests(), metadata=self._metadata)
        try:
            async for reply in call:
                if reply.compact_revision:
                    raise WatchGap(f"revision {start_revision} compacted", "OUT_OF_RANGE")
                if reply.canceled:
                    raise EtcdError(f"watch cancelled: {reply.cancel_reason}", "CANCELLED")
                if reply.created and 0 < reply.header.revision < start_revision - 1:
                    raise WatchGap("the etcd store was reset", "OUT_OF_RANGE")
                events = [
                    Event(
                        "DELETE" if ev.type == 1 else "PUT",
                        _kv(ev.kv),
                        _kv(ev.prev_kv) if ev.HasField("prev_kv") else None,
                    )
                    for ev in reply.events
                ]
                yield Batch(bool(reply.created), int(reply.header.revision), events)
        except grpc.aio.AioRpcError as exc:
            raise _error(exc) from None
        except asyncio.CancelledError:
            _reraise_if_we_are_cancelled()
            raise EtcdError("watch cancelled: the channel closed", "CANCELLED") from None
        finally:
            stop.set()
            call.cancel()
        raise EtcdError("watch stream ended", "UNAVAILABLE")

    # -- plumbing --------------------------------------------------------------------------

    async def _call(self, fn: Callable[[dict[str, Any]], Awaitable[T]]) -> T:
        """Run ``fn`` with the deadline and auth token; retry UNAVAILABLE for a while.

        etcd answering "leader changed" or "no leader" is retried for up to ``timeout`` (an
        election takes one to a few election timeouts); a connection that cannot be made at
        all, for up to 2 s, so that a dead registry fails callers fast.
        """
        self.connect()
        started = time.monotonic()
        renewed = False
        delay = 0.05
        while True:
            await self._authenticate_if_needed()
            try:
                return await fn({"timeout": self.timeout, "metadata": self._metadata})
            except asyncio.CancelledError:
                _reraise_if_we_are_cancelled()  # else grpc cancelled it: the channel closed
                raise EtcdError("call cancelled: the channel closed", "CANCELLED") from None
            except grpc.aio.AioRpcError as exc:
                status = _status(exc)
                if status == "UNAUTHENTICATED" and self._auth and not renewed:
                    renewed = True
                    self._metadata = None  # the token expired: fetch another
                    continue
                budget = self.timeout if _electing(exc) else min(_RETRY_FOR, self.timeout)
                if status != "UNAVAILABLE" or time.monotonic() + delay > started + budget:
                    raise _error(exc) from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    async def _authenticate_if_needed(self) -> None:
        if self._auth is None or self._metadata is not None:
            return
        async with self._auth_lock:
            if self._metadata is not None:
                return
            name, password = self._auth
            request = rpc.AuthenticateRequest(name=name, password=password or "")
            stub = rpc.AuthStub(self._channel)
            try:
                reply = await stub.Authenticate(request, timeout=self.timeout)
            except grpc.aio.AioRpcError as exc:
                raise _error(exc) from None
            self._metadata = (("token", reply.token),)
