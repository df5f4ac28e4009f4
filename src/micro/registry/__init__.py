"""Registry: where services announce their nodes and clients find them.

The data model is go-micro's, field for field, so the JSON is the same on both sides:

    Service {name, version, metadata, endpoints: [Endpoint], nodes: [Node]}
    Node {id, address ("host:port"), metadata}      (old form: address + separate "port")
    Endpoint {name, request: Value, response: Value, metadata}
    Value {name, type, values: [Value]}

Go writes nil maps and slices as ``null``; the decoders here accept that, and accept the
pre-v1.8 node form with a separate ``port`` (joined into ``address``).

Backends: ``memory`` (tests, one process), ``mdns`` (the default; one machine or LAN),
``etcd``, ``nats``, ``consul`` and ``kubernetes``.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Iterable
from typing import Any, Literal, Protocol, Self

import msgspec

from micro.errors import RegistryError, ServiceNotFound

__all__ = [
    "Endpoint",
    "Node",
    "Registry",
    "RegistryError",
    "Result",
    "Service",
    "ServiceNotFound",
    "Value",
    "Watcher",
    "decode_service",
    "encode_service",
    "group_by_version",
    "join_host_port",
    "split_host_port",
]


class Value(msgspec.Struct, omit_defaults=False):
    """A reflected type tree: ``name`` is the field (or type) name, ``type`` its type name."""

    name: str
    type: str
    values: list[Value] | None = None


class Endpoint(msgspec.Struct):
    """One callable endpoint (``Handler.Method``) or subscriber of a service."""

    name: str
    request: Value | None = None
    response: Value | None = None
    metadata: dict[str, str] = {}


class Node(msgspec.Struct):
    """One running instance of a service. ``address`` is ``host:port``."""

    id: str
    address: str
    metadata: dict[str, str] = {}

    @property
    def host(self) -> str:
        return split_host_port(self.address)[0]

    @property
    def port(self) -> int:
        return split_host_port(self.address)[1]


class Service(msgspec.Struct):
    """A service at one version, with the nodes that run that version."""

    name: str
    version: str = "latest"
    metadata: dict[str, str] = {}
    endpoints: list[Endpoint] = []
    nodes: list[Node] = []


class Result(msgspec.Struct, frozen=True):
    """One change seen by :meth:`Registry.watch`: ``action`` is create, update or delete."""

    action: Literal["create", "update", "delete"]
    service: Service


class Watcher(Protocol):
    """What :meth:`Registry.watch` returns: results until ``aclose()``; async generators are."""

    def __aiter__(self) -> AsyncIterator[Result]: ...

    def __anext__(self) -> Awaitable[Result]: ...

    def aclose(self) -> Awaitable[None]:
        """Stop watching; a pending ``__anext__`` ends too."""
        ...


class Registry(abc.ABC):
    """Service discovery.

    A backend is an async context manager: ``start()`` on enter, ``close()`` on exit. All
    methods may raise :class:`RegistryError` when the backend cannot be reached; lookups raise
    :class:`ServiceNotFound` for an unknown name, never return an empty list.
    """

    name: str = "registry"

    async def start(self) -> None:
        """Connect and start background work (idempotent)."""

    async def close(self) -> None:
        """Stop background work and release connections; never raises."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @abc.abstractmethod
    async def register(self, service: Service, *, ttl: float | None = None) -> None:
        """Announce ``service``'s nodes (one or more).

        Args:
            service: the service with the nodes to add or refresh.
            ttl: seconds after which the nodes vanish unless registered again; ``None``
                keeps them until :meth:`deregister`.
        """

    @abc.abstractmethod
    async def deregister(self, service: Service) -> None:
        """Remove ``service``'s nodes. Unknown nodes are ignored."""

    @abc.abstractmethod
    async def get_service(self, name: str) -> list[Service]:
        """All versions of ``name``, each with its live nodes.

        Raises:
            ServiceNotFound: no live node of that name.
        """

    @abc.abstractmethod
    async def list_services(self) -> list[Service]:
        """Every known service (entries may carry only the name, as go-micro's mdns does)."""

    @abc.abstractmethod
    def watch(self, service: str | None = None) -> Watcher:
        """Changes from now on, for one service or (``None``) all.

        The iterator runs until the registry closes or the consumer stops iterating
        (``aclose()`` or ``break``); cancelling the consuming task stops it cleanly.
        Each result carries the service with the nodes that changed.
        """

    async def lost(self, service: Service) -> AsyncGenerator[None, None]:
        """One ``None`` each time ``service``'s registration here may have been lost.

        A server registers again on each, besides its interval, so that a registry that lost
        its data (a lease or key gone, a store restarted empty) lists the node again within
        moments instead of at the next interval. A backend yields when it sees a node it
        registered removed behind its back, and whenever it cannot know (its watch has just
        got in place, or is back after a break); registering again is cheap when nothing
        was lost.

        The default yields nothing and ends at once, for backends whose registrations live
        in this process (memory, mdns, nats) or that do not tell (consul, kubernetes: the
        interval is their safety net). The iterator runs until the registry closes or the
        consumer stops iterating; a store that is away makes it wait, not raise.
        """
        return
        yield  # an async generator that yields nothing


# -- helpers shared by the backends -------------------------------------------------------


def split_host_port(address: str) -> tuple[str, int]:
    """``"10.0.0.1:8080"`` -> ``("10.0.0.1", 8080)``; ``"[::1]:80"`` -> ``("::1", 80)``.

    Raises:
        ValueError: no port in the address.
    """
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address {address!r} has no port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def join_host_port(host: str, port: int) -> str:
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def _clean(raw: Any) -> Any:
    """Drop Go's ``null`` maps and lists, and join a legacy ``port`` into ``address``."""
    if isinstance(raw, dict):
        out = {
            k: _clean(v) for k, v in raw.items() if v is not None or k in ("request", "response")
        }
        if "port" in out and "id" in out and "address" in out:
            port = out.pop("port")
            address = out["address"]
            if isinstance(port, int) and isinstance(address, str) and not _has_port(address):
                out["address"] = join_host_port(address, port) if port else address
        return out
    if isinstance(raw, list):
        return [_clean(v) for v in raw]
    return raw


def _has_port(address: str) -> bool:
    try:
        split_host_port(address)
    except ValueError:
        return False
    return not address.count(":") > 1 or address.startswith("[")


_encoder = msgspec.json.Encoder()


def encode_service(service: Service) -> bytes:
    """go-micro's JSON for a service (lowercase keys)."""
    return _encoder.encode(service)


def decode_service(data: bytes | str | dict[str, Any]) -> Service:
    """Parse go-micro JSON (any v1 version) into a :class:`Service`.

    Raises:
        RegistryError: the data is not a valid service.
    """
    try:
        raw = msgspec.json.decode(data) if isinstance(data, bytes | str) else data
        return msgspec.convert(_clean(raw), Service)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise RegistryError(f"malformed service record: {exc}", id="go.micro.registry") from exc


def group_by_version(services: Iterable[Service]) -> list[Service]:
    """Merge entries of one name into one Service per version, nodes deduplicated by id."""
    merged: dict[tuple[str, str], Service] = {}
    for svc in services:
        key = (svc.name, svc.version)
        have = merged.get(key)
        if have is None:
            merged[key] = msgspec.structs.replace(svc, nodes=list(svc.nodes))
            continue
        seen = {n.id for n in have.nodes}
        have.nodes.extend(n for n in svc.nodes if n.id not in seen)
        if not have.endpoints and svc.endpoints:
            have.endpoints = list(svc.endpoints)
    return list(merged.values())
