"""The toolkit apps' side: a SERVER span, counts and a log line per HTTP request.

``micro api``, ``micro web`` and ``micro proxy`` are ASGI apps: this middleware does for
their HTTP requests what the handler wrappers do for a service's, so a trace starts (or
continues an incoming ``traceparent``) at the gateway, and the calls the app makes (its
client carries the call wrappers) are its children. WebSocket and lifespan pass through.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from micro.observability._log import trace_id_of

if TYPE_CHECKING:
    from micro.observability import Observability

__all__ = ["ObservedHttp"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class ObservedHttp:
    """ASGI middleware around a toolkit app named ``name`` (``micro-api``...)."""

    def __init__(self, app: App, obs: Observability, name: str) -> None:
        self.app = app
        self.obs = obs
        self.name = name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        method = str(scope.get("method", "GET"))
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
        trace_id = ""
        try:
            if self.obs.tracing is not None:
                trace_id = await self._traced(scope, receive, sending, method, headers)
            else:
                await self.app(scope, receive, sending)
        finally:
            elapsed = time.perf_counter() - started
            metrics = self.obs.metrics
            if metrics is not None:
                metrics.http_requests.labels(self.name, method, str(status)).inc()
                metrics.http_duration.labels(self.name, method).observe(elapsed)
            if self.obs.request_log is not None:
                self.obs.request_log.emit(
                    {
                        "kind": "http",
                        "service": self.name,
                        "endpoint": f"{method} {scope.get('path', '')}",
                        "code": status,
                        "ms": round(elapsed * 1000, 3),
                        "trace_id": trace_id or trace_id_of(headers),
                    }
                )

    async def _traced(
        self, scope: Scope, receive: Receive, send: Send, method: str, headers: dict[str, str]
    ) -> str:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        from micro.observability.tracing import current_ids, extract

        assert self.obs.tracing is not None
        path = str(scope.get("path", ""))
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.path": path,
            "url.scheme": str(scope.get("scheme", "http")),
        }
        server = scope.get("server")
        if server:
            attributes["server.address"] = str(server[0])
            if server[1] is not None:
                attributes["server.port"] = int(server[1])
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        with self.obs.tracing.tracer.start_as_current_span(
            method,  # no route template here: the method alone keeps names low-cardinality
            context=extract(headers),
            kind=SpanKind.SERVER,
            attributes=attributes,
        ) as span:
            trace_id = current_ids()[0]
            try:
                await self.app(scope, receive, sending)
            finally:
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
        return trace_id
