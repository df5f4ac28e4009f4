"""Observability: tracing, metrics and request logs, installed as ordinary wrappers.

A service (or a toolkit app) turns each on with one setting (``observability`` group of
:mod:`micro.settings`, or the same keyword on :class:`micro.Service`):

- ``tracing`` (``auto``: on when ``OTEL_TRACES_EXPORTER`` or an
  ``OTEL_EXPORTER_OTLP_*ENDPOINT`` is set): :mod:`micro.observability.tracing`, spans and
  W3C ``traceparent`` in the metadata (``micro[otel]``);
- ``metrics_address``: :mod:`micro.observability.metrics`, Prometheus counters served on
  ``http://<address>/metrics`` (``micro[metrics]``);
- ``request_log`` (``json`` or ``text``): one ``micro.request`` log line per request.

:func:`setup` returns ``None`` when all three are off, and then no wrapper is installed at
all: off costs nothing. This module imports neither OpenTelemetry nor prometheus-client;
their modules are imported only when their feature is on, with an install hint when the
extra is missing. See ``docs/observability.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from micro import plugins
from micro.errors import PluginNotFound

if TYPE_CHECKING:
    from micro.client import CallWrapper, PublishWrapper
    from micro.observability._log import RequestLog
    from micro.observability.metrics import LatencyHistogram, Metrics, MetricsServer
    from micro.observability.tracing import Tracing
    from micro.server import HandlerWrapper, SubscriberWrapper
    from micro.settings import Settings

__all__ = ["Observability", "setup"]

log = logging.getLogger("micro.observability")

TRACING_MODES = ("auto", "on", "off")


class Observability:
    """What one service or app observes, and the wrappers that do it (outermost first:
    tracing, then the request log inside the span, then metrics)."""

    def __init__(
        self,
        *,
        tracing: Tracing | None = None,
        metrics: Metrics | None = None,
        metrics_address: str | None = None,
        request_log: RequestLog | None = None,
    ) -> None:
        self.tracing = tracing
        self.metrics = metrics
        self.request_log = request_log
        self.metrics_server: MetricsServer | None = None
        if metrics is not None and metrics_address:
            from micro.observability.metrics import MetricsServer

            self.metrics_server = MetricsServer(metrics_address, metrics.exposition)

    def _parts(self) -> list[Any]:
        return [p for p in (self.tracing, self.request_log, self.metrics) if p is not None]

    def handler_wrappers(self) -> list[HandlerWrapper]:
        return [part.handler_wrapper() for part in self._parts()]

    def call_wrappers(self) -> list[CallWrapper]:
        return [part.call_wrapper() for part in self._parts()]

    def publish_wrappers(self) -> list[PublishWrapper]:
        return [part.publish_wrapper() for part in self._parts()]

    def subscriber_wrappers(self) -> list[SubscriberWrapper]:
        return [part.subscriber_wrapper() for part in self._parts()]

    @property
    def latency(self) -> LatencyHistogram | None:
        """The server's handling-time histogram (``Debug.Stats`` percentiles), with metrics."""
        return self.metrics.latency if self.metrics is not None else None

    def watch(self, source: Callable[[], tuple[Any, Any]]) -> None:
        """Report the (pool, selector) ``source`` returns in the metrics' gauges."""
        if self.metrics is not None:
            self.metrics.watch(source)

    def watch_resilience(self, source: Callable[[], Mapping[str, int]]) -> None:
        """Report the resilience counts ``source`` returns in the metrics."""
        if self.metrics is not None:
            self.metrics.watch_resilience(source)

    async def start(self) -> None:
        """Serve /metrics (when an address is set)."""
        if self.metrics_server is not None:
            await self.metrics_server.start()

    async def close(self) -> None:
        """Stop serving /metrics and export the spans still buffered; never raises."""
        if self.metrics_server is not None:
            await self.metrics_server.close()
        if self.tracing is not None:
            from micro.observability.tracing import flush

            flush(self.tracing.provider)


def setup(
    settings: Settings,
    *,
    service: str,
    tracer_provider: Any = None,
    address: Callable[[], str] = lambda: "",
    broker: str = "",
) -> Observability | None:
    """The observability ``settings`` ask for, or None when they ask for none.

    Args:
        settings: resolved settings with the ``observability`` group.
        service: the service's name (spans' ``service.name`` when ``OTEL_SERVICE_NAME`` is
            unset; ``rpc.service`` of server spans).
        tracer_provider: an OpenTelemetry ``TracerProvider`` to use (turns tracing on).
        address: returns the server's bound ``host:port`` (``server.address`` of spans).
        broker: the broker's name (``messaging.system``).

    Raises:
        SettingsError: ``tracing`` or ``request_log`` has an unknown value.
        PluginNotFound: ``tracing=on`` or ``metrics_address`` without their extra installed.
    """
    from micro.settings import SettingsError

    mode = str(settings.get("tracing") or "auto").strip().lower()
    if mode not in TRACING_MODES:
        raise SettingsError(f"tracing {mode!r}: want auto, on or off")
    log_format = settings.get("request_log") or None
    if log_format is not None and log_format not in ("json", "text"):
        raise SettingsError(f"request_log {log_format!r}: want json or text")
    tracing = _tracing(mode, service, tracer_provider, address, broker)
    metrics_address = settings.get("metrics_address") or None
    metrics = _metrics() if metrics_address else None
    request_log = None
    if log_format is not None:
        from micro.observability._log import RequestLog

        current = None
        if tracing is not None:
            from micro.observability.tracing import current_ids

            def current() -> str:
                return current_ids()[0]

        request_log = RequestLog(log_format, current)
    if tracing is None and metrics is None and request_log is None:
        return None
    return Observability(
        tracing=tracing, metrics=metrics, metrics_address=metrics_address, request_log=request_log
    )


def _tracing(
    mode: str, service: str, provider: Any, address: Callable[[], str], broker: str
) -> Tracing | None:
    if mode == "off" and provider is None:
        return None
    if mode == "auto" and provider is None:
        from micro.observability._env import otel_env, wanted_by_env

        if not wanted_by_env(otel_env()):
            return None
    try:
        from micro.observability.tracing import Tracing, configure_provider
    except ImportError as exc:
        hint = plugins.install_hint("otel")
        if mode == "auto" and provider is None:
            log.warning("OTEL_* asks for traces but OpenTelemetry is missing (%s): %s", exc, hint)
            return None
        raise PluginNotFound(
            f"tracing needs OpenTelemetry ({exc}); install it with: {hint}",
            id="go.micro.observability",
        ) from exc
    chosen = provider if provider is not None else configure_provider(service)
    return Tracing(chosen, service=service, address=address, broker=broker)


def _metrics() -> Metrics:
    try:
        from micro.observability.metrics import Metrics
    except ImportError as exc:
        raise PluginNotFound(
            f"metrics need prometheus-client ({exc}); install it with: "
            f"{plugins.install_hint('metrics')}",
            id="go.micro.observability",
        ) from exc
    return Metrics()
