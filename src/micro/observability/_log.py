"""One log line per request (setting ``request_log``: ``json`` or ``text``).

Lines go to the ``micro.request`` logger at INFO, so the application's logging decides where
they end up (``Service.run()`` sends micro's loggers to stderr). Each names the kind
(``server``, ``client``, ``publish``, ``deliver``), the service or topic, the endpoint, the
micro code, the time taken in milliseconds and the trace id: the current span's when
tracing is on, else the one the request's ``traceparent`` carries, so lines join traces
even where this process records none.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from micro.client import CallFunc, CallOptions, CallWrapper, PublishFunc, PublishWrapper
from micro.client import Request as CallRequest
from micro.errors import MicroError
from micro.registry import Node
from micro.server import (
    HandlerFunc,
    HandlerWrapper,
    Publication,
    Request,
    SubscriberFunc,
    SubscriberWrapper,
)
from micro.transport import Message

__all__ = ["RequestLog", "trace_id_of"]

log = logging.getLogger("micro.request")

FORMATS = ("json", "text")


def trace_id_of(headers: Mapping[str, str]) -> str:
    """The trace id of a W3C ``traceparent`` among ``headers`` ("" when none parses)."""
    value = headers.get("Traceparent") or headers.get("traceparent") or ""
    parts = value.split("-")
    if len(parts) >= 4 and len(parts[1]) == 32:
        return parts[1]
    return ""


class RequestLog:
    """Wrappers that log each request once it ends.

    Args:
        format: ``json`` (one object per line) or ``text`` (``key=value`` pairs).
        current_trace: the current span's trace id, when tracing is on (else headers give it).
    """

    def __init__(self, format: str, current_trace: Callable[[], str] | None = None) -> None:
        if format not in FORMATS:
            raise ValueError(f"request_log {format!r}: want json or text")
        self.format = format
        self._current = current_trace

    def _trace(self, headers: Mapping[str, str]) -> str:
        if self._current is not None:
            found = self._current()
            if found:
                return found
        return trace_id_of(headers)

    def emit(self, fields: dict[str, Any]) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        if self.format == "json":
            log.info("%s", msgspec.json.encode(fields).decode())
        else:
            log.info("%s", " ".join(f"{k}={_text(v)}" for k, v in fields.items()))

    def _line(
        self, kind: str, target: str, endpoint: str, code: int, started: float, trace: str
    ) -> None:
        self.emit(
            {
                "kind": kind,
                "service": target,
                "endpoint": endpoint,
                "code": code,
                "ms": round((time.perf_counter() - started) * 1000, 3),
                "trace_id": trace,
            }
        )

    def handler_wrapper(self) -> HandlerWrapper:
        def wrap(next: HandlerFunc) -> HandlerFunc:
            async def handle(req: Request) -> Any:
                started, code = time.perf_counter(), 200
                try:
                    return await next(req)
                except BaseException as exc:
                    code = _code(exc)
                    raise
                finally:
                    trace = self._trace(req.header)
                    self._line("server", req.service, req.endpoint, code, started, trace)

            return handle

        return wrap

    def call_wrapper(self) -> CallWrapper:
        def wrap(next: CallFunc) -> CallFunc:
            async def call(node: Node, req: CallRequest, opts: CallOptions) -> Any:
                started, code = time.perf_counter(), 200
                try:
                    return await next(node, req, opts)
                except BaseException as exc:
                    code = _code(exc)
                    raise
                finally:
                    trace = self._trace(opts.metadata or {})
                    self._line("client", req.service, req.endpoint, code, started, trace)

            return call

        return wrap

    def publish_wrapper(self) -> PublishWrapper:
        def wrap(next: PublishFunc) -> PublishFunc:
            async def publish(topic: str, message: Message) -> None:
                started, code = time.perf_counter(), 200
                try:
                    await next(topic, message)
                except BaseException as exc:
                    code = _code(exc)
                    raise
                finally:
                    trace = self._trace(message.header)
                    self._line("publish", topic, "", code, started, trace)

            return publish

        return wrap

    def subscriber_wrapper(self) -> SubscriberWrapper:
        def wrap(next: SubscriberFunc) -> SubscriberFunc:
            async def deliver(pub: Publication) -> None:
                started, code = time.perf_counter(), 200
                try:
                    await next(pub)
                except BaseException as exc:
                    code = _code(exc)
                    raise
                finally:
                    trace = self._trace(pub.header)
                    self._line("deliver", pub.topic, pub.endpoint, code, started, trace)

            return deliver

        return wrap


def _code(exc: BaseException) -> int:
    return exc.code if isinstance(exc, MicroError) else 500


def _text(value: Any) -> str:
    text = str(value)
    return msgspec.json.encode(text).decode() if (not text or " " in text) else text
