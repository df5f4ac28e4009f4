"""Backends by name: one table, lazy imports, install hints.

``MICRO_REGISTRY=mdns`` (or ``--registry mdns``, or ``Service(registry="mdns")``), read by
:mod:`micro.settings`, resolves here; this module never reads the environment.
Third-party packages add backends through entry-point groups ``micro.registry``,
``micro.selector``, ``micro.transport`` and ``micro.broker`` (``name = "pkg.module:Class"``).
An unknown name fails at once, listing the known names and the extra that provides each.

The ``memory`` backends are shared per process when chosen by name, so that a service and a
client in one process (a test, a notebook) find each other; pass instances to isolate them.
"""

from __future__ import annotations

import importlib
import inspect
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from micro.errors import PluginNotFound

if TYPE_CHECKING:
    from micro.broker import Broker
    from micro.registry import Registry
    from micro.selector import Selector
    from micro.settings import Settings
    from micro.transport import Transport

__all__ = [
    "DEFAULTS",
    "DISTRIBUTION",
    "Kind",
    "PluginNotFound",
    "create",
    "create_broker",
    "install_hint",
    "is_shared",
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
        "proxy": ("micro.registry.proxy:ProxyRegistry", "proxy"),
    },
    "selector": {
        "registry": ("micro.selector.cache:RegistrySelector", ""),
        "cache": ("micro.selector.cache:RegistrySelector", ""),
        "default": ("micro.selector.cache:RegistrySelector", ""),
    },
    "transport": {
        "memory": ("micro.transport.memory:MemoryTransport", ""),
        "http": ("micro.transport.http:HttpTransport", ""),
        "nats": ("micro.transport.nats:NatsTransport", "nats"),
        "rabbitmq": ("micro.transport.rabbitmq:RabbitmqTransport", "rabbitmq"),
        "tcp": ("micro.transport.tcp:TcpTransport", ""),
    },
    "broker": {
        "memory": ("micro.broker.memory:MemoryBroker", ""),
        "http": ("micro.broker.http:HttpBroker", ""),
        "nats": ("micro.broker.nats:NatsBroker", "nats"),
        "rabbitmq": ("micro.broker.rabbitmq:RabbitmqBroker", "rabbitmq"),
        "redis": ("micro.broker.redis:RedisBroker", "redis"),
        "mqtt": ("micro.broker.mqtt:MqttBroker", "mqtt"),
        "proxy": ("micro.broker.proxy:ProxyBroker", "proxy"),
    },
}

DEFAULTS = {"registry": "mdns", "selector": "registry", "transport": "http", "broker": "http"}

_shared_memory: dict[str, Any] = {}


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


Kind = Literal["registry", "selector", "transport", "broker"]
"""The kinds of backend chosen by name."""


@overload
def create(
    kind: Literal["registry"],
    name: str | None = None,
    *,
    settings: Settings | None = None,
    **options: Any,
) -> Registry: ...


@overload
def create(
    kind: Literal["selector"],
    name: str | None = None,
    *,
    settings: Settings | None = None,
    **options: Any,
) -> Selector: ...


@overload
def create(
    kind: Literal["transport"],
    name: str | None = None,
    *,
    settings: Settings | None = None,
    **options: Any,
) -> Transport: ...


@overload
def create(
    kind: Literal["broker"],
    name: str | None = None,
    *,
    settings: Settings | None = None,
    **options: Any,
) -> Broker: ...


def create(
    kind: Kind, name: str | None = None, *, settings: Settings | None = None, **options: Any
) -> Any:
    """An instance of the ``kind`` backend named ``name``.

    The name is ``name``, else ``proxy`` for a registry or broker when ``settings`` carry a
    ``proxy_address`` (see :func:`_named`), else ``settings[kind]``, else the default
    (``mdns``, ``registry``, ``http``, ``http``). Its constructor gets the keywords
    ``settings`` makes for this kind (:meth:`micro.settings.Settings.options_for`, only
    those the backend accepts), then ``options`` (which win; empty values are dropped so
    backend defaults apply). Memory backends chosen by name with no options are shared
    within the process.
    """
    chosen = name or _named(kind, settings)
    options = {k: v for k, v in options.items() if v not in (None, "", [], ())}
    if chosen == "memory" and not options:
        if kind not in _shared_memory:
            _shared_memory[kind] = resolve(kind, chosen)()
        return _shared_memory[kind]
    cls = resolve(kind, chosen)
    merged: dict[str, Any] = {}
    if settings is not None and chosen != "memory":
        merged = settings.options_for(kind, accepts=lambda keyword: _accepts(cls, keyword))
    merged.update(options)
    return cls(**merged)


PROXIED = frozenset({"registry", "broker"})
"""The kinds a ``proxy_address`` setting sends through ``micro proxy``."""


def _named(kind: str, settings: Settings | None) -> str:
    """The backend name ``settings`` choose for ``kind``.

    A ``proxy_address`` (``MICRO_PROXY_ADDRESS``, ``--proxy-address``) picks ``proxy`` for
    the registry and the broker over ``MICRO_REGISTRY``/``MICRO_BROKER``, whose engines are
    not reachable from outside the environment the proxy runs in; a name given in code
    still wins.
    """
    if settings is None:
        return DEFAULTS[kind]
    named = settings.get(kind)
    if kind in PROXIED and settings.get("proxy_address") and not _from_code(settings, kind):
        return "proxy"
    return named or DEFAULTS[kind]


def _from_code(settings: Settings, name: str) -> bool:
    source = getattr(settings, "source", None)
    try:
        return source is not None and source(name) == "code" and bool(settings.get(name))
    except KeyError:
        return False


def _accepts(cls: type[Any], keyword: str) -> bool:
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False
    return keyword in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def create_broker(
    name: str | None = None,
    *,
    registry: Registry | None = None,
    settings: Settings | None = None,
    address: str | None = None,
) -> Broker:
    """A broker by name (as :func:`create`), given ``registry`` if it takes one (``http``)."""
    chosen = name or _named("broker", settings)
    options: dict[str, Any] = {}
    if chosen != "memory":
        options["address"] = address
        if registry is not None and _accepts(resolve("broker", chosen), "registry"):
            options["registry"] = registry
    return create("broker", chosen, settings=settings, **options)


def is_shared(backend: object) -> bool:
    """True for the per-process memory backends that :func:`create` hands out by name."""
    return any(backend is shared for shared in _shared_memory.values())
