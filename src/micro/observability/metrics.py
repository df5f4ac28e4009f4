"""Prometheus metrics of a service or toolkit app (``micro[metrics]``), served on /metrics.

Every :class:`Metrics` owns its own ``CollectorRegistry``, so two services in one process
(tests, ``micro run``) count apart. The series:

=========================================================  ======================================
``micro_server_requests_total{service,endpoint,code}``     requests answered (code 200: success)
``micro_server_errors_total{service,endpoint,code}``       of those, answered with an error
``micro_server_request_duration_seconds{service,endpoint}`` histogram of handling time
``micro_server_in_flight{service,endpoint}``               being handled now
``micro_client_requests_total{service,endpoint,code}``     call attempts (``service``: the callee)
``micro_client_errors_total{service,endpoint,code}``       failed attempts
``micro_client_request_duration_seconds{service,endpoint}`` histogram of attempt time
``micro_client_in_flight{service,endpoint}``               attempts waiting for an answer
``micro_broker_published_total{topic}``                    events handed to the broker
``micro_broker_publish_failures_total{topic}``             publishes the broker refused
``micro_broker_delivered_total{topic,subscriber}``         deliveries a subscriber took
``micro_broker_delivery_failures_total{topic,subscriber}`` deliveries whose subscriber raised
``micro_client_pool_idle_connections``                     kept-alive connections in the pool
``micro_selector_blacklisted_nodes``                       nodes the selector skips for now
``micro_registry_cache_services``                          services the selector has cached
``micro_resilience_<count>_total``                         calls refused or saved: ``shed``,
                                                           ``rate_limited``, ``breaker_rejected``,
                                                           ``bulkhead_rejected``,
                                                           ``retries_denied``, ``hedges``
``micro_resilience_breakers_open``                         breakers open or half-open now
``micro_resilience_ejected_nodes``                         nodes the selector ejected now
``micro_http_requests_total{app,method,code}``             a toolkit app's HTTP requests
``micro_http_request_duration_seconds{app,method}``        histogram of their answer time
=========================================================  ======================================

``code`` is the micro error code (``500`` for an exception that is not a MicroError).
Handler wrappers also feed :class:`LatencyHistogram`, whose percentiles ``Debug.Stats``
reports. The /metrics endpoint is a tiny asyncio HTTP server (:class:`MetricsServer`) on
the service's own loop: the gauges read the loop's objects there, never from a thread.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

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

__all__ = ["LatencyHistogram", "Metrics", "MetricsServer"]

log = logging.getLogger("micro.observability")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _code(exc: BaseException) -> str:
    return str(exc.code) if isinstance(exc, MicroError) else "500"


class LatencyHistogram:
    """Handling times in log buckets 5% apart (1 us to ~20 min), for exact-count percentiles.

    ``percentile(q)`` answers the upper bound of the bucket the q-th observation falls in,
    so it overstates by at most 5%. Plain ints on one event loop: no lock.
    """

    _BOUNDS = [1e-6 * 1.05**i for i in range(430)]

    def __init__(self) -> None:
        self.counts = [0] * (len(self._BOUNDS) + 1)
        self.total = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self._BOUNDS, seconds)] += 1
        self.total += 1

    def percentile(self, q: float) -> float:
        """Seconds under which ``q`` (0..1) of the observations fall (0.0 before any)."""
        if not self.total:
            return 0.0
        rank = max(1, math.ceil(q * self.total))
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return self._BOUNDS[min(index, len(self._BOUNDS) - 1)]
        return self._BOUNDS[-1]


_RESILIENCE_GAUGES = {
    "breakers_open": ("micro_resilience_breakers_open", "breakers open or half-open now"),
    "ejected": ("micro_resilience_ejected_nodes", "nodes the selector ejected for failures now"),
}


class _Gauges(Collector):
    """Pool, selector-blacklist and registry-cache gauges, and the resilience counts
    (``Debug.resilience``), read at scrape time."""

    def __init__(self) -> None:
        self.sources: list[Callable[[], tuple[Any, Any]]] = []
        self.resilience: list[Callable[[], Mapping[str, int]]] = []

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        yield from self._tables()
        counts: dict[str, int] = {}
        for source in self.resilience:
            for name, value in source().items():
                counts[name] = counts.get(name, 0) + value
        for name, value in counts.items():
            if name in _RESILIENCE_GAUGES:
                metric, text = _RESILIENCE_GAUGES[name]
                yield GaugeMetricFamily(metric, text, value)
            else:
                text = f"calls counted as {name.replace('_', ' ')} (docs/resilience.md)"
                yield CounterMetricFamily(f"micro_resilience_{name}", text, value)

    def _tables(self) -> Iterator[GaugeMetricFamily]:
        idle = blacklisted = cached = 0
        now = time.monotonic()
        for source in self.sources:
            pool, selector = source()
            # the pool and the cache selector expose no counts; their tables are read here
            for conns in getattr(pool, "_idle", {}).values():
                idle += len(conns)
            clock = getattr(selector, "_clock", None)
            at = clock() if callable(clock) else now
            for marks in getattr(selector, "_marks", {}).values():
                blacklisted += sum(1 for mark in marks.values() if mark.until > at)
            cached += len(getattr(selector, "_cache", {}))
        yield GaugeMetricFamily(
            "micro_client_pool_idle_connections", "kept-alive connections in the pool", idle
        )
        yield GaugeMetricFamily(
            "micro_selector_blacklisted_nodes", "nodes the selector skips for now", blacklisted
        )
        yield GaugeMetricFamily(
            "micro_registry_cache_services", "services the selector has cached", cached
        )


_DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
"""prometheus-client's default histogram buckets (seconds), kept for the RPC histograms."""


class _Endpoint:
    """The counts of one (service, endpoint): plain ints, updated on the event loop."""

    __slots__ = ("buckets", "codes", "in_flight", "ok", "seconds")

    def __init__(self) -> None:
        self.in_flight = 0
        self.ok = 0  # answered with code 200
        self.codes: dict[str, int] = {}  # answered with an error, by code
        self.buckets = [0] * (len(_DEFAULT_BUCKETS) + 1)
        self.seconds = 0.0

    def done(self, elapsed: float) -> None:
        self.in_flight -= 1
        self.buckets[bisect.bisect_left(_DEFAULT_BUCKETS, elapsed)] += 1
        self.seconds += elapsed

    def failed(self, code: str) -> None:
        self.codes[code] = self.codes.get(code, 0) + 1


class _Rpc(Collector):
    """One side's RPC series (``micro_<side>_requests_total`` and the rest), counted in
    plain ints and turned into metric families at scrape time.

    prometheus-client's ``Counter``/``Gauge``/``Histogram`` take a lock on every update; four
    of them a call cost ~9 us of a 33 us call with 64 in flight. Every update here runs on
    the event loop (wrappers are coroutines), so no lock is needed.
    """

    def __init__(self, side: str, what: tuple[str, str, str, str]) -> None:
        self.side = side
        self.what = what  # help texts: requests, errors, duration, in flight
        self.endpoints: dict[tuple[str, str], _Endpoint] = {}

    def of(self, service: str, endpoint: str) -> _Endpoint:
        found = self.endpoints.get((service, endpoint))
        if found is None:
            found = self.endpoints[(service, endpoint)] = _Endpoint()
        return found

    def collect(self) -> Iterator[Any]:
        side, (requests, errors, duration, in_flight) = self.side, self.what
        by_code, by_endpoint = ["service", "endpoint", "code"], ["service", "endpoint"]
        req = CounterMetricFamily(f"micro_{side}_requests", requests, labels=by_code)
        err = CounterMetricFamily(f"micro_{side}_errors", errors, labels=by_code)
        name = "request_duration_seconds"
        hist = HistogramMetricFamily(f"micro_{side}_{name}", duration, labels=by_endpoint)
        live = GaugeMetricFamily(f"micro_{side}_in_flight", in_flight, labels=by_endpoint)
        for (service, endpoint), e in list(self.endpoints.items()):
            if e.ok:
                req.add_metric([service, endpoint, "200"], e.ok)
            for code, count in e.codes.items():  # counted in both families
                req.add_metric([service, endpoint, code], count)
                err.add_metric([service, endpoint, code], count)
            cumulative, running = [], 0
            for bound, count in zip((*_DEFAULT_BUCKETS, math.inf), e.buckets, strict=True):
                running += count
                cumulative.append(("+Inf" if bound == math.inf else repr(bound), running))
            hist.add_metric([service, endpoint], cumulative, e.seconds)
            live.add_metric([service, endpoint], e.in_flight)
        yield from (req, err, hist, live)


class Metrics:
    """The counters of one service or app, and the wrappers that feed them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.server = _Rpc(
            "server",
            ("requests answered", "requests answered with an error", "handling time",
             "requests being handled"),
        )  # fmt: skip
        self.client = _Rpc(
            "client",
            ("call attempts answered", "call attempts that failed", "attempt time",
             "attempts waiting for an answer"),
        )  # fmt: skip
        r.register(self.server)
        r.register(self.client)
        self.published = Counter(
            "micro_broker_published", "events handed to the broker", ("topic",), registry=r
        )
        self.publish_failures = Counter(
            "micro_broker_publish_failures", "publishes that failed", ("topic",), registry=r
        )
        by_subscriber = ("topic", "subscriber")
        self.delivered = Counter(
            "micro_broker_delivered", "deliveries a subscriber took", by_subscriber, registry=r
        )
        self.delivery_failures = Counter(
            "micro_broker_delivery_failures", "deliveries that raised", by_subscriber, registry=r
        )
        self.http_requests = Counter(
            "micro_http_requests",
            "HTTP requests a toolkit app answered",
            ("app", "method", "code"),
            registry=r,
        )
        self.http_duration = Histogram(
            "micro_http_request_duration_seconds",
            "HTTP answer time",
            ("app", "method"),
            registry=r,
        )
        self.gauges = _Gauges()
        r.register(self.gauges)
        self.latency = LatencyHistogram()

    def watch(self, source: Callable[[], tuple[Any, Any]]) -> None:
        """Report the (pool, selector) ``source`` returns in the gauges at each scrape."""
        self.gauges.sources.append(source)

    def watch_resilience(self, source: Callable[[], Mapping[str, int]]) -> None:
        """Report the resilience counts ``source`` returns (``Debug.resilience``) at each
        scrape: totals as counters, ``breakers_open`` and ``ejected`` as gauges."""
        self.gauges.resilience.append(source)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)

    def handler_wrapper(self) -> HandlerWrapper:
        series, latency = self.server, self.latency

        def wrap(next: HandlerFunc) -> HandlerFunc:
            async def handle(req: Request) -> Any:
                counts = series.of(req.service, req.endpoint)
                counts.in_flight += 1
                started = time.perf_counter()
                try:
                    result = await next(req)
                except BaseException as exc:
                    counts.failed(_code(exc))
                    raise
                else:
                    counts.ok += 1
                    return result
                finally:
                    elapsed = time.perf_counter() - started
                    counts.done(elapsed)
                    latency.observe(elapsed)

            return handle

        return wrap

    def call_wrapper(self) -> CallWrapper:
        series = self.client

        def wrap(next: CallFunc) -> CallFunc:
            async def call(node: Node, req: CallRequest, opts: CallOptions) -> Any:
                counts = series.of(req.service, req.endpoint)
                counts.in_flight += 1
                started = time.perf_counter()
                try:
                    result = await next(node, req, opts)
                except BaseException as exc:
                    counts.failed(_code(exc))
                    raise
                else:
                    counts.ok += 1
                    return result
                finally:
                    counts.done(time.perf_counter() - started)

            return call

        return wrap

    def publish_wrapper(self) -> PublishWrapper:
        m = self

        def wrap(next: PublishFunc) -> PublishFunc:
            async def publish(topic: str, message: Message) -> None:
                try:
                    await next(topic, message)
                except BaseException:
                    m.publish_failures.labels(topic).inc()
                    raise
                m.published.labels(topic).inc()

            return publish

        return wrap

    def subscriber_wrapper(self) -> SubscriberWrapper:
        m = self

        def wrap(next: SubscriberFunc) -> SubscriberFunc:
            async def deliver(pub: Publication) -> None:
                try:
                    await next(pub)
                except BaseException:
                    m.delivery_failures.labels(pub.topic, pub.endpoint).inc()
                    raise
                m.delivered.labels(pub.topic, pub.endpoint).inc()

            return deliver

        return wrap


class MetricsServer:
    """``GET /metrics`` on ``address`` (``host:port``; port 0 picks one), on this loop.

    A deliberately small HTTP/1.0-style server: one request per connection, answered and
    closed, which is all a Prometheus scrape needs. Anything but ``GET /metrics`` is a 404
    (405 for another method on /metrics); a request line over 8 KiB or headers that do not
    arrive within 10 s close the connection.
    """

    def __init__(self, address: str, render: Callable[[], bytes]) -> None:
        self._wanted = address
        self._render = render
        self._server: asyncio.Server | None = None
        self.address = address

    async def start(self) -> None:
        host, _, port = self._wanted.rpartition(":")
        try:
            number = int(port)
        except ValueError:
            raise ValueError(f"metrics address {self._wanted!r}: want host:port") from None
        self._server = await asyncio.start_server(
            self._serve, host.strip("[]") or None, number, limit=8192
        )
        bound = self._server.sockets[0].getsockname()
        self.address = f"{host.strip('[]') or bound[0]}:{bound[1]}"
        log.info("metrics on http://%s/metrics", self.address)

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                line = await reader.readline()
                while (await reader.readline()).strip():
                    pass  # headers: nothing in them changes the answer
            parts = line.decode("latin-1").split()
            method, path = (parts[0], parts[1].split("?")[0]) if len(parts) >= 2 else ("", "")
            if path != "/metrics":
                status, ctype, body = "404 Not Found", "text/plain", b"not found: try /metrics\n"
            elif method not in ("GET", "HEAD"):
                status, ctype, body = "405 Method Not Allowed", "text/plain", b"GET only\n"
            else:
                status, ctype, body = "200 OK", CONTENT_TYPE, self._render()
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, ValueError, OSError, asyncio.IncompleteReadError):
            pass  # a scraper that went away or sent junk: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
