"""What this process has heard over mDNS, turned into go-micro nodes (sans-IO).

Records go in with :meth:`MdnsCache.ingest` (one packet at a time, since an address record is
paired with the SRV that arrived in the same packet, as Go's client does) and age out with
:meth:`MdnsCache.expire`. Time is passed in, so tests drive it without sleeping. A record with
TTL 0 is a goodbye and removes its record at once. :class:`NodeViews` merges the instances of
one node heard in several domains into one node.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from micro.errors import RegistryError
from micro.registry import Node, Result, Service, join_host_port
from micro.registry._mdns_txt import NAME_ADDRESS_KEY, TxtPayload, decode_txt
from micro.registry._mdns_wire import Addr, Ptr, Record, Srv, Txt

__all__ = ["MdnsCache", "NodeViews"]

log = logging.getLogger("micro.registry.mdns")

REFRESH_AT = (0.80, 0.90)  # fractions of a record's TTL at which interested caches re-query
MAX_ENTRIES = 10_000  # a flood of distinct names cannot grow the cache without bound
_UNSPECIFIED = {"0.0.0.0", "::"}


@dataclass(slots=True)
class _Entry:
    """The SRV and TXT heard for one instance name."""

    name: str
    srv: Srv | None = None
    srv_at: float = 0.0
    payload: TxtPayload | None = None
    txt_expires: float | None = None  # None: no TXT heard (or it expired)
    address: str | None = None  # from an address record in the SRV's packet
    host_address: str | None = None  # last usable address heard for the SRV's target
    refreshes: int = 0  # refresh queries sent since the SRV last arrived

    @property
    def srv_expires(self) -> float:
        return self.srv_at + self.srv.ttl if self.srv else 0.0

    def refresh_at(self) -> float | None:
        if self.srv is None or self.refreshes >= len(REFRESH_AT):
            return None
        return self.srv_at + REFRESH_AT[self.refreshes] * self.srv.ttl


class MdnsCache:
    """Instances, host addresses and listed service names, with expiry.

    Args:
        domains: the mDNS domains to accept (``micro``, ``local``); others are ignored.
    """

    def __init__(self, domains: Iterable[str]) -> None:
        self._domains = {d.strip(".").lower() for d in domains}
        self._entries: dict[str, _Entry] = {}
        self._hosts: dict[str, dict[str, float]] = {}  # name -> ip -> expiry
        self._wildcards: dict[str, tuple[str, float]] = {}  # instance -> (service, expiry)

    # -- input ---------------------------------------------------------------------------

    def ingest(self, records: list[Record], now: float) -> set[str]:
        """Apply one packet's records; returns the instance keys it touched (maybe unchanged)."""
        touched: set[str] = set()
        packet_addrs: dict[str, list[str]] = {}
        hosts = {_k(r.name) for r in records if isinstance(r, Addr)}
        before = {host: self._host_address(host) for host in hosts}
        for record in records:
            if isinstance(record, Addr):
                self._add_address(record, now, packet_addrs)
            elif isinstance(record, Ptr):
                self._add_pointer(record, now)
            elif self._wildcard_service(record.name) is not None:
                self._add_wildcard(record.name, record.ttl, now)
            elif isinstance(record, Srv):
                touched |= self._add_srv(record, now)
            else:
                touched |= self._add_txt(record, now)
        for record in records:  # pair each SRV with the address sent beside it
            entry = self._entries.get(_k(record.name)) if isinstance(record, Srv) else None
            if entry is not None and entry.srv is record:
                ip = _first_usable(packet_addrs.get(_k(record.target), []))
                entry.address = ip or entry.address
        # nodes without an address of their own use the host's: only a change matters (a
        # refresh of the same address would otherwise revisit every node on the host)
        touched |= self._follow_hosts({h for h in hosts if self._host_address(h) != before[h]})
        self._drop_empty(touched)
        return touched

    def _add_address(self, record: Addr, now: float, packet: dict[str, list[str]]) -> None:
        key = _k(record.name)
        ips = self._hosts.setdefault(key, {})
        if record.ttl:
            ips[record.address] = now + record.ttl
            packet.setdefault(key, []).append(record.address)
        else:
            ips.pop(record.address, None)
            packet.setdefault(key, [])
        if not ips:
            del self._hosts[key]

    def _add_pointer(self, record: Ptr, now: float) -> None:
        if self._wildcard_service(record.alias) is not None and _k(record.alias).endswith(
            _k(record.name)
        ):
            self._add_wildcard(record.alias, record.ttl, now)

    def _add_wildcard(self, instance: str, ttl: int, now: float) -> None:
        service = self._wildcard_service(instance)
        if service is None:
            return
        if ttl:
            self._wildcards[_k(instance)] = (service, now + ttl)
        else:
            self._wildcards.pop(_k(instance), None)

    def _entry(self, name: str) -> _Entry | None:
        key = _k(name)
        entry = self._entries.get(key)
        if entry is None and len(self._entries) < MAX_ENTRIES:
            entry = self._entries[key] = _Entry(name)
        return entry

    def _add_srv(self, record: Srv, now: float) -> set[str]:
        entry = self._entry(record.name)
        if entry is None:
            return set()
        if record.ttl:
            if entry.srv is None or _k(entry.srv.target) != _k(record.target):
                entry.address = None
                entry.host_address = self._host_address(record.target)
            entry.srv, entry.srv_at, entry.refreshes = record, now, 0
        else:
            entry.srv, entry.address, entry.host_address = None, None, None
        return {_k(record.name)}

    def _add_txt(self, record: Txt, now: float) -> set[str]:
        entry = self._entry(record.name)
        if entry is None:
            return set()
        if not record.ttl:
            entry.payload, entry.txt_expires = None, None
            return {_k(record.name)}
        try:
            entry.payload = decode_txt(record.strings)
        except RegistryError as exc:
            log.debug("ignoring TXT of %s: %s", record.name, exc.detail)
            entry.payload = None
        entry.txt_expires = now + record.ttl
        return {_k(record.name)}

    def _follow_hosts(self, hosts: set[str]) -> set[str]:
        """Give the nodes on ``hosts`` their host's current address; returns their keys.

        A host whose address records are all gone (one node's goodbye removes the record
        every node on that host shares, and records expire) leaves each node the address it
        last had: the other nodes are still there, at the same address.
        """
        if not hosts:
            return set()
        keys = set()
        for key, entry in self._entries.items():
            if entry.srv is not None and (host := _k(entry.srv.target)) in hosts:
                entry.host_address = self._host_address(host) or entry.host_address
                keys.add(key)
        return keys

    def _drop_empty(self, keys: Iterable[str]) -> None:
        for key in keys:
            entry = self._entries.get(key)
            if entry is not None and entry.srv is None and entry.txt_expires is None:
                del self._entries[key]

    # -- time ----------------------------------------------------------------------------

    def expire(self, now: float) -> set[str]:
        """Drop what outlived its TTL; returns the instance keys that may have changed."""
        touched: set[str] = set()
        for key, entry in self._entries.items():
            if entry.srv is not None and entry.srv_expires <= now:
                entry.srv, entry.address, entry.host_address = None, None, None
                touched.add(key)
            if entry.txt_expires is not None and entry.txt_expires <= now:
                entry.payload, entry.txt_expires = None, None
                touched.add(key)
        gone_hosts = set()
        for host, ips in list(self._hosts.items()):
            for ip, expires in list(ips.items()):
                if expires <= now:
                    del ips[ip]
                    gone_hosts.add(host)
            if not ips:
                del self._hosts[host]
        for key, (_, expires) in list(self._wildcards.items()):
            if expires <= now:
                del self._wildcards[key]
        touched |= self._follow_hosts(gone_hosts)
        self._drop_empty(touched)
        return touched

    def next_deadline(self, interested: Callable[[str], bool]) -> float | None:
        """When :meth:`expire` or :meth:`due_refresh` next has work (``None``: never)."""
        times: list[float] = [exp for _, exp in self._wildcards.values()]
        times += [exp for ips in self._hosts.values() for exp in ips.values()]
        for entry in self._entries.values():
            times += [entry.srv_expires] if entry.srv else []
            times += [entry.txt_expires] if entry.txt_expires is not None else []
            if entry.payload and interested(entry.payload.service):
                times += [t] if (t := entry.refresh_at()) is not None else []
        return min(times, default=None)

    def due_refresh(self, now: float, interested: Callable[[str], bool]) -> set[str]:
        """Service names (``S.D.``) to query because an interesting node is near expiry."""
        names = set()
        for entry in self._entries.values():
            due = entry.refresh_at()
            if due is None or due > now or entry.payload is None:
                continue
            if not interested(entry.payload.service):
                continue
            names.add(f"{entry.payload.service}.{_domain_of(entry.name)}.")
            while (due := entry.refresh_at()) is not None and due <= now:
                entry.refreshes += 1
        return names

    # -- output --------------------------------------------------------------------------

    def view(self, key: str) -> Service | None:
        """The one-node service that instance ``key`` describes, if complete."""
        entry = self._entries.get(key)
        if entry is None or entry.srv is None or entry.payload is None:
            return None
        payload = entry.payload
        head, _, domain = entry.name.rstrip(".").rpartition(".")
        suffix = "." + payload.service.lower()
        if domain.lower() not in self._domains or not head.lower().endswith(suffix):
            return None
        node_id = head[: -len(suffix)]
        metadata = dict(payload.metadata)
        named = metadata.pop(NAME_ADDRESS_KEY, None)
        if named:  # a transport's name (NATS subject, RabbitMQ queue), not host:port
            return Service(
                payload.service, payload.version, {}, list(payload.endpoints),
                [Node(node_id, named, metadata)],
            ) if node_id else None  # fmt: skip
        host = entry.address or entry.host_address or _advertised_name(entry.srv.target)
        if not node_id or host is None:
            return None
        node = Node(node_id, join_host_port(host, entry.srv.port), metadata)
        return Service(payload.service, payload.version, {}, list(payload.endpoints), [node])

    def views(self) -> dict[str, Service]:
        """Every complete instance, by key."""
        return {k: v for k in self._entries if (v := self.view(k)) is not None}

    def names(self) -> set[str]:
        """Service names known from nodes and from ``_services`` wildcard entries."""
        names = {service for service, _ in self._wildcards.values()}
        return names | {v.name for v in self.views().values()}

    def _host_address(self, target: str) -> str | None:
        """The usable address of ``target`` heard last (longest to live), if any is live."""
        ips = self._hosts.get(_k(target), {})
        usable = [ip for ip in sorted(ips, key=ips.__getitem__) if ip not in _UNSPECIFIED]
        return usable[-1] if usable else None

    def _wildcard_service(self, name: str) -> str | None:
        """``S`` for ``S._services.D.`` in an accepted domain, else ``None``."""
        head, _, domain = name.rstrip(".").rpartition(".")
        service, _, kind = head.rpartition(".")
        if kind.lower() != "_services" or domain.lower() not in self._domains or not service:
            return None
        return service


NodeKey = tuple[str, str]  # (service name, node id): the same node in every domain


class NodeViews:
    """One view per node, whichever domains it is heard in (the first domain listed wins).

    :meth:`update` takes the instance keys a cache change touched and returns the watch
    results it makes, so a node announced in ``micro`` and ``local`` is created once, and
    a goodbye in one domain while the other still carries it changes nothing.
    """

    def __init__(self, domains: Iterable[str]) -> None:
        self._domains = tuple(d.strip(".").lower() for d in domains)
        self._instances: dict[str, Service] = {}  # instance key -> its one-node view
        self.views: dict[NodeKey, Service] = {}

    def update(self, cache: MdnsCache, touched: Iterable[str]) -> tuple[list[Result], set[str]]:
        """The watch results of ``touched``, and the names of services heard in them."""
        nodes: set[NodeKey] = set()
        heard: set[str] = set()
        for key in touched:
            old, new = self._instances.pop(key, None), cache.view(key)
            if new is not None:
                self._instances[key] = new
                heard.add(new.name)
            if old != new:
                nodes |= {_node_key(view) for view in (old, new) if view is not None}
        results = [r for node in nodes if (r := self._settle(node)) is not None]
        return results, heard

    def _settle(self, node: NodeKey) -> Result | None:
        name, node_id = node
        keys = (f"{node_id}.{name}.{domain}.".lower() for domain in self._domains)
        heard = (self._instances.get(key) for key in keys)
        new = next((v for v in heard if v is not None and _node_key(v) == node), None)
        old = self.views.pop(node, None)
        if new is not None:
            self.views[node] = new
        if new is None:
            return Result("delete", old) if old is not None else None
        if old is None:
            return Result("create", new)
        return Result("update", new) if old != new else None


def _node_key(view: Service) -> NodeKey:
    return view.name, view.nodes[0].id


def _k(name: str) -> str:
    return name.lower()


def _domain_of(name: str) -> str:
    return name.rstrip(".").rpartition(".")[2]


def _advertised_name(target: str) -> str | None:
    """The SRV target itself, for a node no usable address was ever heard for: one published
    as a DNS name (``db.example:8080``) has no address record, and its name is its address."""
    return target.rstrip(".") or None


def _first_usable(ips: list[str]) -> str | None:
    return next((ip for ip in ips if ip not in _UNSPECIFIED), None)
