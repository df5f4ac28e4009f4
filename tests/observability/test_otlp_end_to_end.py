"""One trace across processes, exported by the SDK's OTLP exporter to a receiver here.

``micro api`` -> ``front`` -> ``back`` -> publish (NATS) -> ``sink``: four processes with
nothing but ``OTEL_*`` set, each exporting OTLP/HTTP protobuf to a tiny receiver on loopback
that decodes the posts with opentelemetry-proto.
"""

from __future__ import annotations

import http.server
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.servers import address
from tests.toolkit.api.test_process import PY, Proc, gateway, wait_path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HERE = Path(__file__).resolve().parent


class Received:
    """The spans posted to /v1/traces: (service.name, span) pairs."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, Span]] = []
        self.lock = threading.Lock()

    def add(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            names = [
                a.value.string_value
                for a in resource_spans.resource.attributes
                if a.key == "service.name"
            ]
            for scope_spans in resource_spans.scope_spans:
                with self.lock:
                    self.spans.extend((names[0] if names else "", s) for s in scope_spans.spans)


@pytest.fixture
def receiver() -> Iterator[tuple[str, Received]]:
    received = Received()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path != "/v1/traces":
                self.send_response(404)
                self.end_headers()
                return
            received.add(body)
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def test_one_trace_from_the_gateway_to_a_subscriber(
    receiver: tuple[str, Received], tmp_path: Path
) -> None:
    endpoint, received = receiver
    ns = f"otel{uuid.uuid4().hex[:8]}"
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "MICRO_BROKER": "nats",
        "MICRO_BROKER_ADDRESS": address("nats"),
    }
    procs = [
        Proc(
            [PY, str(HERE / "chain_service.py"), role, ns, "--server_name", f"{ns}.{role}"],
            tmp_path / f"{role}.log",
            env,
        )
        for role in ("sink", "back", "front")
    ]
    api: Proc | None = None
    try:
        api, url = gateway(tmp_path, ns, env=env)
        wait_path(url, "/front/ping")
        wait_path(url, "/back/echo")
        trace_id = uuid.uuid4().hex
        caller_span = uuid.uuid4().hex[:16]
        rsp = httpx.post(
            f"{url}/front/ping",
            json={"n": 7},
            headers={"traceparent": f"00-{trace_id}-{caller_span}-01"},
            timeout=10,
        )
        assert rsp.status_code == 200, rsp.text
        assert rsp.json() == {"n": 7}
        deadline = time.monotonic() + 20
        while not any(s.kind == Span.SPAN_KIND_CONSUMER for _, s in _trace(received, trace_id)):
            assert time.monotonic() < deadline, [s.name for _, s in received.spans]
            time.sleep(0.1)
        time.sleep(0.5)  # the last batches of the other processes
        spans = _trace(received, trace_id)
    finally:
        if api is not None:
            api.stop()
        for proc in procs:
            proc.stop()

    def one(service: str, kind: int) -> Span:
        found = [s for name, s in spans if name == service and s.kind == kind]
        assert len(found) == 1, [(name, s.name, s.kind) for name, s in spans]
        return found[0]

    entry = one("micro-api", Span.SPAN_KIND_SERVER)
    to_front = one("micro-api", Span.SPAN_KIND_CLIENT)
    front = one(f"{ns}.front", Span.SPAN_KIND_SERVER)
    to_back = one(f"{ns}.front", Span.SPAN_KIND_CLIENT)
    back = one(f"{ns}.back", Span.SPAN_KIND_SERVER)
    publish = one(f"{ns}.back", Span.SPAN_KIND_PRODUCER)
    deliver = one(f"{ns}.sink", Span.SPAN_KIND_CONSUMER)
    assert len(spans) == 7
    assert entry.parent_span_id.hex() == caller_span
    for child, parent in (
        (to_front, entry),
        (front, to_front),
        (to_back, front),
        (back, to_back),
        (publish, back),
        (deliver, publish),
    ):
        assert child.parent_span_id == parent.span_id, (child.name, parent.name)
    assert front.name == f"{ns}.front/Front.Ping"
    assert back.name == f"{ns}.back/Back.Echo"
    messaging = {a.key: a.value.string_value for a in deliver.attributes}
    assert messaging["messaging.system"] == "nats"
    assert messaging["messaging.destination.name"] == f"{ns}.pinged"


def _trace(received: Received, trace_id: str) -> list[tuple[str, Span]]:
    with received.lock:
        return [(name, s) for name, s in received.spans if s.trace_id.hex() == trace_id]
