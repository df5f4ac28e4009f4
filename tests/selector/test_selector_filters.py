"""Filters narrow services and nodes without touching the selector's cached lists."""

from __future__ import annotations

import copy

from micro.registry import Endpoint, Service
from micro.selector.filters import filter_endpoint, filter_label, filter_version
from tests.selector.helpers import node

SERVICES = [
    Service(
        name="greeter",
        version="1.0.0",
        nodes=[node("a", zone="x"), node("b", zone="y")],
        endpoints=[Endpoint(name="Greeter.Hello")],
    ),
    Service(name="greeter", version="2.0.0", nodes=[node("c", zone="y")]),
    Service(name="greeter", version="3.0.0", nodes=[]),
]


def ids(services: list[Service]) -> list[str]:
    return [n.id for s in services for n in s.nodes]


def test_filter_version() -> None:
    assert ids(filter_version("2.0.0")(SERVICES)) == ["c"]
    assert ids(filter_version("1.0.0", "2.0.0")(SERVICES)) == ["a", "b", "c"]
    assert filter_version("9")(SERVICES) == []
    assert filter_version("3.0.0")(SERVICES) == []  # a version without nodes is dropped


def test_filter_label_keeps_matching_nodes_and_drops_empty_services() -> None:
    snapshot = copy.deepcopy(SERVICES)
    kept = filter_label("zone", "x")(SERVICES)
    assert ids(kept) == ["a"]
    assert [s.version for s in kept] == ["1.0.0"]
    assert ids(filter_label("zone", "y")(SERVICES)) == ["b", "c"]
    assert filter_label("zone", "z")(SERVICES) == []
    assert filter_label("missing", "")(SERVICES) == []
    assert snapshot == SERVICES  # the input is never mutated


def test_filter_label_reuses_untouched_services() -> None:
    kept = filter_label("zone", "y")(SERVICES)
    assert kept[1] is SERVICES[1]


def test_filter_endpoint() -> None:
    assert ids(filter_endpoint("Greeter.Hello")(SERVICES)) == ["a", "b"]
    assert filter_endpoint("Greeter.Bye")(SERVICES) == []


def test_filters_compose() -> None:
    services = filter_version("1.0.0")(SERVICES)
    services = filter_label("zone", "y")(services)
    assert ids(services) == ["b"]
