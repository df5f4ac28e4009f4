"""The tcp transport's frame codec, sans-IO: round trips, split reads, limits, garbage."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from micro.transport._tcp_wire import (
    ACK,
    CLOSE,
    DATA,
    GOAWAY,
    HEAD,
    HELLO,
    MESSAGE,
    MESSAGE_FRAME,
    OPEN,
    PING,
    RESET,
    WINDOW,
    FrameDecoder,
    ProtocolError,
    decode_goaway,
    decode_hello,
    decode_message_head,
    decode_reset,
    encode_frame,
    encode_goaway,
    encode_header_block,
    encode_hello,
    encode_reset,
    parse_header_block,
)

FRAMES = [
    (HELLO, 0, 0, encode_hello(1 << 20, 1 << 20)[HEAD.size :]),
    (OPEN, 0, 1, b""),
    (OPEN, ACK, 1, b""),
    (MESSAGE, 0, 1, b"\x00\x00\x00\x03\x00\x00\x00\x02A\x00bhi"),
    (DATA, 0, 7, bytes(range(256)) * 3),
    (WINDOW, 0, 1, b"\x00\x01\x00\x00"),
    (CLOSE, 0, 4294967295, b""),
    (RESET, 0, 2, b"\x01\x9dtoo large"),
    (PING, ACK, 0, b"12345678"),
    (GOAWAY, 0, 0, b"\x00\x00\x00\x05\x00\x00"),
]
STREAM = b"".join(encode_frame(*frame) for frame in FRAMES)


def test_frames_round_trip() -> None:
    assert FrameDecoder().feed(STREAM) == FRAMES


def test_split_reads_at_every_byte_boundary() -> None:
    for cut in range(len(STREAM) + 1):
        decoder = FrameDecoder()
        frames = decoder.feed(STREAM[:cut]) + decoder.feed(STREAM[cut:])
        assert frames == FRAMES, f"cut at {cut}"
        assert decoder.buffered == 0


def test_one_byte_at_a_time() -> None:
    decoder = FrameDecoder()
    frames = [frame for i in range(len(STREAM)) for frame in decoder.feed(STREAM[i : i + 1])]
    assert frames == FRAMES


def test_a_partial_frame_waits_for_the_rest() -> None:
    decoder = FrameDecoder()
    data = encode_frame(DATA, 0, 3, b"x" * 100)
    assert decoder.feed(data[:50]) == []
    assert decoder.buffered == 50
    assert decoder.feed(data[50:]) == [(DATA, 0, 3, b"x" * 100)]


def test_a_frame_over_the_limit_is_refused_from_its_head() -> None:
    decoder = FrameDecoder(max_frame=1000)
    assert decoder.feed(encode_frame(DATA, 0, 1, b"x" * 1000)) == [(DATA, 0, 1, b"x" * 1000)]
    with pytest.raises(ProtocolError, match="frame of 1001 bytes is over the limit 1000"):
        decoder.feed(HEAD.pack(1001, DATA, 0, 1))  # the head alone is enough
    with pytest.raises(ProtocolError):  # broken for good
        decoder.feed(encode_frame(CLOSE, 0, 1))


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ProtocolError, match="unknown frame kind 9"):
        FrameDecoder().feed(HEAD.pack(0, 9, 0, 1))


def test_http_bytes_are_refused() -> None:
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n")


def test_hello() -> None:
    frame = FrameDecoder().feed(encode_hello(1 << 20, 256 * 1024))[0]
    assert frame[:3] == (HELLO, 0, 0)
    assert decode_hello(frame[3]) == (1 << 20, 256 * 1024)
    with pytest.raises(ProtocolError, match="magic"):
        decode_hello(b"HTTP" + frame[3][4:])
    with pytest.raises(ProtocolError, match="version"):
        decode_hello(frame[3][:4] + b"\x09" + frame[3][5:])
    with pytest.raises(ProtocolError, match="too small"):
        decode_hello(encode_hello(100, 100)[HEAD.size :])
    with pytest.raises(ProtocolError, match="HELLO of 3 bytes"):
        decode_hello(b"MTC")


def test_reset_and_goaway() -> None:
    assert decode_reset(encode_reset(5, 413, "too big")[HEAD.size :]) == (413, "too big")
    assert decode_reset(b"") == (0, "")
    assert decode_goaway(encode_goaway(9, 400, "bad")[HEAD.size :]) == (9, 400, "bad")
    with pytest.raises(ProtocolError):
        decode_goaway(b"\x00")


def test_header_bytes_that_are_not_utf8_come_through_as_surrogates() -> None:
    header = parse_header_block(b"Micro-Service\x00gr\xffeter")
    assert header == {"Micro-Service": "gr\udcffeter"}
    assert encode_header_block(header) == b"Micro-Service\x00gr\xffeter"


def test_header_block_round_trip() -> None:
    header = {"Micro-Id": "42", "X-User": "J\u00f6rg \u2713", "Empty": "", "Content-Type": "a/b"}
    assert parse_header_block(encode_header_block(header)) == header
    assert encode_header_block({}) == b""
    assert parse_header_block(b"") == {}
    assert parse_header_block(b"A\x001\x00A\x002") == {"A": "1"}  # the first value wins


@pytest.mark.parametrize("header", [{"A\x00": "1"}, {"A": "x\x00y"}, {"": "v"}])
def test_header_block_refuses_nul_and_empty_names(header: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"NUL|empty"):
        encode_header_block(header)


@pytest.mark.parametrize(
    ("block", "match"),
    [(b"A", "without a value"), (b"\x001", "empty name")],
)
def test_bad_header_blocks(block: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        parse_header_block(block)


def test_message_head_checks() -> None:
    payload = MESSAGE_FRAME.pack(0, 0, 0, 0, 3, 10)[HEAD.size :] + b"A\x00b" + b"12345"
    assert decode_message_head(payload, 100) == (3, 10)
    with pytest.raises(ProtocolError, match="over the limit 2"):
        decode_message_head(payload, 2)
    with pytest.raises(ProtocolError, match="no sizes"):
        decode_message_head(b"\x00", 100)
    with pytest.raises(ProtocolError, match="shorter than its header block"):
        decode_message_head(MESSAGE_FRAME.pack(0, 0, 0, 0, 50, 0)[HEAD.size :], 100)
    with pytest.raises(ProtocolError, match="more body than it declares"):
        decode_message_head(MESSAGE_FRAME.pack(0, 0, 0, 0, 0, 1)[HEAD.size :] + b"xy", 100)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=1, max_value=64))
def test_garbage_never_breaks_the_decoder_otherwise(data: bytes, step: int) -> None:
    """Any bytes, in any pieces: whole frames or a ProtocolError, never another exception."""
    decoder = FrameDecoder(max_frame=1 << 16)
    try:
        for i in range(0, len(data), step):
            for kind, _flags, _sid, payload in decoder.feed(data[i : i + step]):
                assert kind <= GOAWAY
                assert len(payload) <= 1 << 16
    except ProtocolError:
        pass
