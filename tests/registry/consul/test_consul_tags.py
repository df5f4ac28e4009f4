"""go-micro's Consul tag encodings and health-entry decoding (no server)."""

from __future__ import annotations

import json
import logging
import zlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from micro.registry import Endpoint, Node, Service, Value
from micro.registry._consul_tags import decode_entry, decode_tags, encode_tags

EP = Endpoint("Greeter.Hello", Value("Request", "Request", [Value("name", "string")]), None, {})


def _entry(tags: list[str], status: str = "passing", address: str = "10.0.0.5") -> dict[str, Any]:
    return {
        "Node": {"Node": "n", "Address": "192.168.1.9"},
        "Service": {"ID": "greeter-1", "Service": "greeter", "Tags": tags, "Address": address,
                    "Port": 8080},
        "Checks": [{"CheckID": "serfHealth", "Status": "passing"},
                   {"CheckID": "service:greeter-1", "Status": status}],
    }  # fmt: skip


def test_tags_are_go_micros_hex_zlib_json() -> None:
    node = Node("greeter-1", "10.0.0.5:8080", {"protocol": "mucp"})
    tags = encode_tags(Service("greeter", "1.0.0", {}, [EP], [node]), node)
    kinds = {t[:2]: t[2:] for t in tags}
    assert zlib.decompress(bytes.fromhex(kinds["v-"])) == b"1.0.0"
    assert json.loads(zlib.decompress(bytes.fromhex(kinds["t-"]))) == {"protocol": "mucp"}
    endpoint = json.loads(zlib.decompress(bytes.fromhex(kinds["e-"])))
    assert endpoint["name"] == "Greeter.Hello"
    assert endpoint["request"]["values"][0] == {"name": "name", "type": "string", "values": None}


@given(
    version=st.text(max_size=20),
    metadata=st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=4),
)
def test_round_trip(version: str, metadata: dict[str, str]) -> None:
    node = Node("id", "127.0.0.1:1", metadata)
    tags = encode_tags(Service("s", version, {}, [EP], [node]), node)
    assert decode_tags(tags, "x") == (version, [EP], metadata)


def test_legacy_plain_forms_are_read() -> None:
    ep = json.dumps({"name": "Say.Hello", "request": None, "response": None, "metadata": None})
    tags = ["v=2.0", f"e={ep}", 't={"region":"eu"}', 't={"zone":"a"}']
    version, endpoints, metadata = decode_tags(tags, "x")
    assert version == "2.0"
    assert [e.name for e in endpoints] == ["Say.Hello"]
    assert metadata == {"region": "eu", "zone": "a"}


def test_foreign_tags_are_ignored_and_bad_ones_warned(caplog: pytest.LogCaptureFixture) -> None:
    good = encode_tags(Service("s", "1", {}, [], [Node("i", "h:1")]), Node("i", "h:1"))
    with caplog.at_level(logging.WARNING, logger="micro.registry.consul"):
        version, _, _ = decode_tags(["traefik.enable=true", "urlprefix-/", "e-zz", "t-00ff",
                                     "e={broken", *good], "node-7")  # fmt: skip
    assert version == "1"
    assert caplog.text.count("skipped an unreadable tag") == 3
    assert "node-7" in caplog.text


def test_entry_becomes_a_one_node_service() -> None:
    node = Node("greeter-1", "10.0.0.5:8080", {"protocol": "mucp"})
    svc = decode_entry(_entry(encode_tags(Service("greeter", "1.0", {}, [EP], [node]), node)))
    assert svc == Service("greeter", "1.0", {}, [EP], [node])


def test_node_address_falls_back_to_the_consul_node() -> None:
    svc = decode_entry(_entry(["v=1"], address=""))
    assert svc is not None
    assert svc.nodes[0].address == "192.168.1.9:8080"


def test_critical_nodes_are_dropped_and_warning_ones_kept() -> None:
    assert decode_entry(_entry(["v=1"], status="critical")) is None
    assert decode_entry(_entry(["v=1"], status="warning")) is not None


@pytest.mark.parametrize(
    "entry", [{}, {"Service": None}, {"Service": {"Service": "x"}}, {"Service": {"ID": 1}}, 7]
)
def test_malformed_entries_are_skipped_with_a_warning(
    entry: object, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="micro.registry.consul"):
        assert decode_entry(entry) is None
    assert "malformed health entry" in caplog.text
