"""Filters: narrow the services (one per version) and nodes a selection may use.

Each returns a :data:`~micro.selector.Filter`, applied per call::

    next_node = await selector.select("greeter", filters=[filter_version("1.0.0")])

Filters never mutate their input (it is the selector's cache); services left without nodes
are dropped, so an empty result means "none available".
"""

from __future__ import annotations

import msgspec

from micro.registry import Service
from micro.selector import Filter

__all__ = ["filter_endpoint", "filter_label", "filter_version"]


def filter_version(*versions: str) -> Filter:
    """Keep the services whose version is one of ``versions``."""
    wanted = frozenset(versions)

    def by_version(services: list[Service]) -> list[Service]:
        return [s for s in services if s.version in wanted and s.nodes]

    return by_version


def filter_label(key: str, value: str) -> Filter:
    """Keep the nodes whose metadata has ``key`` set to ``value``."""

    def by_label(services: list[Service]) -> list[Service]:
        out: list[Service] = []
        for service in services:
            nodes = [n for n in service.nodes if n.metadata.get(key) == value]
            if len(nodes) == len(service.nodes):
                if nodes:
                    out.append(service)
            elif nodes:
                out.append(msgspec.structs.replace(service, nodes=nodes))
        return out

    return by_label


def filter_endpoint(name: str) -> Filter:
    """Keep the services that advertise the endpoint ``name`` (``Handler.Method``)."""

    def by_endpoint(services: list[Service]) -> list[Service]:
        return [s for s in services if s.nodes and any(e.name == name for e in s.endpoints)]

    return by_endpoint
