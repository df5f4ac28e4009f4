"""OpenTelemetry spans around calls, handlers, publishes and deliveries (``micro[otel]``).

Each wrapper starts one span and carries the W3C trace context (``traceparent`` and
``tracestate``) in micro metadata, so it crosses every transport and broker as headers
(``Traceparent``, ``Tracestate``: metadata keys are canonical header names):

- a client call attempt: a CLIENT span, its context injected into the call's metadata;
- a handler: a SERVER span, child of the context the request's headers carry;
- a publish: a PRODUCER span, its context injected into the event's headers;
- a subscriber delivery: a CONSUMER span, child of the publisher's context.

Attributes follow the OpenTelemetry semantic conventions for RPC (``rpc.system`` is
``micro``, ``rpc.service``, ``rpc.method``, ``server.address``/``server.port``) and
messaging (``messaging.system`` is the broker's name, ``messaging.destination.name``,
``messaging.operation.type``/``.name``). The micro error code goes to
``rpc.micro.status_code`` (200 on success), as gRPC's goes to ``rpc.grpc.status_code``.

Spans are started with ``start_span`` and made current with ``attach``/``detach`` rather
than ``start_as_current_span``, whose two nested context managers cost ~25% of a span.

Importing this module imports OpenTelemetry: :mod:`micro.observability` does so only when
tracing is on.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any

import msgspec
from opentelemetry import trace
from opentelemetry.context import Context, attach, detach
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
    TracerProvider,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from micro.client import CallFunc, CallOptions, CallWrapper, PublishFunc, PublishWrapper
from micro.client import Request as CallRequest
from micro.errors import MicroError
from micro.metadata import canonical
from micro.observability._env import otel_env, wanted_by_env
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

__all__ = ["Tracing", "configure_provider", "extract", "inject", "wanted_by_env"]

log = logging.getLogger("micro.observability")

_PROPAGATOR = TraceContextTextMapPropagator()
_SCOPE = "micro"


class _HeaderGetter(Getter[Mapping[str, str]]):
    """Reads ``traceparent`` whatever the case the headers came in (canonical first)."""

    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        value = carrier.get(canonical(key))
        if value is None:
            value = carrier.get(key)
        if value is None:
            lowered = key.lower()
            for name, found in carrier.items():
                if name.lower() == lowered:
                    value = found
                    break
        return [value] if value is not None else None

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier)


class _HeaderSetter(Setter[MutableMapping[str, str]]):
    """Writes canonical header names (``Traceparent``), as micro metadata keys are."""

    def set(self, carrier: MutableMapping[str, str], key: str, value: str) -> None:
        carrier[canonical(key)] = value


_GETTER = _HeaderGetter()
_SETTER = _HeaderSetter()


_ROOT = Context()


def extract(headers: Mapping[str, str]) -> Context:
    """The trace context ``headers`` carry (an empty context when they carry none).

    A plain version-00 ``Traceparent`` (no ``Tracestate``), what micro sends, is parsed
    here: the propagator's regular expressions cost ~20 us a request. Anything else goes to
    the W3C propagator, which decides.
    """
    value = headers.get("Traceparent")
    if value is None:
        value = headers.get("traceparent")
        if value is None and not any(k.lower() == "traceparent" for k in headers):
            return _ROOT
    if value is not None and "Tracestate" not in headers and "tracestate" not in headers:
        parts = value.split("-")
        if (
            len(parts) == 4
            and parts[0] == "00"
            and len(parts[1]) == 32
            and len(parts[2]) == 16
            and len(parts[3]) == 2
        ):
            try:
                trace_id, span_id = int(parts[1], 16), int(parts[2], 16)
                flags = int(parts[3], 16)
            except ValueError:
                return _PROPAGATOR.extract(headers, getter=_GETTER)
            if trace_id and span_id:
                remote = SpanContext(
                    trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags & 0x01)
                )
                return trace.set_span_in_context(NonRecordingSpan(remote), _ROOT)
    return _PROPAGATOR.extract(headers, getter=_GETTER)


def inject(headers: MutableMapping[str, str]) -> None:
    """Put the current span's ``Traceparent`` (and ``Tracestate``) into ``headers``."""
    _PROPAGATOR.inject(headers, setter=_SETTER)


_SPLIT: dict[str, tuple[str, int | None]] = {}


def _host_port(address: str) -> tuple[str, int | None]:
    found = _SPLIT.get(address)
    if found is None:
        found = _split(address)
        if len(_SPLIT) < 4096:
            _SPLIT[address] = found
    return found


def _split(address: str) -> tuple[str, int | None]:
    host, _, port = address.rpartition(":")
    if not host:
        return address, None
    host = host.strip("[]")
    return host, int(port) if port.isdigit() else None


def _rpc_attributes(service: str, endpoint: str, address: str) -> dict[str, Any]:
    """The RPC semantic-convention attributes of a call to ``endpoint`` at ``address``."""
    host, port = _host_port(address)
    attributes: dict[str, Any] = {
        "rpc.system": "micro",
        "rpc.service": service,
        "rpc.method": endpoint,
        "server.address": host,
    }
    if port is not None:
        attributes["server.port"] = port
    return attributes


def _failed(span: Span, exc: BaseException) -> None:
    """Mark ``span`` failed by ``exc``: the micro code, ``error.type`` and the event."""
    if isinstance(exc, MicroError):
        span.set_attribute("rpc.micro.status_code", exc.code)
    else:
        span.set_attribute("rpc.micro.status_code", 500)
    span.set_attribute("error.type", type(exc).__qualname__)
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, str(exc) or type(exc).__name__))


class Tracing:
    """The tracing wrappers of one service (or toolkit app), on one tracer provider.

    Args:
        provider: where spans go (default: the global provider, see
            :func:`configure_provider`).
        service: the serving service's name (the ``rpc.service`` of server spans).
        address: returns the server's bound ``host:port`` (for ``server.address``).
        broker: the broker's name (``messaging.system``).
    """

    def __init__(
        self,
        provider: TracerProvider | None = None,
        *,
        service: str = "",
        address: Callable[[], str] = lambda: "",
        broker: str = "",
    ) -> None:
        self.provider = provider
        self.tracer: Tracer = trace.get_tracer(_SCOPE, tracer_provider=provider)
        self.service = service
        self._address = address
        self.broker = broker

    # -- server ----------------------------------------------------------------------------

    def handler_wrapper(self) -> HandlerWrapper:
        """A SERVER span per request, child of the caller's ``traceparent``."""
        tracer = self.tracer

        def wrap(next: HandlerFunc) -> HandlerFunc:
            async def handle(req: Request) -> Any:
                attributes = _rpc_attributes(req.service, req.endpoint, self._address())
                caller = req.header.get("Micro-From-Service")
                if caller:
                    attributes["rpc.micro.from_service"] = caller
                span = tracer.start_span(
                    f"{req.service}/{req.endpoint}",
                    context=extract(req.header),
                    kind=SpanKind.SERVER,
                    attributes=attributes,
                )
                token = attach(trace.set_span_in_context(span))
                try:
                    result = await next(req)
                except BaseException as exc:
                    _failed(span, exc)
                    raise
                else:
                    span.set_attribute("rpc.micro.status_code", 200)
                    return result
                finally:
                    detach(token)
                    span.end()

            return handle

        return wrap

    # -- client ----------------------------------------------------------------------------

    def call_wrapper(self) -> CallWrapper:
        """A CLIENT span per attempt; its context goes out in the call's metadata."""
        tracer = self.tracer

        def wrap(next: CallFunc) -> CallFunc:
            async def call(node: Node, req: CallRequest, opts: CallOptions) -> Any:
                attributes = _rpc_attributes(req.service, req.endpoint, node.address)
                span = tracer.start_span(
                    f"{req.service}/{req.endpoint}", kind=SpanKind.CLIENT, attributes=attributes
                )
                token = attach(trace.set_span_in_context(span))
                try:
                    carried = dict(opts.metadata) if opts.metadata else {}
                    inject(carried)  # over any traceparent the inbound request carried
                    result = await next(node, req, msgspec.structs.replace(opts, metadata=carried))
                except BaseException as exc:
                    _failed(span, exc)
                    raise
                else:
                    span.set_attribute("rpc.micro.status_code", 200)
                    return result
                finally:
                    detach(token)
                    span.end()

            return call

        return wrap

    # -- broker ----------------------------------------------------------------------------

    def publish_wrapper(self) -> PublishWrapper:
        """A PRODUCER span per publish; its context goes out in the event's headers."""
        tracer = self.tracer

        def wrap(next: PublishFunc) -> PublishFunc:
            async def publish(topic: str, message: Message) -> None:
                attributes: dict[str, Any] = {
                    "messaging.system": self.broker,
                    "messaging.destination.name": topic,
                    "messaging.operation.type": "send",
                    "messaging.operation.name": "publish",
                }
                message_id = message.header.get("Micro-Id")
                if message_id:
                    attributes["messaging.message.id"] = message_id
                span = tracer.start_span(
                    f"publish {topic}", kind=SpanKind.PRODUCER, attributes=attributes
                )
                token = attach(trace.set_span_in_context(span))
                try:
                    inject(message.header)
                    await next(topic, message)
                except BaseException as exc:
                    _failed(span, exc)
                    raise
                finally:
                    detach(token)
                    span.end()

            return publish

        return wrap

    def subscriber_wrapper(self) -> SubscriberWrapper:
        """A CONSUMER span per delivery, child of the publisher's span."""
        tracer = self.tracer

        def wrap(next: SubscriberFunc) -> SubscriberFunc:
            async def deliver(pub: Publication) -> None:
                attributes: dict[str, Any] = {
                    "messaging.system": self.broker,
                    "messaging.destination.name": pub.topic,
                    "messaging.operation.type": "process",
                    "messaging.operation.name": "process",
                    "messaging.micro.subscriber": pub.endpoint,
                }
                message_id = pub.header.get("Micro-Id")
                if message_id:
                    attributes["messaging.message.id"] = message_id
                span = tracer.start_span(
                    f"process {pub.topic}",
                    context=extract(pub.header),
                    kind=SpanKind.CONSUMER,
                    attributes=attributes,
                )
                token = attach(trace.set_span_in_context(span))
                try:
                    await next(pub)
                except BaseException as exc:
                    _failed(span, exc)
                    raise
                finally:
                    detach(token)
                    span.end()

            return deliver

        return wrap


def current_ids() -> tuple[str, str]:
    """The current span's trace and span ids in hex (empty strings outside a span)."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return "", ""
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


# -- the SDK from OTEL_* ---------------------------------------------------------------------

_configured: TracerProvider | None = None


def configure_provider(service: str) -> TracerProvider:
    """The global tracer provider; an SDK one built from ``OTEL_*`` when none is set yet.

    An application that sets its own provider (``trace.set_tracer_provider``) keeps it. Else
    the SDK's provider is installed once per process, named ``OTEL_SERVICE_NAME`` or
    ``service``, exporting to what ``OTEL_TRACES_EXPORTER`` names: ``otlp`` (the default
    when an ``OTEL_EXPORTER_OTLP_*ENDPOINT`` is set: OTLP over HTTP/protobuf, or gRPC when
    ``OTEL_EXPORTER_OTLP_PROTOCOL=grpc``), ``console``, or ``none``.

    Raises:
        ValueError: ``OTEL_TRACES_EXPORTER`` names an exporter micro does not build.
    """
    global _configured
    current = trace.get_tracer_provider()
    if not isinstance(current, trace.ProxyTracerProvider):
        return current
    if _configured is not None:
        return _configured
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    env = otel_env()
    resource = Resource.create({SERVICE_NAME: env.get("OTEL_SERVICE_NAME") or service})
    provider = SdkTracerProvider(resource=resource)
    for exporter in _exporters(env):
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _configured = provider
    return provider


def _exporters(env: Mapping[str, str]) -> Iterable[Any]:
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",")]
    for name in filter(None, names):
        if name == "none":
            continue
        if name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            yield ConsoleSpanExporter()
        elif name == "otlp":
            protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
                "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
            )
            if protocol.strip().lower() == "grpc":
                try:
                    grpc = importlib.import_module(
                        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"
                    )
                except ImportError as exc:
                    raise ValueError(
                        "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs "
                        "opentelemetry-exporter-otlp-proto-grpc installed"
                    ) from exc
                yield grpc.OTLPSpanExporter()
            else:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )

                yield OTLPSpanExporter()
        else:
            raise ValueError(
                f"OTEL_TRACES_EXPORTER={name!r}: micro builds otlp, console or none "
                "(set your own provider with trace.set_tracer_provider for others)"
            )


def flush(provider: TracerProvider | None, timeout: float = 5.0) -> None:
    """Export the spans still buffered by ``provider`` (an SDK one; others are left)."""
    force_flush = getattr(provider, "force_flush", None)
    if force_flush is not None:
        try:
            force_flush(int(timeout * 1000))
        except Exception as exc:  # stopping never raises: the exporter's problem is logged
            log.warning("flushing spans failed: %s", exc)
