"""go-micro's mDNS TXT payload: the captured Go bytes, and encode/decode round trips."""

from __future__ import annotations

import binascii
import json
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from micro.errors import RegistryError
from micro.registry import Endpoint, Value
from micro.registry._mdns_txt import (
    TxtPayload,
    decode_txt,
    encode_txt,
    join_strings,
    payload_json,
    split_strings,
)
from tests.registry.go_samples import BROKER_JSON, BROKER_TXT, GREETER_JSON, GREETER_TXT


def test_greeter_txt_from_go_decodes_to_its_service() -> None:
    payload = decode_txt([s.encode() for s in GREETER_TXT])
    assert payload is not None
    assert payload.service == "go.micro.srv.greeter"
    assert payload.version == "latest"
    assert [e.name for e in payload.endpoints] == ["Say.Fail", "Say.Hello", "Say.Stream", "Func"]
    hello = payload.endpoints[1]
    assert hello.request == Value("Request", "Request", [Value("name", "string")])
    assert hello.response == Value("Response", "Response", [Value("msg", "string")])
    assert hello.metadata == {"stream": "false"}
    func = payload.endpoints[3]
    assert func.response is None
    assert func.metadata == {"subscriber": "true", "topic": "go.micro.topic.greeting"}
    assert payload.metadata["registry"] == "mdns"
    assert payload.metadata["peer"] == "go-micro-v1.0.0"


def test_greeter_payload_reencodes_to_exactly_gos_json() -> None:
    payload = decode_txt([s.encode() for s in GREETER_TXT])
    assert payload is not None
    assert payload_json(payload).decode() == GREETER_JSON
    # and Go's zlib stream (sync-flush marker and all) inflates to that same JSON
    raw = zlib.decompress(binascii.unhexlify("".join(GREETER_TXT)))
    assert raw.decode() == GREETER_JSON


def test_broker_txt_from_go_decodes_with_null_endpoints() -> None:
    payload = decode_txt([BROKER_TXT.encode()])
    assert payload == TxtPayload(
        service="topic:go.micro.topic.greeting",
        version="ff.http.broadcast",
        endpoints=(),
        metadata={"secure": "false"},
    )
    assert payload_json(payload).decode() == BROKER_JSON


def test_encoding_is_what_a_go_reader_expects() -> None:
    payload = decode_txt([s.encode() for s in GREETER_TXT])
    assert payload is not None
    strings = encode_txt(payload)
    assert all(len(s) <= 255 for s in strings)
    assert [len(s) for s in strings[:-1]] == [255] * (len(strings) - 1)
    # Go: hex.DecodeString(strings.Join(txt, "")) -> zlib reader -> json.Unmarshal
    raw = json.loads(zlib.decompress(binascii.unhexlify(b"".join(strings))))
    assert list(raw) == ["Service", "Version", "Endpoints", "Metadata"]
    assert raw == json.loads(GREETER_JSON)


def test_go_decodes_keys_case_insensitively_and_so_do_we() -> None:
    text = zlib.compress(b'{"service":"a","VERSION":"2","endpoints":null,"metadata":null}')
    assert decode_txt([text.hex().encode()]) == TxtPayload("a", "2")


def test_empty_txt_is_a_wildcard_entry_not_an_error() -> None:
    assert decode_txt([]) is None
    assert decode_txt([b""]) is None
    assert split_strings(b"") == []
    assert split_strings(join_strings([])) == [b""]


@pytest.mark.parametrize(
    "strings",
    [
        [b"zz"],  # not hex
        [b"abc"],  # odd length
        [b"789c00"],  # truncated zlib
        [zlib.compress(b"[1, 2]").hex().encode()],  # not an object
        [zlib.compress(b'{"Version":"1"}').hex().encode()],  # no service
        [zlib.compress(b'{"Service":"a","Metadata":{"k":1}}').hex().encode()],  # bad type
        [zlib.compress(b"[" * 5000 + b"]" * 5000).hex().encode()],  # too deep
        [zlib.compress(b" " * (2 << 20)).hex().encode()],  # inflates past the limit
    ],
)
def test_malformed_payloads_raise_registry_error(strings: list[bytes]) -> None:
    with pytest.raises(RegistryError):
        decode_txt(strings)


_label = st.text(min_size=1, max_size=12)
_values = st.recursive(
    st.builds(Value, _label, _label, st.none()),
    lambda inner: st.builds(Value, _label, _label, st.lists(inner, max_size=3)),
    max_leaves=6,
)
_metadata = st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=4)
_endpoints = st.builds(Endpoint, _label, st.none() | _values, st.none() | _values, _metadata)
_payloads = st.builds(
    TxtPayload,
    service=_label,
    version=st.text(max_size=10),
    endpoints=st.lists(_endpoints, max_size=4).map(tuple),
    metadata=_metadata,
)


@given(_payloads)
def test_txt_round_trip(payload: TxtPayload) -> None:
    strings = encode_txt(payload)
    assert all(0 < len(s) <= 255 for s in strings)
    assert decode_txt(split_strings(join_strings(strings))) == payload


@given(st.lists(st.binary(max_size=300), max_size=4))
def test_random_txt_strings_never_escape_as_other_errors(strings: list[bytes]) -> None:
    try:
        decode_txt(strings)
    except RegistryError:
        pass


@given(st.binary(max_size=600))
def test_split_strings_accepts_any_rdata(rdata: bytes) -> None:
    strings = split_strings(rdata)
    assert sum(len(s) for s in strings) <= len(rdata)
