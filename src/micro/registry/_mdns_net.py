"""The mDNS sockets, confined to the chosen IPv4 interfaces.

Per registry: one listener bound to the group address 224.0.0.251:5353 (so no unicast from
the network reaches it) that joins the group on each chosen interface only, and per interface
a responder socket bound to ``<interface>:5353`` and a query socket bound to
``<interface>:<ephemeral>`` (one-shot queries: responders answer it by unicast at once, and
only this process reads the answers). Outgoing multicast leaves through ``IP_MULTICAST_IF``
of the chosen interface; packets from outside the chosen interfaces' networks are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from micro.errors import RegistryError, translate

__all__ = ["Interface", "MdnsSockets", "choose_interfaces"]

log = logging.getLogger("micro.registry.mdns")

MDNS_ADDR = "224.0.0.251"
MDNS_PORT = 5353
_IP_MULTICAST_ALL = getattr(socket, "IP_MULTICAST_ALL", 49)  # Linux only
_LISTENER_BUFFER = 1 << 20  # bytes asked for; the kernel caps it (net.core.rmem_max)

Deliver = Callable[[bytes, tuple[str, int]], None]


@dataclass(frozen=True, slots=True)
class Interface:
    """An IPv4 interface address and the network it is on."""

    address: str
    network: ipaddress.IPv4Network


def choose_interfaces(pinned: Sequence[str] | None) -> tuple[list[Interface], bool]:
    """The interfaces to use and whether they were pinned (argument, else the setting).

    The one setting a backend resolves itself: an ``MdnsRegistry`` made anywhere without
    ``interfaces`` still obeys ``MICRO_MDNS_INTERFACES``, so that a machine pinned to
    loopback never multicasts on its real interfaces, whoever builds the registry.

    Raises:
        RegistryError: a pinned address is not IPv4 or is not on this machine.
    """
    if pinned is None:
        from micro.settings import load

        pinned = list(load(groups=("mdns",))["mdns_interfaces"] or ())
    known = _local_ipv4()
    if not pinned:
        chosen = [i for i in known if not i.network.is_loopback]
        return chosen or [i for i in known if i.network.is_loopback][:1], False
    out = []
    for address in pinned:
        try:
            ip = ipaddress.IPv4Address(address)
        except ValueError as exc:
            raise RegistryError(f"mdns interface {address!r} is not an IPv4 address") from exc
        match = next((i for i in known if i.address == str(ip)), None)
        if match is None:
            raise RegistryError(f"mdns interface {address} is not an address of this machine")
        out.append(match)
    return out, True


def _local_ipv4() -> list[Interface]:
    """Every IPv4 address of this machine with its network."""
    import ifaddr  # zeroconf's dependency

    with translate(RegistryError, "mdns: cannot list interfaces", id="go.micro.registry"):
        adapters = ifaddr.get_adapters()
    out = []
    for adapter in adapters:
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                net = ipaddress.IPv4Network(f"{ip.ip}/{ip.network_prefix}", strict=False)
                out.append(Interface(ip.ip, net))
    if not any(i.address == "127.0.0.1" for i in out):
        out.append(Interface("127.0.0.1", ipaddress.IPv4Network("127.0.0.0/8")))
    return out


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, deliver: Deliver) -> None:
        self._deliver = deliver

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._deliver(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("mdns socket error: %s", exc)


class MdnsSockets:
    """Open, send on and close the sockets for ``interfaces``.

    Args:
        interfaces: from :func:`choose_interfaces`.
        pinned: whether to drop packets from outside the interfaces' networks.
        deliver: called with ``(data, (host, port))`` for every accepted packet.
    """

    def __init__(self, interfaces: list[Interface], pinned: bool, deliver: Deliver) -> None:
        self.interfaces = interfaces
        self._pinned = pinned
        self._deliver = deliver
        self._listen: asyncio.DatagramTransport | None = None
        self._responders: list[tuple[Interface, asyncio.DatagramTransport]] = []
        self._queriers: list[asyncio.DatagramTransport] = []

    @property
    def sockets(self) -> list[socket.socket]:
        """The open sockets (for inspection)."""
        transports = [self._listen, *(t for _, t in self._responders), *self._queriers]
        return [t.get_extra_info("socket") for t in transports if t is not None]

    async def open(self) -> None:
        """Create and bind every socket. Raises RegistryError when the OS refuses."""
        try:
            self._listen = await self._endpoint(self._listener_socket())
            for iface in self.interfaces:
                responder = await self._endpoint(_sender(iface.address, MDNS_PORT))
                self._responders.append((iface, responder))
                self._queriers.append(await self._endpoint(_sender(iface.address, 0)))
        except OSError as exc:
            self.close()
            raise RegistryError(f"mdns sockets: {exc}", id="go.micro.registry") from exc

    async def _endpoint(self, sock: socket.socket) -> asyncio.DatagramTransport:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Protocol(self._accept), sock=sock
            )
        except BaseException:
            sock.close()
            raise
        return transport

    def _listener_socket(self) -> socket.socket:
        sock = _udp_socket()
        # every node goes out in packets of its own and loops back here: room for a burst
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _LISTENER_BUFFER)
        try:
            if sys.platform.startswith("linux"):
                sock.setsockopt(socket.IPPROTO_IP, _IP_MULTICAST_ALL, 0)
                sock.bind((MDNS_ADDR, MDNS_PORT))  # group only: no unicast from the network
            else:
                sock.bind(("", MDNS_PORT))
            for iface in self.interfaces:
                group = socket.inet_aton(MDNS_ADDR) + socket.inet_aton(iface.address)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, group)
        except OSError:
            sock.close()
            raise
        return sock

    def _accept(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.accepts(addr[0]):
            self._deliver(data, addr)

    def accepts(self, host: str) -> bool:
        """Whether a packet from ``host`` may be read (always, unless pinned)."""
        return not self._pinned or self._interface_for(host) is not None

    def _interface_for(self, host: str) -> Interface | None:
        try:
            ip = ipaddress.IPv4Address(host)
        except ValueError:
            return None
        return next((i for i in self.interfaces if ip in i.network), None)

    def multicast(self, packets: list[bytes]) -> None:
        """Send to the group from port 5353 on every interface."""
        for _, transport in self._responders:
            for packet in packets:
                transport.sendto(packet, (MDNS_ADDR, MDNS_PORT))

    def query(self, packets: list[bytes]) -> None:
        """Send one-shot queries to the group from the ephemeral query sockets."""
        for transport in self._queriers:
            for packet in packets:
                transport.sendto(packet, (MDNS_ADDR, MDNS_PORT))

    def unicast(self, packets: list[bytes], addr: tuple[str, int]) -> None:
        """Send to ``addr`` through the interface on its network (dropped if none)."""
        iface = self._interface_for(addr[0])
        responder = next((t for i, t in self._responders if i == iface), None)
        if responder is None and not self._pinned and self._responders:
            responder = self._responders[0][1]
        if responder is None:
            return
        for packet in packets:
            responder.sendto(packet, addr)

    def close(self) -> None:
        """Close every socket (idempotent, never raises)."""
        transports = [self._listen, *(t for _, t in self._responders), *self._queriers]
        for transport in transports:
            if transport is not None:
                with contextlib.suppress(Exception):  # close never raises
                    transport.close()
        self._listen, self._responders, self._queriers = None, [], []


def _udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "SO_REUSEPORT"):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setblocking(False)
    return sock


def _sender(address: str, port: int) -> socket.socket:
    """A socket bound to ``address`` whose multicast leaves through that interface only."""
    sock = _udp_socket()
    try:
        try:
            sock.bind((address, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or port == 0:
                raise
            log.warning("mdns: %s:%d is taken; answering from an ephemeral port", address, port)
            sock.bind((address, 0))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(address))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    except OSError:
        sock.close()
        raise
    return sock
