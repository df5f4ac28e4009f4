"""The codec contract: what every :class:`~micro.codec.Codec` must do.

::

    from micro.testing.codec import check_codec

    def test_my_codec() -> None:
        check_codec(MyCodec(), [(Hello(name="x"), Hello), (b"raw", bytes)])

``samples`` are ``(value, type)`` pairs that the codec claims to support. The suite checks
that each one round-trips (from ``bytes``, ``bytearray`` and ``memoryview`` input alike) and
encodes deterministically; that unencodable objects and unsupported targets fail with
:class:`~micro.errors.CodecError`; and that garbage, truncated and bit-flipped bodies either
decode or raise ``CodecError``, never anything else. It needs no pytest and raises
``AssertionError`` on a breach.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from micro.codec import Codec
from micro.errors import BadRequest, CodecError

__all__ = ["GARBAGE", "check_codec"]

GARBAGE: tuple[bytes, ...] = (
    b"\x00",
    b"\xff",
    b"\xff\xfe\xfd",
    b"{",
    b"}",
    b"[",
    b'{"a":',
    b'{"a" 1}',
    b"nul",
    b"\xc1",  # never used in MessagePack
    b"\xdd\xff\xff\xff\xff",  # MessagePack array32 claiming 4 billion items
    b"\x0a\xff\xff\xff\xff\x0f",  # protobuf field 1, length far past the end
    b"\x08\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80",  # protobuf varint too long
    b"[" * 5000,
    b"\x91" * 5000,  # nested one-item MessagePack arrays
    b'{"a":' * 5000,
    "é".encode("latin-1"),
)


def check_codec(codec: Codec, samples: Sequence[tuple[Any, Any]], *, fuzz: int = 300) -> None:
    """Run the codec contract over ``codec``.

    Args:
        codec: the codec under test.
        samples: ``(value, type)`` pairs: ``codec.decode(codec.encode(value), type)`` must
            equal ``value``.
        fuzz: how many random byte strings to feed each decoder (seeded; reproducible).

    Raises:
        AssertionError: the codec breaks the contract (the message says how).
    """
    assert samples, "check_codec needs at least one (value, type) sample"
    _check_identity(codec)
    for value, tp in samples:
        data = _check_round_trip(codec, value, tp)
        _check_mutations(codec, data, tp)
    _check_unencodable(codec)
    _check_unsupported_target(codec)
    targets = [Any, *(tp for _, tp in samples)]
    for blob in _garbage(fuzz):
        for tp in targets:
            _decode_or_codec_error(codec, blob, tp)


def _check_identity(codec: Codec) -> None:
    content_type = codec.content_type
    assert content_type, f"{type(codec).__name__} has no content_type"
    assert content_type == content_type.lower().strip(), f"{content_type!r} is not normalised"
    assert ";" not in content_type, f"{content_type!r} carries parameters"
    assert codec.name, f"{type(codec).__name__} has no name"
    assert issubclass(CodecError, BadRequest)


def _check_round_trip(codec: Codec, value: Any, tp: Any) -> bytes:
    data = codec.encode(value)
    assert isinstance(data, bytes), f"encode({value!r}) returned {type(data).__name__}"
    assert codec.encode(value) == data, f"encode({value!r}) is not deterministic"
    got = codec.decode(data, tp)
    assert got == value, f"round trip of {value!r} as {tp!r} gave {got!r}"
    assert type(got) is type(value), f"decoded a {type(got).__name__}, not {type(value)}"
    return data


def _check_mutations(codec: Codec, data: bytes, tp: Any) -> None:
    """Every truncation and single-byte corruption decodes or raises CodecError."""
    for end in range(len(data)):
        _decode_or_codec_error(codec, data[:end], tp)
    rng = random.Random(len(data))
    for _ in range(min(64, 4 * len(data))):
        mutated = bytearray(data)
        mutated[rng.randrange(len(data))] = rng.randrange(256)
        _decode_or_codec_error(codec, bytes(mutated), tp)


def _check_unencodable(codec: Codec) -> None:
    class Opaque:
        pass

    for obj in (Opaque(), object(), Opaque):
        _expect_codec_error(codec.encode, obj, f"encode({obj!r})")


def _check_unsupported_target(codec: Codec) -> None:
    def not_a_type() -> None:
        pass

    def decode_into_a_function(data: bytes) -> object:
        return codec.decode(data, not_a_type)

    _expect_codec_error(decode_into_a_function, b"{}", "decode into a function")


def _garbage(count: int) -> Iterator[bytes]:
    yield from GARBAGE
    rng = random.Random(0)
    for _ in range(count):
        yield rng.randbytes(rng.randrange(1, 64))


def _decode_or_codec_error(codec: Codec, data: bytes, tp: Any) -> None:
    error = _codec_error(codec.decode, data, tp)
    if error is not None:
        _check_error(error, f"decode({data[:40]!r}, {tp!r})")


def _expect_codec_error(call: Callable[..., object], arg: Any, what: str) -> None:
    error = _codec_error(call, arg)
    assert error is not None, f"{what} did not raise CodecError"
    _check_error(error, what)


def _codec_error(call: Callable[..., object], *args: Any) -> CodecError | None:
    """The CodecError ``call`` raises (None if it returns); any other exception fails."""
    try:
        call(*args)
    except CodecError as exc:
        return exc
    except Exception as exc:  # anything but CodecError fails the check
        raise AssertionError(f"raised {type(exc).__name__}, not CodecError: {exc}") from exc
    return None


def _check_error(error: CodecError, what: str) -> None:
    assert error.code == 400, f"{what}: CodecError with code {error.code}"
    assert error.detail, f"{what}: CodecError without a detail"
