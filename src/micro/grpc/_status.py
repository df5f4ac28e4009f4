"""micro's errors <-> gRPC status codes, both ways, with the full error kept in trailers.

A micro error crosses gRPC as the status code nearest to its HTTP code, its ``detail`` as
the status message, and the whole ``{id, code, detail, status}`` as JSON in the
``micro-error`` trailing metadata, so a micro client gets back exactly the error the handler
raised, and any other gRPC client still gets a meaningful status.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc  # type: ignore[import-untyped]

from micro.errors import MicroError

__all__ = ["ERROR_KEY", "from_status", "to_status"]

ERROR_KEY = "micro-error"

_TO_GRPC: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    409: grpc.StatusCode.ALREADY_EXISTS,
    412: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    499: grpc.StatusCode.CANCELLED,
    500: grpc.StatusCode.INTERNAL,
    501: grpc.StatusCode.UNIMPLEMENTED,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}

# gRPC status -> HTTP code, as grpc-gateway maps them (the inverse above is not one-to-one).
_FROM_GRPC: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 408,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 412,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}


def to_status(error: MicroError) -> tuple[grpc.StatusCode, str, tuple[tuple[str, str], ...]]:
    """The gRPC status code, message and trailing metadata that carry ``error``."""
    code = _TO_GRPC.get(error.code)
    if code is None:
        code = grpc.StatusCode.INTERNAL if error.code >= 500 else grpc.StatusCode.UNKNOWN
        if 400 <= error.code < 500:
            code = grpc.StatusCode.FAILED_PRECONDITION
    return code, error.detail, ((ERROR_KEY, error.to_json()),)


def from_status(
    code: grpc.StatusCode, message: str, trailers: Iterable[Any] | None, *, id: str
) -> MicroError:
    """The micro error a gRPC status stands for: the ``micro-error`` trailer when the
    server sent one (a micro server), else one built from the status (any other server)."""
    for key, value in trailers or ():
        if key == ERROR_KEY:
            text = value.decode(errors="replace") if isinstance(value, bytes) else value
            return MicroError.parse(text)
    http = _FROM_GRPC.get(code, 500)
    return MicroError.parse(MicroError(message or code.name, id=id, code=http).to_json())
