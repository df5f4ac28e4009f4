"""/metrics after known traffic, parsed with prometheus-client's own parser: exact counts."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import micro
from micro import errors
from micro.observability.metrics import LatencyHistogram
from micro.testing import eventually
from tests.observability.handlers import Echo


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def _scrape(address: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient() as http:
        rsp = await http.get(f"http://{address}/metrics")
    assert rsp.status_code == 200
    assert rsp.headers["content-type"].startswith("text/plain")
    return _samples(rsp.text)


async def test_metrics_count_exactly() -> None:
    suffix = uuid.uuid4().hex[:8]
    name, topic = f"echo-{suffix}", f"echoed.{suffix}"
    delivered: list[dict[str, int]] = []
    raised: list[int] = []

    async def on_echoed(event: dict[str, int]) -> None:
        if event["n"] == 13:
            raised.append(1)  # the memory broker redelivers a failed event, then drops it
            raise ValueError("unlucky")
        delivered.append(event)

    service = micro.Service(
        name,
        registry="memory",
        transport="memory",
        broker="memory",
        address="127.0.0.1:0",
        metrics_address="127.0.0.1:0",
        handle_signals=False,
    )
    service.handle(Echo())
    service.subscribe(topic, on_echoed)
    async with service:
        client = service.client
        for n in range(5):
            await client.call(name, "Echo.Echo", {"n": n})
        for _ in range(2):
            with pytest.raises(errors.BadRequest):
                await client.call(name, "Echo.Echo", {"n": -1}, retries=0)
        for n in (1, 2, 13):
            await client.publish(topic, {"n": n})
        await eventually(lambda: len(delivered) == 2 and len(raised) == 5)
        await client.call(name, "Debug.Stats", {})  # internal: not counted by the router
        assert service.observability is not None
        server = service.observability.metrics_server
        assert server is not None
        samples = await _scrape(server.address)
        stats = await client.call(name, "Debug.Stats", {})

    ep = (("endpoint", "Echo.Echo"), ("service", name))
    ok = tuple(sorted((*ep, ("code", "200"))))
    bad = tuple(sorted((*ep, ("code", "400"))))
    assert samples[("micro_server_requests_total", ok)] == 5
    assert samples[("micro_server_requests_total", bad)] == 2
    assert samples[("micro_server_errors_total", bad)] == 2
    assert ("micro_server_errors_total", ok) not in samples
    assert samples[("micro_server_request_duration_seconds_count", ep)] == 7
    every = tuple(sorted((*ep, ("le", "+Inf"))))
    assert samples[("micro_server_request_duration_seconds_bucket", every)] == 7
    fast = tuple(sorted((*ep, ("le", "10.0"))))  # cumulative: every call took under 10 s
    assert samples[("micro_server_request_duration_seconds_bucket", fast)] == 7
    assert 0 < samples[("micro_server_request_duration_seconds_sum", ep)] < 7 * 10
    assert samples[("micro_server_in_flight", ep)] == 0
    assert samples[("micro_client_requests_total", ok)] == 5
    assert samples[("micro_client_errors_total", bad)] == 2
    assert samples[("micro_client_request_duration_seconds_count", ep)] == 7
    assert samples[("micro_broker_published_total", (("topic", topic),))] == 3
    sub = (("subscriber", "Func"), ("topic", topic))
    assert samples[("micro_broker_delivered_total", sub)] == 2
    assert samples[("micro_broker_delivery_failures_total", sub)] == len(raised)
    assert samples[("micro_registry_cache_services", ())] == 1
    assert samples[("micro_client_pool_idle_connections", ())] >= 1
    assert samples[("micro_selector_blacklisted_nodes", ())] == 0
    # the resilience counts are series too (every mechanism is off here: all 0)
    assert samples[("micro_resilience_shed_total", ())] == 0
    assert samples[("micro_resilience_breakers_open", ())] == 0
    assert stats["requests"] == 7
    assert 0 < stats["latency_p50_us"] <= stats["latency_p95_us"] <= stats["latency_p99_us"]


async def test_other_paths_are_not_found() -> None:
    service = micro.Service(
        f"quiet-{uuid.uuid4().hex[:8]}",
        registry="memory",
        transport="memory",
        broker="memory",
        metrics_address="127.0.0.1:0",
        handle_signals=False,
    )
    async with service:
        assert service.observability is not None
        assert service.observability.metrics_server is not None
        address = service.observability.metrics_server.address
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"http://{address}/")).status_code == 404
            assert (await http.post(f"http://{address}/metrics")).status_code == 405


def test_percentiles_of_the_latency_histogram() -> None:
    histogram = LatencyHistogram()
    assert histogram.percentile(0.5) == 0.0
    for ms in range(1, 101):
        histogram.observe(ms / 1000)
    assert 0.050 <= histogram.percentile(0.5) <= 0.050 * 1.05
    assert 0.099 <= histogram.percentile(0.99) <= 0.099 * 1.05
    assert 0.100 <= histogram.percentile(1.0) <= 0.100 * 1.05


async def test_resilience_counts_are_series() -> None:
    """A server that sheds load: the refusals counted in /metrics as in Debug.Stats."""
    name = f"shed-{uuid.uuid4().hex[:8]}"
    service = micro.Service(
        name,
        registry="memory",
        transport="memory",
        broker="memory",
        metrics_address="127.0.0.1:0",
        max_in_flight=1,
        handle_signals=False,
    )
    gate = asyncio.Event()

    class Slow:
        async def wait(self) -> dict[str, bool]:
            await gate.wait()
            return {"ok": True}

    service.handle(Slow())
    async with service:
        client = service.client
        first = asyncio.ensure_future(client.call(name, "Slow.Wait", {}))
        await eventually(lambda: _busy(service))  # the first call holds the one slot
        for _ in range(3):
            with pytest.raises(errors.ServiceUnavailable):
                await client.call(name, "Slow.Wait", {}, retries=0)
        gate.set()
        assert await first == {"ok": True}
        assert service.observability is not None
        server = service.observability.metrics_server
        assert server is not None
        samples = await _scrape(server.address)
        stats = await client.call(name, "Debug.Stats", {})
    assert samples[("micro_resilience_shed_total", ())] == stats["shed"] == 3


def _busy(service: micro.Service) -> bool:
    return service.server._router.active == 1
