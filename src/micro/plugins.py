"""Backends by name: one table, lazy imports, install hints, and the env/flag builders.

``MICRO_REGISTRY=mdns`` (or ``--registry mdns``, or ``Service(registry="mdns")``) resolves
here. Third-party packages add backends through entry-point groups ``micro.registry``,
``micro.selector``, ``micro.transport`` and ``micro.broker`` (``name = "pkg.module:Class"``).
An unknown name fails at once, listing the known names and the extra that provides each.

The ``memory`` backends are shared per process when chosen by name, so that a service and a
client in one process (a test, a notebook) find each other; pass instances to isolate them.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any, TypeVar

from micro.errors import MicroError

__all__ = [
    "DISTRIBUTION",
    "PluginNotFound",
    "install_hint",
    "create_broker",
    "known",
    "resolve",
]

T = TypeVar("T")

DISTRIBUTION = "pymicro-toolkit"
"""The name this library is published under on PyPI (its import name is ``micro``)."""


def install_hint(extra: str) -> str:
    """The pip command that installs the driver of ``extra``."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"


# kind -> name -> ("module:Class", extra that installs its driver or "" for the core)
TABLE: dict[str, dict[str, tuple[str, str]]] = {
    "registry": {
        "memory": ("micro.registry.memory:MemoryRegistry", ""),
        "mdns": ("micro.registry.mdns:MdnsRegistry", "mdns"),
        "etcd": ("micro.registry.etcd:EtcdRegistry", "etcd"),
        "consul": ("micro.registry.consul:ConsulRegistry", "consul"),
        "nats": ("micro.registry.nats:NatsRegistry", "nats"),
        "kubernetes": ("micro.registry.kubernetes:KubernetesRegistry", "kubernetes"),
    },
    "selector": {
        "registry": ("micro.selector.cache:RegistrySelector", ""),
        "cache": ("micro.selector.cache:RegistrySelector", ""),
        "default": ("micro.selector.cache:RegistrySelector", ""),
    },
    "transport": {
        "memory": ("micro.transport.memory:MemoryTransport", ""),
        "http": ("micro.transport.http:HttpTransport", ""),
    },
    "broker": {
        "memory": ("micro.broker.memory:MemoryBroker", ""),
        "http": ("micro.broker.http:HttpBroker", ""),
        "nats": ("micro.broker.nats:NatsBroker", "nats"),
        "rabbitmq": ("micro.broker.rabbitmq:RabbitmqBroker", "rabbitmq"),
        "redis": ("micro.broker.redis:RedisBroker", "redis"),
        "mqtt": ("micro.broker.mqtt:MqttBroker", "mqtt"),
    },
}

DEFAULTS = {"registry": "mdns", "selector": "registry", "transport": "http", "broker": "http"}

_shared_memory: dict[str, Any] = {}


class PluginNotFound(MicroError, LookupError):
    """An unknown backend name, or a backend whose driver is not installed."""

    code = 500


def _entry_points(kind: str) -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=f"micro.{kind}")}


def known(kind: str) -> list[str]:
    """The backend names available for ``kind`` (built-in and from entry points)."""
    return sorted({*TABLE.get(kind, {}), *_entry_points(kind)})


def resolve(kind: str, name: str) -> type[Any]:
    """The backend class for ``name``.

    Raises:
        PluginNotFound: unknown name, or its driver is missing (with the pip command to run).
    """
    target, extra = TABLE.get(kind, {}).get(name, ("", ""))
    if not target:
        target = _entry_points(kind).get(name, "")
    if not target:
        names = ", ".join(known(kind)) or "none"
        raise PluginNotFound(f"unknown {kind} {name!r}; known: {names}", id="go.micro.plugins")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f"; install it with: {install_hint(extra)}" if extra else ""
        raise PluginNotFound(
            f"{kind} {name!r} is not available ({exc}){hint}", id="go.micro.plugins"
        ) from exc
    cls: type[Any] = getattr(module, attr)
    return cls


def env(name: str, environ: Mapping[str, str] | None = None) -> str:
    """``MICRO_<NAME>`` from the environment ("" when unset)."""
    return (environ if environ is not None else os.environ).get(f"MICRO_{name.upper()}", "")


def create(kind: str, name: str | None = None, **options: Any) -> Any:
    """An instance of the ``kind`` backend named ``name`` (env, then default, when ``None``).

    ``options`` are passed to the constructor; empty values are dropped so backend defaults
    apply. ``MICRO_<KIND>_ADDRESS`` fills ``address`` when the backend takes one and none is
    given. Memory backends chosen by name are shared within the process.
    """
    chosen = name or env(kind) or DEFAULTS[kind]
    if chosen == "memory" and not options:
        if kind not in _shared_memory:
            _shared_memory[kind] = resolve(kind, chosen)()
        return _shared_memory[kind]
    cls = resolve(kind, chosen)
    options = {k: v for k, v in options.items() if v not in (None, "", [], ())}
    address = env(f"{kind}_address")
    if "address" not in options and address and _accepts(cls, "address"):
        options["address"] = address
    return cls(**options)


def _accepts(cls: type[Any], keyword: str) -> bool:
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False
    return keyword in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def create_broker(
    name: str | None = None, *, registry: Any = None, address: str | None = None
) -> Any:
    """A broker by name (env, then default), given ``registry`` if it takes one (``http``).

    ``address`` (``MICRO_BROKER_ADDRESS`` when None) goes to every backend that takes it.
    """
    chosen = name or env("broker") or DEFAULTS["broker"]
    options: dict[str, Any] = {"address": address or env("broker_address") or None}
    if registry is not None:
        import inspect

        if "registry" in inspect.signature(resolve("broker", chosen)).parameters:
            options["registry"] = registry
    if chosen == "memory":
        options.pop("address")
    return create("broker", chosen, **options)


def is_shared(backend: object) -> bool:
    """True for the per-process memory backends that :func:`create` hands out by name."""
    return any(backend is shared for shared in _shared_memory.values())
