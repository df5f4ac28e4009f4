"""Recognising pydantic models and protobuf messages without importing either.

A user-defined pydantic model or protobuf message class can only exist once its library has
been imported, so looking in ``sys.modules`` is enough: ``import micro.codec.json`` never
pays for pydantic or protobuf.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = [
    "is_proto_class",
    "is_proto_message",
    "is_pydantic_instance",
    "is_pydantic_model",
    "pydantic_error_detail",
]


def is_pydantic_model(tp: Any) -> bool:
    """``tp`` is a pydantic (v2) ``BaseModel`` subclass."""
    pydantic = sys.modules.get("pydantic")
    if pydantic is None or not isinstance(tp, type):
        return False
    return issubclass(tp, pydantic.BaseModel)


def is_pydantic_instance(obj: Any) -> bool:
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(obj, pydantic.BaseModel)


def is_proto_class(tp: Any) -> bool:
    """``tp`` is a generated protobuf message class."""
    message = sys.modules.get("google.protobuf.message")
    if message is None or not isinstance(tp, type):
        return False
    return issubclass(tp, message.Message)


def is_proto_message(obj: Any) -> bool:
    message = sys.modules.get("google.protobuf.message")
    return message is not None and isinstance(obj, message.Message)


def pydantic_error_detail(exc: Any) -> str:
    """The first error of a pydantic ``ValidationError`` in msgspec's wording and path style.

    ``Input should be a valid integer - at `$.items[0].qty` `` (plus a count of the others).
    """
    errors = exc.errors(include_url=False)
    if not errors:
        return str(exc)
    first = errors[0]
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"])
    detail = str(first["msg"])
    if path:
        detail = f"{detail} - at `${path}`"
    if len(errors) > 1:
        detail = f"{detail} (and {len(errors) - 1} more errors)"
    return detail
