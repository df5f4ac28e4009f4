"""Errors as HTTP: a MicroError becomes a status and go-micro's JSON error body.

A service's error keeps its code as the HTTP status. The gateway's own conditions map as:
no such service 404, no node available 503, node unreachable 502, deadline passed 504,
code 0 (a plain-text error) 500 with ``error during request: ...``.
"""

from __future__ import annotations

import logging

from starlette.responses import Response

from micro.errors import (
    ConnectError,
    MicroError,
    NoneAvailable,
    ServiceNotFound,
    Timeout,
    status_text,
)

__all__ = ["API_ID", "error_response", "http_error"]

API_ID = "go.micro.api"
log = logging.getLogger("micro.api")


def _with(exc: MicroError, code: int, detail: str | None = None) -> MicroError:
    return MicroError(detail or exc.detail, id=exc.id or API_ID, code=code)


def http_error(exc: BaseException) -> MicroError:
    """The error to answer with; its ``code`` is the HTTP status."""
    if not isinstance(exc, MicroError):
        log.exception("gateway failure", exc_info=exc)
        return MicroError(f"gateway failure: {type(exc).__name__}", id=API_ID, code=500)
    if isinstance(exc, Timeout):
        return _with(exc, 504)
    if isinstance(exc, ServiceNotFound):
        return _with(exc, 404)
    if isinstance(exc, NoneAvailable):
        return _with(exc, 503)
    if isinstance(exc, ConnectError):
        return _with(exc, 502)
    if exc.code == 0:
        return MicroError(f"error during request: {exc.detail}", id=API_ID, code=500)
    if not 400 <= exc.code <= 599:
        return _with(exc, 500)
    return exc


def error_response(exc: BaseException, headers: dict[str, str] | None = None) -> Response:
    """A JSON response carrying ``exc`` (mapped with :func:`http_error`)."""
    err = http_error(exc)
    if not err.status:
        err.status = status_text(err.code)
    return Response(
        err.to_json().encode(),
        status_code=err.code,
        headers=headers,
        media_type="application/json",
    )
