"""``GrpcServer``: a micro service's handlers served as standard gRPC (``grpc.aio``).

Each endpoint ``Handler.Method`` is the gRPC method ``/<package>.<Handler>/<Method>``; the
package is the service name (characters a proto package cannot hold become ``_``) unless
``package`` says otherwise, and the node registers it as ``grpc_package``. The server is
an :class:`~micro.server.rpc.RpcServer` in everything but the wire: the same handler
introspection, wrappers, request metadata, registration, ``Debug.*`` counts and graceful
stop. Unary endpoints are ``unary_unary`` methods, server streams ``unary_stream``, and
``Stream[Req, Rsp]`` handlers ``stream_stream`` (which also serves client streaming: the
handler reads until the end and sends one message).

Handlers typed with msgspec, dataclass or pydantic types get protobuf messages generated
from their types when the server starts (:mod:`micro.grpc._protogen`, the same file
``micro proto`` prints from the registry): a generic gRPC client speaks protobuf to them, and
server reflection (on by default) describes them, so ``grpcurl`` lists, describes and calls
the service with no ``.proto`` at hand. micro's own client sends JSON (it says so in
metadata) and keeps msgspec's decoding. Handlers typed with protobuf classes are served with
their own messages and left out of the generated file (their ``.proto`` is the user's).

``grpc.health.v1.Health`` answers ``SERVING`` while the server runs and ``NOT_SERVING`` from
the moment it starts draining. ``extra_services`` adds more ``grpc.GenericRpcHandler`` s
(other servicers) to the same port.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

import grpc  # type: ignore[import-untyped]

from micro import metadata as md
from micro.errors import (
    BadRequest,
    ConnectError,
    InternalServerError,
    MicroError,
    NotFound,
    Timeout,
)
from micro.grpc import _metadata
from micro.grpc._protogen import ProtoFile, from_specs
from micro.grpc._protogen import package_name as _package_name
from micro.grpc._status import to_status
from micro.grpc._wire import CONTENT_KEY, GRPC_JSON, Generated, ProtoPair, Wire
from micro.registry import Node
from micro.server import EndOfStream, Request, Stream
from micro.server._router import SERVER_ID, Route, shutting_down
from micro.server.rpc import RpcServer
from micro.transport import Listener, Socket

__all__ = ["GrpcServer", "package_name"]

log = logging.getLogger("micro.server")

_JSON_VALUE = "application/json"
_CONTENT_HEADER = md.canonical(CONTENT_KEY)


def package_name(service: str) -> str:
    """The default gRPC package of ``service``: its name, made a valid proto package (each
    dot-separated part an identifier), as ``micro proto`` names it."""
    return _package_name(service)


class GrpcServer(RpcServer):
    """Serves handlers as gRPC methods and keeps its node (``protocol=grpc``) registered.

    Args:
        package: the gRPC package of every method (setting ``grpc_package``; default
            :func:`package_name` of the service name).
        proto_types: per endpoint (``"Greeter.SayHello"``), a protobuf (request, response)
            class pair to speak on the wire instead of JSON, for handlers typed with msgspec,
            dataclass or pydantic types (handlers typed with protobuf classes need none).
        extra_services: more generic handlers served on the same port.
        health: serve ``grpc.health.v1.Health``.
        reflection: serve gRPC server reflection (v1 and v1alpha) of the generated file.
        options: ``grpc.aio.server`` channel options.
        **kwargs: :class:`~micro.server.rpc.RpcServer`'s options.
    """

    name = "grpc"

    def __init__(
        self,
        *,
        package: str | None = None,
        proto_types: Mapping[str, ProtoPair] | None = None,
        extra_services: Iterable[grpc.GenericRpcHandler] = (),
        health: bool = True,
        reflection: bool = True,
        options: Iterable[tuple[str, Any]] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.package = (
            package or self.settings.get("grpc_package") or package_name(self.service_name)
        )
        self.proto_types = dict(proto_types or {})
        self.extra_services = list(extra_services)
        self._health_on = health
        self._reflection_on = reflection
        self.protofile: ProtoFile | None = None
        """The messages and services generated from the handlers' types (set at start)."""
        self._options = list(options)
        self._health: Any = None
        self._grpc: grpc.aio.Server | None = None
        self._methods: dict[str, grpc.RpcMethodHandler | None] = {}

    def method_path(self, endpoint: str) -> str:
        """The gRPC method path of ``endpoint`` (``Handler.Method``)."""
        handler, _, method = endpoint.partition(".")
        return f"/{self.package}.{handler}/{method}"

    def node(self) -> Node:
        node = super().node()
        node.metadata.update(
            {
                "transport": "grpc",
                "server": "grpc",
                "protocol": "grpc",
                "grpc_package": self.package,
            }
        )
        node.metadata.update(self.metadata)
        return node

    # -- serving ---------------------------------------------------------------------------

    async def _listen(self) -> Listener:
        server = grpc.aio.server(options=self._options)
        if self._health_on:
            self._health = await _health(server, self.service_name, self.package)
        for extra in self.extra_services:
            server.add_generic_rpc_handlers((extra,))
        self.protofile = self._generate()
        if self._reflection_on and self.protofile is not None:
            from micro.grpc._reflection import reflection_handlers

            server.add_generic_rpc_handlers(tuple(reflection_handlers([self.protofile.file])))
        server.add_generic_rpc_handlers((_Routes(self._lookup),))
        host, _, port = self._address.rpartition(":")
        bind = f"{host or '0.0.0.0'}:{port or 0}"
        try:
            bound = server.add_insecure_port(bind)
        except RuntimeError as exc:
            raise ConnectError(f"cannot listen on {bind}: {exc}", id=SERVER_ID) from None
        await server.start()
        self._grpc = server
        return _GrpcListener(f"{host}:{bound}")

    def _lookup(self, path: str) -> grpc.RpcMethodHandler | None:
        """The method handler of ``path`` (cached); None for a path outside the package."""
        if path in self._methods:
            return self._methods[path]
        service, _, method = path.lstrip("/").partition("/")
        prefix, _, handler = service.rpartition(".")
        if prefix != self.package:
            return None
        route = self._router.routes.get(f"{handler}.{method}")
        found = _missing(self, path) if route is None else self._method(route)
        if len(self._methods) < 4096:
            self._methods[path] = found
        return found

    def _generate(self) -> ProtoFile | None:
        """The file for every endpoint not typed with protobuf classes (None: no such
        endpoint, or types the generator cannot describe: then JSON only, and said so)."""
        specs = [
            route.spec
            for route in self._router.routes.values()
            if route.counted  # not the internal Debug.* (unlisted, as in the registry)
            and route.spec.name not in self.proto_types
            and not _proto_typed(route.spec)
        ]
        if not specs:
            return None
        try:
            return from_specs(self.service_name, specs, package=self.package)
        except Exception as exc:  # a type the generator refuses: serve JSON, no reflection
            log.warning("no protobuf messages for %s (JSON only): %s", self.service_name, exc)
            return None

    def _generated(self, name: str) -> Generated | None:
        protofile = self.protofile
        rpc = protofile.rpcs.get(name) if protofile is not None else None
        if protofile is None or rpc is None:
            return None
        route = self._router.routes[name]
        return (
            protofile.decoder(rpc.request, route.spec.request_type),
            protofile.encoder(rpc.response),
        )

    def _method(self, route: Route) -> grpc.RpcMethodHandler:
        spec = route.spec
        wire = Wire(spec, self.proto_types.get(spec.name), self._generated(spec.name))
        # Requests are read as streams whatever the kind: grpcio never answers a unary
        # request that ends without a whole message (the caller would wait for its deadline),
        # while a stream's read returns EOF, which gets a status here.
        if spec.kind == "unary":
            return grpc.stream_unary_rpc_method_handler(self._unary(route, wire))
        return grpc.stream_stream_rpc_method_handler(self._stream(route, wire, spec.kind == "bidi"))

    def _unary(self, route: Route, wire: Wire) -> Callable[..., Any]:
        async def unary(_: Any, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            header, json = _header(context)
            error = self._enter(route, header, context)
            if error is None:
                try:
                    data = await _first(context, route)
                    json = json or _looks_json(data, wire)
                    body = wire.decode(data, json=json)
                    request = self._request(route, wire, header, body, json=json)
                    result = await _bounded(route, context, route.call(request))
                    return wire.encode(result, json=json)
                except Exception as exc:
                    error = self._failure(route, exc)
                finally:
                    self._leave(route)
            await _abort(context, error)
            raise AssertionError("unreachable: abort raises")

        return unary

    def _stream(self, route: Route, wire: Wire, reads: bool) -> Callable[..., Any]:
        async def stream(_: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
            header, json = _header(context)
            error = self._enter(route, header, context)
            if error is None:
                try:
                    io = GrpcServerStream(context, wire, json=json, reads=reads)
                    if reads:
                        body: Any = io
                    else:
                        data = await _first(context, route)
                        io.json = json = json or _looks_json(data, wire)
                        body = wire.decode(data, json=json)
                    request = self._request(route, wire, header, body, io, json=json)
                    await _bounded(route, context, route.call(request))
                    return
                except Exception as exc:
                    error = self._failure(route, exc)
                finally:
                    self._leave(route)
            await _abort(context, error)

        return stream

    def _request(
        self,
        route: Route,
        wire: Wire,
        header: dict[str, str],
        body: Any,
        io: Stream[Any, Any] | None = None,
        *,
        json: bool,
    ) -> Request:
        md.set_incoming(header)
        return Request(
            service=self.service_name,
            endpoint=route.spec.name,
            content_type=GRPC_JSON if json else wire.content_type,
            header=header,
            metadata=md.get(),
            body=body,
            stream=io is not None,
            io=io,
        )

    # -- counts and draining, shared with the mucp router's Debug.Stats -------------------

    def _enter(
        self, route: Route, header: dict[str, str], context: grpc.aio.ServicerContext[Any, Any]
    ) -> MicroError | None:
        router = self._router
        router.requests += route.counted
        if router.draining:
            router.errors += route.counted
            return shutting_down()
        if router.admit is not None and route.counted:  # load shedding, rate limit
            active = router.active + 1  # this call included, as the mucp router counts it
            refused = router.admit(cast(Socket, _Peer(context.peer())), header, active)
            if refused is not None:
                router.errors += route.counted
                return refused
        router.inflight += 1
        router.active += route.counted
        return None

    def _leave(self, route: Route) -> None:
        router = self._router
        router.inflight -= 1
        router.active -= route.counted
        if router.draining and not router.inflight:
            router.drained.set()

    def _failure(self, route: Route, exc: BaseException) -> MicroError:
        self._router.errors += route.counted
        if isinstance(exc, MicroError):
            if not exc.id:
                exc.id = self.service_name
            return exc
        log.error("%s failed", route.spec.name, exc_info=exc)
        detail = f"{route.spec.name}: {type(exc).__name__}: {exc}"
        return InternalServerError(detail, id=self.service_name)

    # -- stopping -------------------------------------------------------------------------

    async def _shutdown(self, grace: float | None) -> None:
        if self._health is not None:
            await self._health.enter_graceful_shutdown()  # NOT_SERVING while draining
        try:
            await super()._shutdown(grace)
        finally:
            if self._grpc is not None:
                await self._grpc.stop(1.0)


class GrpcServerStream(Stream[Any, Any]):
    """A handler's side of a gRPC stream: frames read and written through the context."""

    def __init__(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        wire: Wire,
        *,
        json: bool,
        reads: bool,
    ) -> None:
        self._context = context
        self._wire = wire
        self.json = json  # JSON both ways: said in metadata, or the client's first message
        self._reads = reads

    async def recv(self) -> Any:
        if not self._reads:
            raise EndOfStream("this endpoint streams to the client only")
        data = await self._context.read()
        if data is grpc.aio.EOF:
            raise EndOfStream
        self.json = self.json or _looks_json(data, self._wire)
        return self._wire.decode(data, json=self.json)

    async def send(self, message: Any) -> None:
        try:
            data = self._wire.encode(message, json=self.json)
        except MicroError as exc:
            raise InternalServerError(f"{self._wire.spec.name}: {exc.detail}") from None
        await self._context.write(data)


class _Peer:
    """What the admission checks read of a caller: its address (``remote``)."""

    __slots__ = ("remote",)

    def __init__(self, peer: str) -> None:
        # grpcio's "ipv4:127.0.0.1:5000" / "ipv6:[::1]:5000" -> "127.0.0.1:5000" / "[::1]:5000"
        self.remote = peer.partition(":")[2] if peer.startswith(("ipv4:", "ipv6:")) else peer


class _GrpcListener(Listener):
    """The bound address; the gRPC server itself stops after draining (health answers)."""

    def __init__(self, address: str) -> None:
        self._address = address

    @property
    def address(self) -> str:
        return self._address

    async def close(self) -> None:
        return None


class _Routes(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Finds a call's method handler by its path, among the server's current routes."""

    def __init__(self, lookup: Callable[[str], grpc.RpcMethodHandler | None]) -> None:
        self._lookup = lookup

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        return self._lookup(handler_call_details.method)


def _looks_json(data: bytes, wire: Wire) -> bool:
    """Whether a message to a protobuf endpoint is JSON without the metadata saying so: a
    body starting ``{`` or ``[``, which as protobuf would open a group (field 15 or 11,
    wire type 3), something proto3 never writes. So a gRPC client sending
    ``application/grpc+json`` bodies (whose content-type grpcio hides from the server) is
    understood and answered in JSON."""
    return wire.proto and data[:1] in (b"{", b"[")


def _proto_typed(spec: Any) -> bool:
    from micro.codec._types import is_proto_class

    return bool(is_proto_class(spec.request_type) or is_proto_class(spec.response_type))


def _missing(server: GrpcServer, path: str) -> grpc.RpcMethodHandler:
    """A handler answering NOT_FOUND (and the micro 404) for an unknown method."""
    known = ", ".join(server._router.known[:10])
    error = NotFound(f"unknown endpoint {path} (known: {known})", id=SERVER_ID)

    async def missing(_: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        await _abort(context, error)
        raise AssertionError("unreachable: abort raises")

    return grpc.unary_unary_rpc_method_handler(missing)


async def _first(context: grpc.aio.ServicerContext[Any, Any], route: Route) -> bytes:
    """The request message of a unary or server-streaming call.

    Raises:
        BadRequest: the client ended its side without a whole message.
    """
    data = await context.read()
    if data is grpc.aio.EOF:
        detail = f"{route.spec.name}: no request message (or one cut short)"
        raise BadRequest(detail, id=SERVER_ID)
    assert isinstance(data, bytes)
    return data


def _header(context: grpc.aio.ServicerContext[Any, Any]) -> tuple[dict[str, str], bool]:
    """The call's headers (canonical names, the deadline as ``Timeout``) and whether the
    client sent JSON to a protobuf endpoint."""
    pairs = context.invocation_metadata()
    header = _metadata.incoming(pairs)
    json = header.pop(_CONTENT_HEADER, "") == _JSON_VALUE
    timeout = _metadata.timeout_ns(context.time_remaining())
    if timeout is not None:
        header["Timeout"] = timeout
    return header, json


async def _bounded(route: Route, context: grpc.aio.ServicerContext[Any, Any], call: Any) -> Any:
    """Await ``call`` within the gRPC deadline; past it, the micro ``Timeout`` (408)."""
    remaining = context.time_remaining()
    if remaining is None:
        return await call
    try:
        async with asyncio.timeout(remaining):
            return await call
    except TimeoutError as exc:
        if isinstance(exc, MicroError):
            raise
        detail = f"{route.spec.name}: deadline of {remaining:.3g}s exceeded"
        raise Timeout(detail) from None


async def _abort(context: grpc.aio.ServicerContext[Any, Any], error: MicroError) -> None:
    code, message, trailers = to_status(error)
    await context.abort(code, message, trailing_metadata=trailers)


async def _health(server: grpc.aio.Server, *names: str) -> Any:
    """Add ``grpc.health.v1.Health`` to ``server``, SERVING for "" and each name."""
    from grpc_health.v1 import (  # type: ignore[import-untyped]
        health,
        health_pb2,
        health_pb2_grpc,
    )

    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    for name in ("", *dict.fromkeys(names)):
        await servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return servicer
