"""The registry entries of one HTTP broker subscription, readable by every go-micro v1 publisher
this broker serves.

A go-micro publisher finds subscribers by service name, and which name depends on its version
(docs/broker.md, "Registry"):

* v1.0 to v1.12 look up ``topic:<topic>`` and post to every node of version
  ``ff.http.broadcast`` and to one node per other version (a queue group);
* v1.18 and later look up ``go.micro.http.broker`` and keep the nodes whose metadata says
  ``broker=http`` and ``topic=<topic>``.

So a subscription is registered under both names, with one node id: whichever entry a
publisher found, its ``POST /_sub?id=<node id>`` reaches the same subscription, and a reader of
both (this broker) counts the node once.

Before v1.8 a node carried its port apart from its host, and go-micro v1.0 builds the URL as
``<address>:<port>``. mDNS and Consul keep host and port apart on the wire anyway; the
registries that store the node's JSON as written (etcd, NATS, Kubernetes) get the ``topic:``
entry's node in that older form, ``"address": "<host>", "port": <port>``, which this project's
decoder joins back into ``host:port``.
"""

from __future__ import annotations

import msgspec

from micro.broker._http_wire import LEGACY_PREFIX, SERVICE
from micro.registry import Node, Service, split_host_port

__all__ = ["JSON_REGISTRIES", "PortNode", "as_stored", "subscription_entries"]

JSON_REGISTRIES = frozenset({"etcd", "nats", "kubernetes"})
"""Registries (by ``Registry.name``) that store a service's JSON as written."""


class PortNode(Node, kw_only=True):
    """A node in go-micro's pre-v1.8 form: ``address`` is the host alone, ``port`` beside it.

    Only ever handed to a registry to encode; everything read back is a plain :class:`Node`.
    """

    port: int = 0

    @property
    def host(self) -> str:
        return self.address


def subscription_entries(node: Node, topic: str, version: str) -> list[Service]:
    """The ``go.micro.http.broker`` and ``topic:<topic>`` entries, both holding ``node``."""
    return [
        Service(name=SERVICE, version=version, nodes=[node]),
        Service(name=LEGACY_PREFIX + topic, version=version, nodes=[node]),
    ]


def as_stored(service: Service, registry: str) -> Service:
    """``service`` as the registry named ``registry`` should be given it: a ``topic:`` entry
    for a registry of :data:`JSON_REGISTRIES` gets its nodes as :class:`PortNode`."""
    if registry not in JSON_REGISTRIES or not service.name.startswith(LEGACY_PREFIX):
        return service
    return msgspec.structs.replace(service, nodes=[_split(node) for node in service.nodes])


def _split(node: Node) -> Node:
    host, port = split_host_port(node.address)
    return PortNode(id=node.id, address=host, metadata=node.metadata, port=port)
