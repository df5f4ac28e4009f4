"""Resolvers: go-micro's path rules table, namespaces, and the host/path/grpc resolvers."""

from __future__ import annotations

import pytest

from micro.errors import NotFound
from micro.toolkit.api.openapi import endpoint_path
from micro.toolkit.api.resolver import (
    GrpcResolver,
    HostResolver,
    MicroResolver,
    PathResolver,
    camel,
    in_namespace,
    join_namespace,
    kebab,
    make_resolver,
)

NS = "go.micro.api"


@pytest.mark.parametrize(
    ("path", "service", "endpoint"),
    [
        ("/foo", "go.micro.api.foo", "Foo"),
        ("/foo/bar", "go.micro.api.foo", "Foo.Bar"),
        ("/foo/bar/baz", "go.micro.api.foo", "Bar.Baz"),
        ("/foo/bar/baz/cat", "go.micro.api.foo.bar", "Baz.Cat"),
        ("/v1/foo/bar", "go.micro.api.v1.foo", "Foo.Bar"),
        ("/v1/foo/bar/baz", "go.micro.api.v1.foo", "Bar.Baz"),
        ("/greeter/say-hello", "go.micro.api.greeter", "Greeter.SayHello"),
        ("/greeter/say-hello/", "go.micro.api.greeter", "Greeter.SayHello"),
    ],
)
@pytest.mark.parametrize("kind", ["rpc", "api", "meta"])
def test_micro_rules_for_rpc_kinds(kind: str, path: str, service: str, endpoint: str) -> None:
    route = MicroResolver(NS).resolve(kind, path)
    assert (route.service, route.endpoint, route.handler) == (service, endpoint, kind)


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/foo", "go.micro.api.foo"),
        ("/foo/a/b/c", "go.micro.api.foo"),
        ("/v1/foo/x", "go.micro.api.v1.foo"),
    ],
)
@pytest.mark.parametrize("kind", ["http", "web", "proxy"])
def test_micro_rules_for_proxies_keep_the_path(kind: str, path: str, service: str) -> None:
    route = MicroResolver(NS).resolve(kind, path)
    assert (route.service, route.path) == (service, path)


@pytest.mark.parametrize(
    ("path", "topic", "name"),
    [
        ("/", "go.micro.api", "event"),
        ("/user", "go.micro.api.user", ""),
        ("/user/login/john", "go.micro.api.user", "login.john"),
    ],
)
def test_micro_rules_for_events(path: str, topic: str, name: str) -> None:
    route = MicroResolver(NS).resolve("event", path)
    assert (route.service, route.endpoint) == (topic, name)


@pytest.mark.parametrize(
    ("namespace", "name", "joined"),
    [
        ("go.micro.api", "greeter", "go.micro.api.greeter"),
        ("", "greeter", "greeter"),
        ("acme.", "v1.greeter", "acme.v1.greeter"),
        ("acme-", "v1.greeter", "acme-v1-greeter"),
    ],
)
def test_namespace_join_and_inverse(namespace: str, name: str, joined: str) -> None:
    assert join_namespace(namespace, name) == joined
    assert in_namespace(namespace, joined) == (
        name.replace(".", "-") if namespace.endswith("-") else name
    )


def test_empty_namespace_reaches_bare_names() -> None:
    route = MicroResolver("").resolve("rpc", "/greeter/say-hello")
    assert (route.service, route.endpoint) == ("greeter", "Greeter.SayHello")
    with pytest.raises(NotFound):
        MicroResolver("").resolve("event", "/")


@pytest.mark.parametrize("path", ["/", "", "/a b/c", "/greeter/%00", "/x/../../etc"])
def test_bad_paths_are_not_found(path: str) -> None:
    with pytest.raises(NotFound):
        MicroResolver(NS).resolve("rpc", path)


def test_host_resolver_uses_the_host_header() -> None:
    route = HostResolver(NS).resolve("rpc", "/greeter/say-hello", "shop.local:8080")
    assert (route.service, route.endpoint) == ("shop.local", "Greeter.SayHello")
    with pytest.raises(NotFound):
        HostResolver(NS).resolve("rpc", "/x", "")


def test_path_resolver_takes_the_first_segment() -> None:
    r = PathResolver(NS)
    assert r.resolve("rpc", "/greeter/say-hello").endpoint == "Greeter.SayHello"
    route = r.resolve("rpc", "/shop/cart/add-item")
    assert (route.service, route.endpoint) == ("go.micro.api.shop", "Cart.AddItem")
    assert r.resolve("http", "/shop/a/b/c").service == "go.micro.api.shop"


def test_grpc_resolver() -> None:
    route = GrpcResolver(NS).resolve("rpc", "/go.micro.srv.greeter.Greeter/SayHello")
    assert (route.service, route.endpoint) == ("go.micro.srv.greeter", "Greeter.SayHello")
    for bad in ("/greeter/say", "/a.b/c/d", "/.X/Y"):
        with pytest.raises(NotFound):
            GrpcResolver(NS).resolve("rpc", bad)


def test_make_resolver_names_the_known_ones() -> None:
    assert make_resolver("grpc", NS).name == "grpc"
    with pytest.raises(ValueError, match="known: micro, host, path, grpc"):
        make_resolver("dns", NS)


def test_camel_and_kebab_round_trip() -> None:
    assert camel("say-hello") == "SayHello"
    assert camel("sayHello") == "SayHello"
    assert kebab("SayHello") == "say-hello"
    assert camel(kebab("GetUserById")) == "GetUserById"


@pytest.mark.parametrize(
    ("service", "endpoint", "path"),
    [
        ("go.micro.api.greeter", "Greeter.SayHello", "/greeter/say-hello"),
        ("go.micro.api.greeter", "Debug.Health", "/greeter/debug/health"),
        ("go.micro.api.shop.cart", "Cart.Add", "/shop/cart/cart/add"),
        ("go.micro.api.test-ab12", "Greeter.SayHello", "/test-ab12/greeter/say-hello"),
        ("other.greeter", "Greeter.SayHello", None),
    ],
)
def test_endpoint_path_round_trips_through_the_resolver(
    service: str, endpoint: str, path: str | None
) -> None:
    resolver = MicroResolver(NS)
    assert endpoint_path(resolver, service, endpoint) == path
    if path is not None:
        route = resolver.resolve("rpc", path)
        assert (route.service, route.endpoint) == (service, endpoint)
