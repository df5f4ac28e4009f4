"""Spans and trace propagation with the real OpenTelemetry SDK and an in-memory exporter."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import micro
from micro import errors
from micro.observability import setup
from micro.settings import SERVICE_GROUPS, load
from micro.testing import eventually


class Ping(msgspec.Struct):
    n: int


@pytest.fixture
def spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _service(name: str, provider: TracerProvider, **options: object) -> micro.Service:
    return micro.Service(
        name,
        registry="memory",
        transport="memory",
        broker="memory",
        address="127.0.0.1:0",
        tracer_provider=provider,
        handle_signals=False,
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
async def chain(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> AsyncIterator[tuple[str, micro.Service, list[dict[str, int]]]]:
    """front -> back (RPC), front publishes ``<topic>``, sink subscribes to it."""
    provider, _ = spans
    suffix = uuid.uuid4().hex[:8]
    topic = f"pinged.{suffix}"
    front = _service(f"front-{suffix}", provider)
    back = _service(f"back-{suffix}", provider)
    sink = _service(f"sink-{suffix}", provider)
    got: list[dict[str, int]] = []

    class Back:
        async def echo(self, req: Ping) -> Ping:
            if req.n < 0:
                raise errors.BadRequest("negative", id="back")
            return req

    class Front:
        async def ping(self, req: Ping) -> Ping:
            rsp = await front.client.call(back.name, "Back.Echo", req, response_type=Ping)
            await front.client.publish(topic, {"n": rsp.n})
            return rsp

    async def on_ping(event: dict[str, int]) -> None:
        got.append(event)

    back.handle(Back())
    front.handle(Front())
    sink.subscribe(topic, on_ping)
    async with back, sink, front:
        yield topic, front, got


def _by_name(spans: list[ReadableSpan], name: str, kind: SpanKind) -> ReadableSpan:
    found = [s for s in spans if s.name == name and s.kind == kind]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


async def test_one_trace_from_client_to_subscriber(
    spans: tuple[TracerProvider, InMemorySpanExporter],
    chain: tuple[str, micro.Service, list[dict[str, int]]],
) -> None:
    provider, exporter = spans
    topic, front, got = chain
    async with micro.Client(
        registry="memory", transport="memory", wrappers=_client_wrappers(provider)
    ) as client:
        rsp = await client.call(front.name, "Front.Ping", {"n": 7})
    assert rsp == {"n": 7}
    await eventually(lambda: got == [{"n": 7}])
    await eventually(
        lambda: any(s.kind == SpanKind.CONSUMER for s in exporter.get_finished_spans())
    )
    finished = list(exporter.get_finished_spans())
    back = front.name.replace("front", "back")
    assert len(finished) == 6
    caller = _by_name(finished, f"{front.name}/Front.Ping", SpanKind.CLIENT)
    front_server = _by_name(finished, f"{front.name}/Front.Ping", SpanKind.SERVER)
    back_client = _by_name(finished, f"{back}/Back.Echo", SpanKind.CLIENT)
    back_server = _by_name(finished, f"{back}/Back.Echo", SpanKind.SERVER)
    producer = _by_name(finished, f"publish {topic}", SpanKind.PRODUCER)
    consumer = _by_name(finished, f"process {topic}", SpanKind.CONSUMER)
    assert {s.context.trace_id for s in finished} == {caller.context.trace_id}
    assert front_server.parent is not None
    assert front_server.parent.span_id == caller.context.span_id
    assert back_client.parent is not None
    assert back_client.parent.span_id == front_server.context.span_id
    assert back_server.parent is not None
    assert back_server.parent.span_id == back_client.context.span_id
    assert producer.parent is not None
    assert producer.parent.span_id == front_server.context.span_id
    assert consumer.parent is not None
    assert consumer.parent.span_id == producer.context.span_id
    attrs = dict(back_server.attributes or {})
    assert attrs["rpc.system"] == "micro"
    assert attrs["rpc.service"] == back
    assert attrs["rpc.method"] == "Back.Echo"
    assert attrs["rpc.micro.status_code"] == 200
    assert attrs["server.address"] == "127.0.0.1"
    assert isinstance(attrs["server.port"], int)
    assert attrs["server.port"] > 0
    assert dict(producer.attributes or {})["messaging.system"] == "memory"
    assert dict(producer.attributes or {})["messaging.destination.name"] == topic
    assert dict(consumer.attributes or {})["messaging.operation.type"] == "process"


def _client_wrappers(provider: TracerProvider) -> list[micro.client.CallWrapper]:
    settings = load(groups=SERVICE_GROUPS, code={"tracing": "on"})
    obs = setup(settings, service="caller", tracer_provider=provider)
    assert obs is not None
    return obs.call_wrappers()


async def test_an_error_marks_the_spans(
    spans: tuple[TracerProvider, InMemorySpanExporter],
    chain: tuple[str, micro.Service, list[dict[str, int]]],
) -> None:
    _, exporter = spans
    _, front, got = chain
    with pytest.raises(errors.BadRequest):
        await front.client.call(front.name.replace("front", "back"), "Back.Echo", {"n": -1})
    finished = exporter.get_finished_spans()
    failed = [s for s in finished if s.kind in (SpanKind.CLIENT, SpanKind.SERVER)]
    assert len(failed) == 2
    for span in failed:
        assert span.status.status_code == StatusCode.ERROR
        assert dict(span.attributes or {})["rpc.micro.status_code"] == 400
    assert got == []


async def test_an_incoming_traceparent_is_the_parent(
    spans: tuple[TracerProvider, InMemorySpanExporter],
    chain: tuple[str, micro.Service, list[dict[str, int]]],
) -> None:
    _, exporter = spans
    _, front, _ = chain
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent = f"00-{trace_id}-00f067aa0ba902b7-01"
    back = front.name.replace("front", "back")
    async with micro.Client(registry="memory", transport="memory") as client:  # no tracing
        await client.call(back, "Back.Echo", {"n": 1}, metadata={"traceparent": parent})
    (server,) = exporter.get_finished_spans()
    assert format(server.context.trace_id, "032x") == trace_id
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == "00f067aa0ba902b7"


async def test_off_installs_no_wrapper() -> None:
    settings = load(groups=SERVICE_GROUPS, code={"tracing": "off"}, environ={})
    assert setup(settings, service="quiet") is None
    service = micro.Service(
        "quiet", registry="memory", transport="memory", broker="memory", tracing=False
    )
    assert service.server is not None
    assert service.observability is None


async def test_auto_follows_the_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from micro.observability._env import wanted_by_env

    assert not wanted_by_env({})
    assert not wanted_by_env({"OTEL_TRACES_EXPORTER": "none"})
    assert wanted_by_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert wanted_by_env({"OTEL_TRACES_EXPORTER": "console"})


async def test_a_bad_tracing_value_is_a_settings_error() -> None:
    with pytest.raises(micro.settings.SettingsError, match="tracing"):
        setup(load(groups=SERVICE_GROUPS, code={"tracing": "sometimes"}), service="x")


@pytest.mark.parametrize(
    "headers",
    [
        {"Traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
        {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"},
        {
            "Traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "Tracestate": "vendor=1",
        },
        {"Traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"},
        {"Traceparent": "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01"},
        {"Traceparent": "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
        {"TRACEPARENT": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
        {"Traceparent": "garbage"},
        {},
    ],
)
def test_extract_reads_what_the_w3c_propagator_reads(headers: dict[str, str]) -> None:
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from micro.observability.tracing import extract

    lowered = {k.lower(): v for k, v in headers.items()}
    expected = trace.get_current_span(TraceContextTextMapPropagator().extract(lowered))
    found = trace.get_current_span(extract(headers))
    assert found.get_span_context() == expected.get_span_context()


@pytest.mark.parametrize(
    ("code", "module", "extra"),
    [
        ({"tracing": "on"}, "opentelemetry", "otel"),
        ({"metrics_address": "127.0.0.1:0", "tracing": "off"}, "prometheus_client", "metrics"),
    ],
)
def test_a_missing_extra_names_what_to_install(
    monkeypatch: pytest.MonkeyPatch, code: dict[str, str], module: str, extra: str
) -> None:
    import sys

    for name in list(sys.modules):
        if name == module or name.startswith(f"{module}."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.delitem(sys.modules, "micro.observability.tracing", raising=False)
    monkeypatch.delitem(sys.modules, "micro.observability.metrics", raising=False)
    settings = load(groups=SERVICE_GROUPS, code=code, environ={})
    with pytest.raises(micro.errors.PluginNotFound) as caught:
        setup(settings, service="x")
    assert f"[{extra}]" in caught.value.detail


def test_auto_without_the_extra_stays_off(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    monkeypatch.delitem(sys.modules, "micro.observability.tracing", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert setup(load(groups=SERVICE_GROUPS, environ={}), service="x") is None
