"""The gateway's /metrics and spans, and the per-request log lines."""

from __future__ import annotations

import json
import logging
import uuid

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

import micro
from micro import errors
from micro.settings import BACKEND_GROUPS, load
from micro.toolkit.api import ApiOptions, Gateway
from tests.observability.handlers import Echo


async def test_the_gateway_serves_metrics_and_counts_its_calls() -> None:
    ns = f"obs{uuid.uuid4().hex[:8]}"
    service = micro.Service(f"{ns}.echo", registry="memory", transport="memory", broker="memory")
    service.handle(Echo())
    code = {"metrics_address": "127.0.0.1:0", "registry": "memory", "transport": "memory"}
    settings = load(groups=BACKEND_GROUPS, code=code, environ={})
    gw = Gateway(ApiOptions(access_log=False, namespace=ns), settings=settings)
    assert gw.observability is not None
    try:
        await service.start()
        await gw.start()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=gw), base_url="http://gateway"
        ) as http:
            for n in range(3):
                assert (await http.post("/echo/echo", json={"n": n})).status_code == 200
            assert (await http.post("/echo/echo", json={"n": -1})).status_code == 400
        metrics = gw.observability.metrics_server
        assert metrics is not None
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://{metrics.address}/metrics")).text
    finally:
        await gw.close()
        await service.stop()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    app = ("app", "micro-api")
    assert samples[("micro_http_requests_total", (app, ("code", "200"), ("method", "POST")))] == 3
    assert samples[("micro_http_requests_total", (app, ("code", "400"), ("method", "POST")))] == 1
    ep = (("endpoint", "Echo.Echo"), ("service", f"{ns}.echo"))
    assert samples[("micro_client_requests_total", (("code", "200"), *ep))] == 3
    assert samples[("micro_client_errors_total", (("code", "400"), *ep))] == 1


@pytest.mark.parametrize("style", ["json", "text"])
async def test_one_log_line_per_request_with_the_trace_id(
    style: str, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    name = f"logged-{uuid.uuid4().hex[:8]}"
    service = micro.Service(
        name,
        registry="memory",
        transport="memory",
        broker="memory",
        address="127.0.0.1:0",
        tracer_provider=provider,
        request_log=style,
        handle_signals=False,
    )
    service.handle(Echo())
    caplog.set_level(logging.INFO, logger="micro.request")
    async with service:
        await service.client.call(name, "Echo.Echo", {"n": 1})
        with pytest.raises(errors.BadRequest):
            await service.client.call(name, "Echo.Echo", {"n": -1})
    lines = [r.getMessage() for r in caplog.records if r.name == "micro.request"]
    assert len(lines) == 4  # client and server, twice
    if style == "json":
        fields = [json.loads(line) for line in lines]
    else:
        fields = [dict(part.split("=", 1) for part in line.split()) for line in lines]
    served = [f for f in fields if f["kind"] == "server"]
    assert [str(f["code"]) for f in served] == ["200", "400"]
    assert all(f["endpoint"] == "Echo.Echo" and f["service"] == name for f in served)
    spans = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert [f["trace_id"] for f in served] == [format(s.context.trace_id, "032x") for s in spans]
    assert all(float(f["ms"]) >= 0 for f in fields)


async def test_a_log_line_carries_an_incoming_trace_id_without_tracing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = f"logged-{uuid.uuid4().hex[:8]}"
    service = micro.Service(
        name,
        registry="memory",
        transport="memory",
        broker="memory",
        tracing=False,
        request_log="json",
        handle_signals=False,
    )
    service.handle(Echo())
    caplog.set_level(logging.INFO, logger="micro.request")
    trace_id = uuid.uuid4().hex
    async with service:
        await service.client.call(
            name, "Echo.Echo", {"n": 1}, metadata={"traceparent": f"00-{trace_id}-{'1' * 16}-01"}
        )
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "micro.request"]
    assert {line["trace_id"] for line in lines} == {trace_id}
