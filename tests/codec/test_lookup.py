"""Choosing a codec by Content-Type, and the octet-stream codec."""

from __future__ import annotations

import pytest

import micro.codec
from micro.codec import DEFAULT_CONTENT_TYPE, Codec, lookup, register, supported
from micro.codec.bytes import BytesCodec
from micro.codec.json import JsonCodec
from micro.codec.msgpack import MsgpackCodec
from micro.codec.proto import ProtoCodec
from micro.errors import CodecError


@pytest.mark.parametrize(
    ("content_type", "kind"),
    [
        ("application/json", JsonCodec),
        ("application/json; charset=utf-8", JsonCodec),
        ("Application/JSON ;charset=UTF-8", JsonCodec),
        ("", JsonCodec),
        ("application/msgpack", MsgpackCodec),
        ("application/x-msgpack", MsgpackCodec),
        ("application/protobuf", ProtoCodec),
        ("application/x-protobuf", ProtoCodec),
        ("application/octet-stream", BytesCodec),
    ],
)
def test_lookup(content_type: str, kind: type[Codec]) -> None:
    assert type(lookup(content_type)) is kind


def test_lookup_returns_shared_instances() -> None:
    assert lookup("application/json") is lookup("application/json; charset=utf-8")
    assert lookup(DEFAULT_CONTENT_TYPE) is lookup("")


def test_unknown_content_type_lists_the_known_ones() -> None:
    with pytest.raises(CodecError) as info:
        lookup("text/x-nope; charset=utf-8")
    text = info.value.detail
    assert text.startswith("Unsupported Content-Type: text/x-nope; charset=utf-8 (known: ")
    for content_type in ("application/json", "application/protobuf", "application/msgpack"):
        assert content_type in text
    assert info.value.code == 400


def test_register_adds_and_keeps_builtins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(micro.codec, "_codecs", {})
    monkeypatch.setattr(micro.codec, "_builtin_loaded", False)

    class TextCodec(BytesCodec):
        content_type = "text/plain"
        name = "text"

    register(TextCodec(), "Text/X-Plain")
    assert isinstance(lookup("text/plain; charset=utf-8"), TextCodec)
    assert isinstance(lookup("text/x-plain"), TextCodec)
    assert isinstance(lookup("application/json"), JsonCodec)  # builtins still there
    assert "text/plain" in supported()


def test_register_replaces_a_builtin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(micro.codec, "_codecs", {})
    monkeypatch.setattr(micro.codec, "_builtin_loaded", False)
    mine = JsonCodec()
    register(mine)
    assert lookup("application/json") is mine


def test_bytes_codec() -> None:
    codec = BytesCodec()
    assert codec.encode(b"\x00a") == b"\x00a"
    assert codec.encode(bytearray(b"b")) == b"b"
    assert codec.encode(memoryview(b"c")) == b"c"
    assert codec.encode("é") == "é".encode()
    assert codec.decode(b"\xff") == b"\xff"
    assert codec.decode(memoryview(b"x"), bytes) == b"x"
    assert codec.decode(b"x", bytearray) == bytearray(b"x")
    assert codec.decode("é".encode(), str) == "é"
    with pytest.raises(CodecError, match="not valid UTF-8"):
        codec.decode(b"\xff", str)
    with pytest.raises(CodecError, match="encodes bytes or str, got dict"):
        codec.encode({"a": 1})
    with pytest.raises(CodecError, match="decodes into bytes or str, not dict"):
        codec.decode(b"{}", dict)
