"""The machinery shared by the JSON and MessagePack codecs (both built on msgspec).

One encoder per codec, one cached ``Decoder(type)`` per target type. Types msgspec does not
know natively reach the hooks: pydantic models (``model_dump(mode="json", by_alias=True)`` /
``model_validate``) and protobuf messages (``json_format`` with proto field names, unknown
fields ignored). Neither library is imported here; see :mod:`micro.codec._types`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import msgspec

from micro.codec import Buffer, Codec
from micro.codec._types import (
    is_proto_class,
    is_proto_message,
    is_pydantic_instance,
    is_pydantic_model,
    pydantic_error_detail,
)
from micro.errors import CodecError

__all__ = ["MsgspecCodec", "dec_hook", "enc_hook", "type_label"]

Decode = Callable[[Any], Any]

# "inner - at `$.x` - at `$.m[0]`" (a hook's own path, then msgspec's) -> "inner - at `$.m[0].x`"
_TWO_PATHS = re.compile(r"^(.*) - at `\$([^`]*)`(.*) - at `\$([^`]*)`$", re.DOTALL)


def enc_hook(obj: Any) -> Any:
    """Builtins for the values msgspec cannot encode itself."""
    if is_pydantic_instance(obj):
        return obj.model_dump(mode="json", by_alias=True)
    if is_proto_message(obj):
        from google.protobuf import json_format

        return json_format.MessageToDict(obj, preserving_proto_field_name=True)
    raise TypeError(f"Encoding objects of type {type(obj).__qualname__} is unsupported")


def dec_hook(tp: Any, obj: Any) -> Any:
    """Build a pydantic model or protobuf message from msgspec-decoded builtins."""
    if is_pydantic_model(tp):
        import pydantic

        try:
            return tp.model_validate(obj)
        except pydantic.ValidationError as exc:
            raise ValueError(pydantic_error_detail(exc)) from None
    if is_proto_class(tp):
        from google.protobuf import json_format

        try:
            return json_format.ParseDict(obj, tp(), ignore_unknown_fields=True)
        except Exception as exc:  # json_format raises ParseError and, on odd input, others
            raise ValueError(str(exc)) from None
    raise TypeError(f"{type_label(tp)} is not a type this codec can decode into")


def type_label(tp: Any) -> str:
    """A short name for error messages."""
    if tp is Any:
        return "Any"
    return getattr(tp, "__qualname__", None) or repr(tp)


def _validation_detail(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    match = _TWO_PATHS.match(text)
    if match is None:
        return text
    inner, inner_path, extra, outer_path = match.groups()
    return f"{inner} - at `${outer_path}{inner_path}`{extra}"


class MsgspecCodec(Codec):
    """A codec over a msgspec format module (``msgspec.json`` or ``msgspec.msgpack``)."""

    format_name = ""
    _empty = b""  # an empty object in this format: what an empty body decodes as

    def __init__(self, module: Any) -> None:
        self._module = module
        self._encode: Callable[[Any], bytes] = module.Encoder(enc_hook=enc_hook).encode
        self._decoders: dict[Any, Decode] = {}

    def encode(self, obj: Any) -> bytes:
        try:
            return self._encode(obj)
        except (TypeError, ValueError, OverflowError, RecursionError, msgspec.EncodeError) as e:
            name = type(obj).__name__
            raise CodecError(f"cannot encode {name} as {self.format_name}: {e}") from None

    def decode(self, data: Buffer, type: Any = Any) -> Any:
        try:
            decode = self._decoders[type]
        except (KeyError, TypeError):
            decode = self._decoder(type)
        try:
            return decode(data)
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
            return self._recover(data, decode, exc)

    def _decoder(self, tp: Any) -> Decode:
        try:
            decode: Decode = self._module.Decoder(tp, dec_hook=dec_hook).decode
        except (TypeError, ValueError) as exc:
            raise CodecError(
                f"cannot decode {self.format_name} into {type_label(tp)}: {exc}"
            ) from None
        try:
            self._decoders[tp] = decode
        except TypeError:  # an unhashable annotation: works, just is not cached
            pass
        return decode

    def _recover(self, data: Any, decode: Decode, exc: BaseException) -> Any:
        """The slow path after a failed decode: an empty body, or a clear CodecError."""
        if isinstance(exc, msgspec.ValidationError):
            raise CodecError(_validation_detail(exc)) from None
        if isinstance(exc, RecursionError):
            raise CodecError(f"malformed {self.format_name} body: nested too deeply") from None
        if isinstance(exc, UnicodeDecodeError):
            raise CodecError(f"malformed {self.format_name} body: invalid UTF-8: {exc}") from None
        if not bytes(data).strip():
            try:
                return decode(self._empty)
            except msgspec.ValidationError as again:
                raise CodecError(f"empty body: {_validation_detail(again)}") from None
        detail = str(exc).removeprefix(f"{self.format_name} is malformed: ")
        raise CodecError(f"malformed {self.format_name} body: {detail}") from None
