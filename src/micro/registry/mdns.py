"""The mDNS registry (the default): services on one machine or one LAN find each other.

Wire-compatible with go-micro v1's mdns registry: one mDNS instance per node named
``<node id>.<service>.<domain>.`` with SRV (port, host), A (the node's IPv4) and a TXT that
carries ``hex(zlib(JSON))`` of the version, endpoints and node metadata, plus a
``<service>._services.<domain>.`` wildcard entry per service so names can be listed (layout in
:mod:`micro.registry._mdns_wire`). Go programs read what this publishes and vice versa.

Domains: go-micro up to v1.9 publishes and asks in ``local``, v1.10 on in ``micro``. By default
this registry publishes every node in both and asks in both, and a node heard in both is one
node; ``domain=`` pins one domain for everything (publishing, answering, asking, listening).

Every instance goes out in a packet of its own, in answers, announcements and goodbyes (go-micro
reads one entry per packet; see :mod:`micro.registry._mdns_wire`).

Differences from go-micro, on purpose:

- Records carry the register TTL (``register(ttl=...)``, rounded up to whole seconds), so a
  node whose process died without a goodbye vanishes within its TTL; ``ttl=None`` publishes
  120 s records that are re-announced before they lapse.
- A lookup sends one query and returns as soon as answers arrive (a few milliseconds on
  one machine) instead of always waiting the full window; a name once looked up is then
  served from the cache, which announcements, goodbyes, expiry and refresh queries keep
  current. Unknown names cost one ``timeout`` window per call.
- No probing: node ids are unique, so registration announces at once (twice, 1 s apart);
  re-registering an unchanged node sends a single refresh announcement.
- Service-level metadata is not carried (go-micro's TXT has no field for it).

Sockets are confined to the interfaces given (or ``MICRO_MDNS_INTERFACES``, a comma list of
IPv4 addresses; all interfaces when unset): see :mod:`micro.registry._mdns_net`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import weakref
from collections.abc import Callable, Sequence

from micro.errors import RegistryError, ServiceNotFound
from micro.registry import (
    Node,
    Registry,
    Result,
    Service,
    Watcher,
    group_by_version,
    split_host_port,
)
from micro.registry._mdns_cache import MdnsCache, NodeViews
from micro.registry._mdns_net import MDNS_PORT, MdnsSockets, choose_interfaces
from micro.registry._mdns_publish import Group, Published, Publisher
from micro.registry._mdns_txt import (
    NAME_ADDRESS_KEY,
    TxtPayload,
    encode_txt,
    is_name_address,
    join_strings,
)
from micro.registry._mdns_wire import (
    Packet,
    Publication,
    check_name,
    instance_packets,
    is_dns_name,
    is_ip,
    local_hostname,
    query_packets,
    read_packet,
)

__all__ = ["MdnsRegistry"]

log = logging.getLogger("micro.registry.mdns")

DEFAULT_DOMAINS = ("micro", "local")  # go-micro v1.10+, and v1.0 to v1.9
DEFAULT_RECORD_TTL = 120  # go-micro's; used when register() gets no TTL
MAX_TXT = 8400  # an mDNS packet carries at most 9000 bytes (RFC 6762 section 17)
_SECOND_ANNOUNCEMENT = 1.0
_OWN_ECHO_WINDOW = 5.0  # our own multicast comes back over loopback: ignore it this long


class MdnsRegistry(Registry):
    """go-micro compatible mDNS registry.

    Args:
        interfaces: IPv4 addresses of the interfaces to use; ``None`` reads
            ``MICRO_MDNS_INTERFACES`` (comma list) and, when that is unset, uses every
            non-loopback interface. Sockets are never opened on any other interface.
        domain: the one mDNS domain to publish, answer, ask and listen in; ``None`` (the
            default) uses both ``micro`` (go-micro 1.10+) and ``local`` (go-micro up to 1.9),
            so Go services of either era and this registry find each other.
        timeout: how long a lookup waits for a first answer, and how long
            :meth:`list_services` collects (go-micro's default, 100 ms).
        address: accepted for uniformity with other registries and ignored.

    Raises:
        RegistryError: from the constructor for a domain DNS cannot carry; from
            :meth:`start` when an interface is not on this machine or the sockets cannot be
            bound.
    """

    name = "mdns"

    def __init__(
        self,
        *,
        interfaces: Sequence[str] | None = None,
        domain: str | None = None,
        timeout: float = 0.1,
        address: str | None = None,
    ) -> None:
        self._interfaces = list(interfaces) if interfaces is not None else None
        self._domains = DEFAULT_DOMAINS if domain is None else (_checked_domain(domain),)
        self._timeout = timeout
        self._hostname = local_hostname()
        self._cache = MdnsCache(self._domains)
        self._nodes = NodeViews(self._domains)
        self._publisher = Publisher()
        self._published = self._publisher.entries  # instance key -> what we publish there
        self._watchers: weakref.WeakSet[_Watcher] = weakref.WeakSet()
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._lookups: dict[str, asyncio.Future[None]] = {}
        self._warm: set[str] = set()
        self._sent: dict[bytes, float] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._due: list[tuple[str, Published]] = []  # re-announcements waiting to go out
        self._tick_handle: asyncio.TimerHandle | None = None
        self._net: MdnsSockets | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._start_lock = asyncio.Lock()
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the sockets on the chosen interfaces (idempotent)."""
        async with self._start_lock:
            if self._closed:
                raise RegistryError("mdns registry is closed", id="go.micro.registry")
            if self._net is not None:
                return
            interfaces, pinned = choose_interfaces(self._interfaces)
            net = MdnsSockets(interfaces, pinned, self._on_datagram)
            await net.open()
            self._loop, self._net = asyncio.get_running_loop(), net

    async def close(self) -> None:
        """Say goodbye for every node still registered, then release everything."""
        if self._closed:
            return
        self._closed = True
        entries = list(self._published.values())
        self._published.clear()
        try:
            if entries:
                self._goodbye(entries)
        except Exception:  # close never raises
            log.exception("mdns: goodbye on close failed")
        for handle in [*self._timers.values(), self._tick_handle]:
            if handle is not None:
                handle.cancel()
        for lookup in self._lookups.values():
            lookup.cancel()
        if self._net is not None:
            self._net.close()
        for watcher in list(self._watchers):
            watcher.put(None)

    # -- Registry ------------------------------------------------------------------------

    async def register(self, service: Service, *, ttl: float | None = None) -> None:
        """Publish the nodes; see :meth:`micro.registry.Registry.register`."""
        await self.start()
        pubs = [self._publication(service, n, d) for n in service.nodes for d in self._domains]
        now = self._now()
        record_ttl = math.ceil(ttl) if ttl else DEFAULT_RECORD_TTL
        announce = []
        for pub in pubs:
            key = pub.instance.lower()
            old = self._published.get(key)
            entry = Published(pub, max(1, record_ttl), now + ttl if ttl else None)
            self._published[key] = entry
            announce.append((entry, old is None or old.pub != pub))
        self._announce(announce)
        self._reschedule()

    async def deregister(self, service: Service) -> None:
        """Send goodbyes for the nodes; unknown nodes are ignored."""
        gone = []
        for node, domain in ((n, d) for n in service.nodes for d in self._domains):
            key = f"{node.id}.{service.name}.{domain}.".lower()
            if (entry := self._published.pop(key, None)) is not None:
                gone.append(entry)
                if (timer := self._timers.pop(key, None)) is not None:
                    timer.cancel()
        if gone and self._net is not None:
            self._goodbye(gone)
            self._reschedule()

    async def get_service(self, name: str) -> list[Service]:
        """The versions of ``name`` with their nodes; see the class notes on caching."""
        await self.start()
        found = self._services(name)
        if (not found or name not in self._warm) and self._askable(name):
            await self._lookup(name)
            found = self._services(name)
        if not found:
            raise ServiceNotFound(f"service {name}: not found", id="go.micro.registry")
        return group_by_version(found)

    async def list_services(self) -> list[Service]:
        """Every service name answering within ``timeout`` (full entries where known)."""
        await self.start()
        self._query([f"_services.{d}." for d in self._domains])
        await asyncio.sleep(self._timeout)
        names = self._cache.names()
        out = [Service(n) for n in names if not self._services(n)]
        out += group_by_version(v for v in self._nodes.views.values() if v.name in names)
        return sorted(out, key=lambda s: (s.name, s.version))

    def watch(self, service: str | None = None) -> Watcher:
        """Changes from this call on; see :meth:`micro.registry.Registry.watch`."""
        watcher = _Watcher(self, service)
        if self._closed:
            watcher.put(None)
        else:
            self._watchers.add(watcher)
        return watcher

    # -- publishing ----------------------------------------------------------------------

    def _publication(self, service: Service, node: Node, domain: str) -> Publication:
        """Validate one node and lay it out as records in ``domain``."""
        try:
            metadata = dict(node.metadata)
            if is_name_address(node.address):
                # a transport's name (a NATS subject, a RabbitMQ queue), not host:port: it
                # travels in the TXT metadata; the SRV names this host with port 0
                host, port, metadata[NAME_ADDRESS_KEY] = self._hostname, 0, node.address
                address = None
            else:
                host, port = split_host_port(node.address)
                address = host if is_ip(host) else None
            target = f"{self._hostname}." if address else f"{host.rstrip('.')}."
            payload = TxtPayload(service.name, service.version, tuple(service.endpoints), metadata)
            pub = Publication(
                service.name, domain, node.id, target, address, port, encode_txt(payload)
            )
            for name in (pub.instance, pub.service_type, target):
                check_name(name)
        except ValueError as exc:
            raise RegistryError(f"cannot publish node {node.id!r}: {exc}") from exc
        if len(join_strings(pub.txt)) > MAX_TXT:
            raise RegistryError(f"service {service.name} is too large for an mDNS packet")
        return pub

    def _announce(self, entries: list[tuple[Published, bool]]) -> None:
        """Multicast the nodes' records now; a new or changed node (``True``) again in 1 s."""
        groups: list[Group] = []
        for entry, again in entries:
            groups += self._publisher.announcement(entry, self._now())
            key = entry.pub.instance.lower()
            if (timer := self._timers.pop(key, None)) is not None:
                timer.cancel()
            if again or entry.expires is None:
                delay = _SECOND_ANNOUNCEMENT if again else 0.8 * entry.ttl
                self._timers[key] = self._call_later(delay, self._reannounce, key, entry)
        self._send_own(instance_packets(groups))

    def _reannounce(self, key: str, entry: Published) -> None:
        """Queue the entry; timers due together go out in one batch, processed once."""
        self._timers.pop(key, None)
        if not self._due:
            self._call_later(0, self._reannounce_due)
        self._due.append((key, entry))

    def _reannounce_due(self) -> None:
        due, self._due, now = self._due, [], self._now()
        live = [e for k, e in due if self._published.get(k) is e and e.live(now + 0.05)]
        if live and not self._closed:
            self._announce([(entry, False) for entry in live])

    def _goodbye(self, entries: list[Published]) -> None:
        """Multicast TTL-0 records for ``entries``, and for wildcards no node uses any more."""
        self._send_own(instance_packets(self._publisher.goodbye(entries)))

    def _send_own(self, packets: list[bytes]) -> None:
        """Multicast our records and apply them here at once (their echo is ignored)."""
        if self._net is None:
            return
        self._remember(packets)
        touched: set[str] = set()
        for packet in packets:
            if (parsed := read_packet(packet)) is not None:
                touched |= self._cache.ingest(parsed.records, self._now())
        self._apply(touched)
        self._net.multicast(packets)

    def _remember(self, packets: list[bytes]) -> None:
        """Note packets we sent, so that their loopback echo is not read as news."""
        now = self._now()
        self._sent = {p: t for p, t in self._sent.items() if t > now}
        self._sent.update(dict.fromkeys(packets, now + _OWN_ECHO_WINDOW))

    # -- receiving -----------------------------------------------------------------------

    def _on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        """Answer queries about our nodes; cache everything else."""
        if data in self._sent or self._closed:
            return
        try:
            packet = read_packet(data)
            if packet is None:
                return
            if packet.query:
                self._answer(packet, addr)
            else:
                self._apply(self._cache.ingest(packet.records, self._now()))
        except Exception:  # a bad packet must never take the registry down
            log.exception("mdns: dropped a packet from %s", addr)

    def _answer(self, packet: Packet, addr: tuple[str, int]) -> None:
        """Answer with one packet per instance: by unicast to a one-shot asker, else to all."""
        assert self._net is not None
        groups = self._publisher.answers(packet.questions, self._now())
        if not groups:
            return
        if addr[1] != MDNS_PORT:  # one-shot query: reply to the asker at once (RFC 6762 6.7)
            packets = instance_packets(groups, query_id=packet.id, questions=packet.questions)
            self._remember(packets)
            self._net.unicast(packets, addr)
        else:
            packets = instance_packets(groups)
            self._remember(packets)
            self._net.multicast(packets)

    def _apply(self, touched: set[str]) -> None:
        """Turn cache changes into watch results and wake lookups waiting on them."""
        results, heard = self._nodes.update(self._cache, touched)
        for name in heard:
            for event in self._waiters.get(name, ()):
                event.set()
        for result in results:
            self._emit(result)
        self._reschedule()

    def _emit(self, result: Result) -> None:
        for watcher in list(self._watchers):
            if watcher.service in (None, result.service.name):
                watcher.put(result)

    # -- lookups and time ----------------------------------------------------------------

    def _services(self, name: str) -> list[Service]:
        return [v for v in self._nodes.views.values() if v.name == name]

    def _askable(self, name: str) -> bool:
        return all(is_dns_name(f"{name}.{domain}.") for domain in self._domains)

    async def _lookup(self, name: str) -> None:
        """Query for ``name``, shared by concurrent callers; returns once answers are in."""
        lookup = self._lookups.get(name)
        if lookup is None:
            lookup = self._lookups[name] = asyncio.ensure_future(self._run_lookup(name))
            lookup.add_done_callback(lambda _: self._lookups.pop(name, None))
        try:
            await asyncio.shield(lookup)
        except asyncio.CancelledError:
            if lookup.cancelled() and self._closed:  # close() ended it, not our caller
                raise RegistryError("mdns registry closed", id="go.micro.registry") from None
            raise

    async def _run_lookup(self, name: str) -> None:
        answered = asyncio.Event()
        self._waiters.setdefault(name, set()).add(answered)
        try:
            self._query([f"{name}.{d}." for d in self._domains])
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._timeout):
                    await answered.wait()
                # answers are arriving: give the other responders a moment
                await asyncio.sleep(self._timeout / 5)
            self._warm.add(name)
        finally:
            waiters = self._waiters.get(name, set())
            waiters.discard(answered)
            if not waiters:
                self._waiters.pop(name, None)

    def _query(self, names: list[str]) -> None:
        if self._net is not None:
            self._net.query(query_packets(names))

    def _interested(self, name: str) -> bool:
        """Whether nodes of ``name`` are worth a refresh query before they lapse."""
        return name in self._warm or any(w.service in (None, name) for w in self._watchers)

    def _tick(self) -> None:
        """Expire our lapsed registrations and stale cache entries; send refresh queries."""
        self._tick_handle = None
        if self._closed:
            return
        try:
            now = self._now()
            lapsed = [k for k, e in self._published.items() if e.expires and e.expires <= now]
            if lapsed:
                self._goodbye([self._published.pop(k) for k in lapsed])
            self._apply(self._cache.expire(now))
            if names := self._cache.due_refresh(now, self._interested):
                self._query(sorted(names))
        except Exception:  # a timer callback: log, keep ticking
            log.exception("mdns: housekeeping failed")
        self._reschedule()

    def _reschedule(self) -> None:
        """Arm the timer for the next expiry or refresh."""
        if self._closed or self._loop is None:
            return
        times = [e.expires for e in self._published.values() if e.expires is not None]
        if (deadline := self._cache.next_deadline(self._interested)) is not None:
            times.append(deadline)
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        if times:
            self._tick_handle = self._loop.call_at(min(times) + 0.001, self._tick)

    def _call_later(
        self, delay: float, callback: Callable[..., object], *args: object
    ) -> asyncio.TimerHandle:
        assert self._loop is not None
        return self._loop.call_later(delay, callback, *args)

    def _now(self) -> float:
        return self._loop.time() if self._loop is not None else 0.0


def _checked_domain(domain: str) -> str:
    """``domain`` without its dots, if DNS can carry names in it."""
    name = domain.strip(".")
    try:
        if not name:
            raise ValueError("it is empty")
        check_name(f"_services.{name}.")
    except ValueError as exc:
        raise RegistryError(f"mdns domain {domain!r}: {exc}", id="go.micro.registry") from exc
    return name


class _Watcher:
    """The async iterator :meth:`MdnsRegistry.watch` returns; it subscribes when created."""

    def __init__(self, registry: MdnsRegistry, service: str | None) -> None:
        self._registry = registry
        self.service = service
        self._queue: asyncio.Queue[Result | None] = asyncio.Queue()
        self._done = False

    def __aiter__(self) -> _Watcher:
        return self

    async def __anext__(self) -> Result:
        if self._done:
            raise StopAsyncIteration
        if self._queue.empty() and not self._registry._closed:
            await self._registry.start()
        result = await self._queue.get()
        if result is None:
            self._done = True
            raise StopAsyncIteration
        return result

    def put(self, result: Result | None) -> None:
        self._queue.put_nowait(result)

    async def aclose(self) -> None:
        """Stop watching; a pending ``__anext__`` ends too."""
        self._registry._watchers.discard(self)
        self._done = True
        self.put(None)
