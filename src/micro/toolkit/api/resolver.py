"""Resolvers: which service and endpoint an HTTP request goes to.

go-micro's path rules (``micro`` resolver, the default), for the namespace ``ns``:

====================  ================  =====================  ====================
handler kind          path              service                endpoint / extra
====================  ================  =====================  ====================
rpc, api, meta        ``/foo``          ``ns.foo``             ``Foo``
rpc, api, meta        ``/foo/bar``      ``ns.foo``             ``Foo.Bar``
rpc, api, meta        ``/foo/bar/baz``  ``ns.foo``             ``Bar.Baz``
rpc, api, meta        ``/foo/bar/baz/cat`` ``ns.foo.bar``      ``Baz.Cat``
rpc, api, meta        ``/v1/foo/bar``   ``ns.v1.foo``          ``Foo.Bar``
http, web             ``/foo/...``      ``ns.foo``             path forwarded unchanged
http, web             ``/v1/foo/...``   ``ns.v1.foo``
event                 ``/``             topic ``ns``           name ``event``
event                 ``/user``         topic ``ns.user``      name ``""``
event                 ``/user/login/john`` topic ``ns.user``   name ``login.john``
====================  ================  =====================  ====================

Segments are CamelCased per ``-``-separated word (``say-hello`` -> ``SayHello``). The
namespace joins as go-micro joins it: ``ns`` ending in ``-`` is glued to the name with dots
turned into dashes, ``ns`` ending in ``.`` is glued as is, an empty ``ns`` leaves the name
alone, otherwise ``ns + "." + name``.

The other resolvers: ``host`` (service = the Host header, endpoint from the last one or two
path segments), ``path`` (service = the namespaced first segment, endpoint from the rest, as
the ``micro`` rules read two segments) and ``grpc`` (``/pkg.Service/Method`` -> service
``pkg``, endpoint ``Service.Method``; no namespace).
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass

from micro.errors import NotFound

__all__ = [
    "GrpcResolver",
    "HostResolver",
    "MicroResolver",
    "PathResolver",
    "Resolver",
    "Route",
    "camel",
    "in_namespace",
    "join_namespace",
    "kebab",
    "make_resolver",
    "method_name",
]

API_ID = "go.micro.api"
_VERSION = re.compile(r"^v[0-9]+$")
_SEGMENT = re.compile(r"^[a-zA-Z0-9_]+(-[a-zA-Z0-9_]+)*$")
_KEBAB = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

HANDLERS = ("meta", "rpc", "api", "http", "proxy", "web", "event")


@dataclass(frozen=True, slots=True)
class Route:
    """Where one request goes.

    Attributes:
        service: the service name (for ``event``: the topic).
        endpoint: ``Handler.Method`` (for ``event``: the event name; for http/web: "").
        path: the path to forward (http/web), else the request path.
        handler: the handler kind that serves it (``rpc``, ``api``, ``http``, ...).
    """

    service: str
    endpoint: str
    path: str = "/"
    handler: str = "rpc"


def camel(segment: str) -> str:
    """``say-hello`` -> ``SayHello`` (first letter of each word upper, the rest unchanged)."""
    return "".join(word[:1].upper() + word[1:] for word in segment.split("-"))


def kebab(name: str) -> str:
    """``SayHello`` -> ``say-hello``: the inverse of :func:`camel` for plain CamelCase."""
    return _KEBAB.sub("-", name).lower()


def method_name(parts: list[str]) -> str:
    """``["greeter", "say-hello"]`` -> ``Greeter.SayHello``."""
    return ".".join(camel(p) for p in parts)


def join_namespace(namespace: str, name: str) -> str:
    """The full service name of ``name`` in ``namespace`` (go-micro's join rules)."""
    if not namespace:
        return name
    if namespace.endswith("-"):
        return namespace + name.replace(".", "-")
    if namespace.endswith("."):
        return namespace + name
    return f"{namespace}.{name}"


def in_namespace(namespace: str, service: str) -> str | None:
    """The short name of ``service`` within ``namespace``, or None when outside it."""
    if not namespace:
        return service
    prefix = namespace if namespace.endswith(("-", ".")) else namespace + "."
    if service.startswith(prefix) and len(service) > len(prefix):
        return service[len(prefix) :]
    return None


def _segments(path: str) -> list[str]:
    parts = [p for p in path.split("/") if p and p != "."]
    for part in parts:
        if not _SEGMENT.match(part):
            raise NotFound(f"invalid path segment {part!r} in {path!r}", id=API_ID)
    return parts


def api_route(parts: list[str]) -> tuple[str, str]:
    """go-micro's split of path segments into (short service name, endpoint)."""
    if len(parts) <= 2:
        return parts[0], method_name(parts)
    if len(parts) == 3 and _VERSION.match(parts[0]):
        return ".".join(parts[:2]), method_name(parts[1:])
    return ".".join(parts[:-2]), method_name(parts[-2:])


class Resolver(abc.ABC):
    """Maps a request to a :class:`Route` for one handler kind."""

    name: str = "resolver"

    def __init__(self, namespace: str = "go.micro.api") -> None:
        self.namespace = namespace

    @abc.abstractmethod
    def resolve(self, kind: str, path: str, host: str = "") -> Route:
        """The route of a request with this ``path`` and ``host`` for handler ``kind``.

        Args:
            kind: the handler kind (``rpc``, ``api``, ``http``, ``web``, ``event``...).
            path: the URL path (no query string).
            host: the Host header (a port, if any, is ignored).

        Raises:
            NotFound: the path names no service (empty, or invalid segments).
        """


class MicroResolver(Resolver):
    """go-micro's path rules (the table in the module docstring)."""

    name = "micro"

    def resolve(self, kind: str, path: str, host: str = "") -> Route:
        parts = _segments(path)
        if kind == "event":
            return self._event(parts, path)
        if not parts:
            raise NotFound(f"no service for path {path!r}", id=API_ID)
        if kind in ("http", "proxy", "web"):
            short = ".".join(parts[:2]) if len(parts) > 1 and _VERSION.match(parts[0]) else parts[0]
            return Route(join_namespace(self.namespace, short), "", path, kind)
        short, endpoint = api_route(parts)
        return Route(join_namespace(self.namespace, short), endpoint, path, kind)

    def _event(self, parts: list[str], path: str) -> Route:
        if not parts:
            if not self.namespace:
                raise NotFound("no topic for '/' with an empty namespace", id=API_ID)
            return Route(self.namespace, "event", path, "event")
        topic = join_namespace(self.namespace, parts[0])
        return Route(topic, ".".join(parts[1:]), path, "event")


def _tail_endpoint(parts: list[str], path: str) -> str:
    if not parts:
        raise NotFound(f"no endpoint in path {path!r}", id=API_ID)
    return method_name(parts[-2:])


class HostResolver(Resolver):
    """Service = the Host header (without port); endpoint from the last path segments."""

    name = "host"

    def resolve(self, kind: str, path: str, host: str = "") -> Route:
        service = host.rsplit(":", 1)[0] if not host.startswith("[") else host
        if not service:
            raise NotFound("no Host header to resolve the service from", id=API_ID)
        parts = _segments(path)
        if kind in ("http", "proxy", "web"):
            return Route(service, "", path, kind)
        if kind == "event":
            return Route(service, ".".join(parts), path, kind)
        return Route(service, _tail_endpoint(parts, path), path, kind)


class PathResolver(Resolver):
    """Service = the namespaced first segment; endpoint as the ``micro`` rules read two."""

    name = "path"

    def resolve(self, kind: str, path: str, host: str = "") -> Route:
        parts = _segments(path)
        if not parts:
            raise NotFound(f"no service for path {path!r}", id=API_ID)
        service = join_namespace(self.namespace, parts[0])
        if kind in ("http", "proxy", "web"):
            return Route(service, "", path, kind)
        if kind == "event":
            return Route(service, ".".join(parts[1:]), path, kind)
        rest = parts if len(parts) <= 2 else parts[1:]
        return Route(service, _tail_endpoint(rest, path), path, kind)


class GrpcResolver(Resolver):
    """``/pkg.Service/Method`` -> service ``pkg``, endpoint ``Service.Method``."""

    name = "grpc"

    def resolve(self, kind: str, path: str, host: str = "") -> Route:
        parts = [p for p in path.split("/") if p]
        if len(parts) != 2 or "." not in parts[0]:
            raise NotFound(f"{path!r} is not a gRPC path /package.Service/Method", id=API_ID)
        package, _, handler = parts[0].rpartition(".")
        if not package or not handler or not parts[1]:
            raise NotFound(f"{path!r} is not a gRPC path /package.Service/Method", id=API_ID)
        return Route(package, f"{handler}.{parts[1]}", path, kind)


RESOLVERS: dict[str, type[Resolver]] = {
    "micro": MicroResolver,
    "host": HostResolver,
    "path": PathResolver,
    "grpc": GrpcResolver,
}


def make_resolver(name: str, namespace: str) -> Resolver:
    """The resolver called ``name`` (``micro``, ``host``, ``path``, ``grpc``).

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    cls = RESOLVERS.get(name)
    if cls is None:
        raise ValueError(f"unknown resolver {name!r}; known: {', '.join(RESOLVERS)}")
    return cls(namespace)
