"""``micro-metrics``, ``micro-traced``, ``micro-otlp``: the ``micro`` greeter observed.

The same service and client as ``micro_http.py``, with observability (docs/observability.md)
turned on at both ends, server and client, as two instrumented services would be:

- ``micro-metrics``: Prometheus metrics (``metrics_address``; nobody scrapes during the run);
- ``micro-traced``: OpenTelemetry spans, every one sampled (the SDK's default sampler), on
  an SDK ``TracerProvider`` with no exporter attached: the cost of making the spans;
- ``micro-otlp``: the same spans batched to the SDK's OTLP/HTTP exporter. The server's go to
  a receiver thread in the server process that reads each POST and answers 200 (so its cost
  counts against the server); the client's are made but not exported.

``micro`` itself is the "off" case: with nothing set, :func:`micro.observability.setup`
returns None and no wrapper is installed, so its code path is the one measured there.
The server subprocess learns its variant from ``$BENCH_MICRO_OBSERVE``.
"""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import micro
from benchmarks.harness import REQUEST, Client, Options
from benchmarks.targets.micro_http import (
    ENDPOINT,
    SERVICE,
    Greeter,
    MicroTarget,
    format_address,
)

VARIANT_ENV = "BENCH_MICRO_OBSERVE"


def _provider(otlp_endpoint: str | None = None) -> Any:
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider()
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        exporter = OTLPSpanExporter(endpoint=f"{otlp_endpoint}/v1/traces")
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _receiver() -> str:
    """A loopback OTLP/HTTP sink in a thread: reads each POST, answers 200."""

    class Sink(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def _options(variant: str, *, server: bool) -> dict[str, Any]:
    if variant == "metrics":
        return {"metrics_address": "127.0.0.1:0"}
    if variant == "traced":
        return {"tracer_provider": _provider()}
    if variant == "otlp":
        return {"tracer_provider": _provider(_receiver() if server else None)}
    raise ValueError(f"unknown variant {variant!r}")


async def open_server() -> tuple[str, Callable[[], Awaitable[None]]]:
    variant = os.environ[VARIANT_ENV]
    service = micro.Service(
        SERVICE,
        address="127.0.0.1:0",
        registry="memory",
        transport="http",
        tracing=variant != "metrics" or None,
        **_options(variant, server=True),
    )
    service.handle(Greeter())
    await service.start()
    assert service.observability is not None
    return format_address(service.server.address), service.stop


class MicroObservedTarget(MicroTarget):
    """``micro`` with ``variant`` observability at both ends."""

    server_module = __name__
    import_probes: ClassVar[dict[str, str]] = {}
    variant: ClassVar[str]

    def unavailable(self, options: Options) -> str | None:
        missing = super().unavailable(options)
        if missing:
            return missing
        try:
            if self.variant == "metrics":
                import prometheus_client  # noqa: F401
            else:
                import opentelemetry.sdk.trace  # noqa: F401
        except ImportError as exc:
            return f"{exc}: install micro[metrics] / micro[otel]"
        return None

    def server_env(self, options: Options) -> dict[str, str]:
        return {VARIANT_ENV: self.variant}

    async def make_client(self, address: str) -> Client:
        from micro.observability import setup
        from micro.settings import SERVICE_GROUPS, load

        options = _options(self.variant, server=False)
        code = {"metrics_address": options.get("metrics_address"), "tracing": "off"}
        if "tracer_provider" in options:
            code["tracing"] = "on"
        obs = setup(
            load(groups=SERVICE_GROUPS, code=code, environ={}),
            service="bench.client",
            tracer_provider=options.get("tracer_provider"),
        )
        assert obs is not None
        client = micro.Client(
            registry="memory",
            transport="http",
            wrappers=obs.call_wrappers(),
        )

        async def call() -> Any:
            return await client.call(SERVICE, ENDPOINT, REQUEST, address=address)

        return Client(call=call, close=client.close)


class MicroMetricsTarget(MicroObservedTarget):
    name = "micro-metrics"
    title = "micro HTTP, Prometheus metrics at both ends"
    variant = "metrics"


class MicroTracedTarget(MicroObservedTarget):
    name = "micro-traced"
    title = "micro HTTP, spans at both ends (100% sampled, no exporter)"
    variant = "traced"


class MicroOtlpTarget(MicroObservedTarget):
    name = "micro-otlp"
    title = "micro HTTP, spans at both ends, the server's exported by OTLP/HTTP"
    variant = "otlp"


METRICS = MicroMetricsTarget()
TRACED = MicroTracedTarget()
OTLP = MicroOtlpTarget()
