"""The one error tree of micro, and go-micro's wire error.

Every error that crosses the wire is a :class:`MicroError`: ``{id, code, detail, status}``
encoded as JSON exactly as go-micro's ``errors.Error`` (``status`` is the HTTP reason phrase
of ``code``). Driver exceptions are translated at each backend boundary and never leak.

::

    MicroError (Exception)                  code, id, detail, status; to_json(), parse()
    ├── BadRequest                 400
    │   └── CodecError             400      a body that cannot be decoded or validated
    ├── Unauthorized               401
    ├── Forbidden                  403
    ├── NotFound                   404
    │   └── ServiceNotFound        404      the registry knows no such service
    ├── MethodNotAllowed           405
    ├── Timeout (also TimeoutError) 408     a deadline passed (client or server side)
    ├── RequestTimeout             408      a peer did not send its request in time
    ├── Conflict                   409
    ├── PayloadTooLarge            413
    ├── TooManyRequests            429      a server's per-client rate limit refused the call
    ├── InternalServerError        500
    │   ├── ConnectError           500      dial or connection failure (retried by clients)
    │   │   └── ConnectionClosed   500      the peer closed the connection mid-exchange
    │   ├── NoneAvailable          500      the selector has no node left to try
    │   ├── RegistryError          500      the registry backend failed
    │   ├── BrokerError            500      a publish or subscription could not be carried out
    │   └── PluginNotFound         500      no such backend, or its driver is missing (LookupError)
    ├── BadGateway                 502      a gateway or proxy got no answer from behind it
    │   └── TransportMismatch      502      the node speaks another transport (not retried)
    └── ServiceUnavailable         503      overloaded or refusing calls for now (not retried)
        ├── CircuitOpen            503      the client's circuit breaker refused the call
        └── BulkheadFull           503      the client's bulkhead for the service is full

Backends translate their driver's exceptions with :func:`translate`, one helper instead of an
``except`` clause per call::

    with translate(BrokerError, f"publish to {topic!r}", driver_errors=(nats.errors.Error,)):
        await nc.publish(topic, body)

``parse`` turns wire text back into the matching class (by code: the first class drawn for
it, so a 408 is a ``Timeout``); text that is not JSON becomes a ``MicroError`` with code 0,
as go-micro's ``errors.Parse`` does.

Two errors are equal when their wire fields are (``to_dict()``), whatever their classes, and
equal errors hash alike. Do not change the fields of an error kept in a set or dict key.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any, ClassVar

import msgspec

__all__ = [
    "BadGateway",
    "BadRequest",
    "BrokerError",
    "BulkheadFull",
    "CircuitOpen",
    "CodecError",
    "Conflict",
    "ConnectError",
    "ConnectionClosed",
    "Forbidden",
    "InternalServerError",
    "MethodNotAllowed",
    "MicroError",
    "NoneAvailable",
    "NotFound",
    "PayloadTooLarge",
    "PluginNotFound",
    "RegistryError",
    "RequestTimeout",
    "ServiceNotFound",
    "ServiceUnavailable",
    "Timeout",
    "TooManyRequests",
    "TransportMismatch",
    "Unauthorized",
    "bad_request",
    "conflict",
    "forbidden",
    "internal",
    "method_not_allowed",
    "not_found",
    "timeout",
    "translate",
    "unauthorized",
]


class _Wire(msgspec.Struct):
    id: str = ""
    code: int = 0
    detail: str = ""
    status: str = ""


_wire_encoder = msgspec.json.Encoder()
_wire_decoder = msgspec.json.Decoder(_Wire)
_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape_surrogates(text: str) -> str:
    """``text`` with each lone surrogate (which UTF-8 cannot encode) written as an escape.

    A byte that a peer sent and that ``surrogateescape`` kept (U+DC80..U+DCFF) becomes
    ``\\xff``, the byte it stands for; any other surrogate becomes ``\\uXXXX``.
    """
    return _SURROGATE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def status_text(code: int) -> str:
    """The HTTP reason phrase for ``code`` ("" when it is not an HTTP status)."""
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return ""


class MicroError(Exception):
    """An error with go-micro's wire shape ``{id, code, detail, status}``.

    Args:
        detail: human-readable description.
        id: the error id, conventionally the service or component name.
        code: overrides the class's code (an HTTP status, or 0 for unknown).
        status: overrides the reason phrase derived from ``code``.
    """

    code: int = 500
    _by_code: ClassVar[dict[int, type[MicroError]]] = {}

    def __init__(
        self, detail: str = "", *, id: str = "", code: int | None = None, status: str | None = None
    ) -> None:
        if code is not None:
            self.code = code
        self.id = id
        self.detail = detail
        self.status = status if status is not None else status_text(self.code)
        super().__init__(detail)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # the first class declared for a code is the one parse() returns
        MicroError._by_code.setdefault(cls.code, cls)

    def __str__(self) -> str:
        return self.to_json()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code}, id={self.id!r}, detail={self.detail!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MicroError):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.id, self.code, self.detail, self.status))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "code": self.code, "detail": self.detail, "status": self.status}

    def to_json(self) -> str:
        """The error as go-micro writes it (and puts in the ``Micro-Error`` header).

        Never raises: a lone surrogate in a field (a header value that was not UTF-8,
        echoed into a detail) is written escaped (``\\xff`` for
        the byte it stands for).
        """
        wire = _Wire(id=self.id, code=self.code, detail=self.detail, status=self.status)
        try:
            return _wire_encoder.encode(wire).decode()
        except UnicodeEncodeError:
            wire.id, wire.detail, wire.status = map(
                _escape_surrogates, (wire.id, wire.detail, wire.status)
            )
            return _wire_encoder.encode(wire).decode()

    @classmethod
    def parse(cls, text: str | bytes) -> MicroError:
        """Decode wire text into the class for its code; non-JSON text gets code 0."""
        try:
            wire = _wire_decoder.decode(text)
        except (msgspec.DecodeError, msgspec.ValidationError):
            detail = text.decode(errors="replace") if isinstance(text, bytes) else text
            return MicroError(detail, code=0, status="")
        target = MicroError._by_code.get(wire.code, MicroError)
        return target(wire.detail, id=wire.id, code=wire.code, status=wire.status)


class BadRequest(MicroError):
    code = 400


class Unauthorized(MicroError):
    code = 401


class Forbidden(MicroError):
    code = 403


class NotFound(MicroError):
    code = 404


class MethodNotAllowed(MicroError):
    code = 405


class Timeout(MicroError, TimeoutError):
    code = 408


class RequestTimeout(MicroError):
    """A peer did not send its whole request in time; the server answers 408 and hangs up.

    Not a :class:`Timeout`: no deadline of the caller passed, the caller was too slow.
    """

    code = 408


class Conflict(MicroError):
    code = 409


class PayloadTooLarge(MicroError):
    code = 413


class TooManyRequests(MicroError):
    """A server's rate limit for this caller is spent (see ``docs/resilience.md``)."""

    code = 429


class InternalServerError(MicroError):
    code = 500


class CodecError(BadRequest):
    """A body that cannot be encoded, decoded or validated."""


class ServiceNotFound(NotFound):
    """The registry knows no service of that name."""


class ConnectError(InternalServerError):
    """Dialing or talking to a node failed; clients retry these."""


class ConnectionClosed(ConnectError):
    """The peer closed the connection before the exchange ended."""


class NoneAvailable(InternalServerError):
    """The selector has no node left to try for a service."""


class RegistryError(InternalServerError):
    """The registry backend failed (unreachable, refused, malformed data)."""


class BrokerError(InternalServerError):
    """A publish was not accepted, or a subscription could not be set up."""


class BadGateway(MicroError):
    """A gateway or proxy could not get an answer from the service behind it."""

    code = 502


class TransportMismatch(BadGateway):
    """The node speaks another transport than the client (its ``transport`` metadata);
    not retried: every attempt would fail the same way."""


class ServiceUnavailable(MicroError):
    """A server shed the call (too many in flight) or is shutting down: nothing ran."""

    code = 503


class CircuitOpen(ServiceUnavailable):
    """The client's circuit breaker for a node or a service is open; nothing was sent."""


class BulkheadFull(ServiceUnavailable):
    """The client already has its limit of calls in flight to the service."""


class PluginNotFound(InternalServerError, LookupError):
    """An unknown backend name, or a backend whose driver is not installed."""


@contextlib.contextmanager
def translate(
    kind: type[MicroError],
    what: str,
    *,
    id: str = "",
    driver_errors: tuple[type[Exception], ...] = (),
) -> Iterator[None]:
    """Raise a driver's failure inside the block as ``kind(f"{what}: {exc}")``, chained.

    Translated: ``OSError`` (``ConnectionError`` included), ``TimeoutError`` (asyncio's
    included) and ``driver_errors``, the base classes of the backend's driver (the backend
    imports its driver; this module never does). A :class:`MicroError` passes unchanged,
    ``CancelledError`` is never caught, and anything else propagates: an exception that is
    not a driver's failure is a bug to see, not to relabel.

    Args:
        kind: the class the backend's interface promises (``RegistryError``, ``BrokerError``).
        what: what was being done, the start of the detail (``"etcd register greeter"``).
        id: the error id (the component, e.g. ``go.micro.registry``).
        driver_errors: the driver's own exception base classes.
    """
    caught: tuple[type[BaseException], ...] = (OSError, TimeoutError, *driver_errors)
    try:
        yield
    except MicroError:
        raise
    except caught as exc:
        raise kind(f"{what}: {str(exc) or type(exc).__name__}", id=id) from exc


def bad_request(id: str, detail: str) -> BadRequest:
    return BadRequest(detail, id=id)


def unauthorized(id: str, detail: str) -> Unauthorized:
    return Unauthorized(detail, id=id)


def forbidden(id: str, detail: str) -> Forbidden:
    return Forbidden(detail, id=id)


def not_found(id: str, detail: str) -> NotFound:
    return NotFound(detail, id=id)


def method_not_allowed(id: str, detail: str) -> MethodNotAllowed:
    return MethodNotAllowed(detail, id=id)


def timeout(id: str, detail: str) -> Timeout:
    return Timeout(detail, id=id)


def conflict(id: str, detail: str) -> Conflict:
    return Conflict(detail, id=id)


def internal(id: str, detail: str) -> InternalServerError:
    return InternalServerError(detail, id=id)
