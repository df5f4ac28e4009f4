"""The address a server advertises: what peers should dial, never an unspecified host."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from micro.registry import join_host_port, split_host_port

__all__ = ["advertise_address", "private_ipv4"]

_UNSPECIFIED = frozenset({"", "0.0.0.0", "::", "[::]"})


def advertise_address(bound: str, advertise: str = "", pinned: Sequence[str] = ()) -> str:
    """``host:port`` to put in the registry.

    ``advertise`` wins (its port may be omitted: the bound port is used). An unspecified
    bound host becomes the first ``pinned`` address (the mDNS interfaces setting), else the
    host's private IPv4 address. A listener address that is a name, not ``host:port``, comes
    as ``scheme://name`` (the nats transport's ``nats://<subject>``, the rabbitmq
    transport's ``rabbitmq://<queue>``) and is advertised as ``name`` unless ``advertise``
    is given: what go-plugins registers, and what those transports dial.
    """
    if "://" in bound:
        return advertise or bound.partition("://")[2]
    host, port = split_host_port(bound)
    if advertise:
        try:
            split_host_port(advertise)
        except ValueError:
            return join_host_port(advertise.strip("[]"), port)
        return advertise
    if host in _UNSPECIFIED:
        host = next((a.strip() for a in pinned if a.strip()), "") or private_ipv4()
    return join_host_port(host, port)


def private_ipv4() -> str:
    """The first private IPv4 address of this host's interfaces (no packet is sent).

    Falls back to any non-loopback IPv4 address, then to ``127.0.0.1``.
    """
    candidates = [ip for ip in _interface_ipv4s() if not ip.is_loopback and not ip.is_link_local]
    for ip in candidates:
        if ip.is_private:
            return str(ip)
    return str(candidates[0]) if candidates else "127.0.0.1"


def _interface_ipv4s() -> list[ipaddress.IPv4Address]:
    try:
        import ifaddr  # a dependency of zeroconf, itself a core dependency
    except ImportError:  # pragma: no cover - zeroconf always brings it
        return []
    found = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                try:
                    found.append(ipaddress.IPv4Address(ip.ip))
                except ValueError:
                    continue
    return found
