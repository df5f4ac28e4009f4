"""gRPC targets: micro's gRPC server and client, each beside plain grpcio in the same role.

Run by ``python -m benchmarks.grpc_micro`` (not by the main runner). Every target answers the
``targets/greeter.proto`` greeter (package ``bench``); the stubs are generated at run time as
for the ``grpc`` anchor (:mod:`benchmarks.targets.grpc_unary`), whose server and stub are the
plain side here.

=====================  ===========================================  ==========================
target                 server                                       client
=====================  ===========================================  ==========================
grpc                   grpcio servicer (the anchor)                 grpcio stub
micro-grpc-server      ``micro.Service("bench", server="grpc")``,   grpcio stub
                       handler typed with the protobuf classes
micro-grpc-client      grpcio servicer                              ``micro.Client(protocol=
                                                                    "grpc")``, by address
micro-grpc             micro, msgspec-typed (application/grpc+json)  micro.Client
grpc-stream            grpcio servicer, ``Count``: 10 replies       grpcio stub, reads all 10
micro-grpc-stream      micro, an async generator of 10 replies      grpcio stub, reads all 10
=====================  ===========================================  ==========================

The server subprocess learns which server to run from ``$BENCH_GRPC_SERVER``.
"""

# No ``from __future__ import annotations``: the handlers' annotations are the generated
# classes themselves, which exist only once the stubs are imported.

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from types import ModuleType
from typing import Any, ClassVar

import grpc

import micro
from benchmarks.harness import REQUEST, Client, Options
from benchmarks.targets import grpc_unary
from benchmarks.targets.grpc_unary import GrpcTarget, import_stubs
from benchmarks.targets.micro_http import Greeter as JsonGreeter

SERVER_ENV = "BENCH_GRPC_SERVER"
STREAM_ITEMS = 10
SERVICE = "bench"  # the package of greeter.proto: micro's default package is the name


def proto_greeter(pb2: ModuleType) -> object:
    class Greeter:
        async def say_hello(self, req: pb2.HelloRequest) -> pb2.HelloReply:  # type: ignore[name-defined]
            return pb2.HelloReply(msg=f"Hello {req.name}")

        async def count(self, req: pb2.CountRequest) -> AsyncIterator[pb2.HelloReply]:  # type: ignore[name-defined]
            for _ in range(req.to):
                yield pb2.HelloReply(msg=f"Hello {req.name}")

    return Greeter()


def plain_stream_servicer(pb2: ModuleType, pb2_grpc: ModuleType) -> Any:
    class Greeter(pb2_grpc.GreeterServicer):  # type: ignore[misc,name-defined]
        async def SayHello(self, request: Any, context: Any) -> Any:
            return pb2.HelloReply(msg=f"Hello {request.name}")

        async def Count(self, request: Any, context: Any) -> Any:
            for _ in range(request.to):
                yield pb2.HelloReply(msg=f"Hello {request.name}")

    return Greeter()


async def open_server() -> tuple[str, Callable[[], Awaitable[None]]]:
    kind = os.environ[SERVER_ENV]
    if kind == "plain":
        return await grpc_unary.open_server()
    pb2, pb2_grpc = import_stubs(os.environ[grpc_unary.STUBS_ENV])
    if kind == "plain-stream":
        server = grpc.aio.server()
        pb2_grpc.add_GreeterServicer_to_server(plain_stream_servicer(pb2, pb2_grpc), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()

        async def stop() -> None:
            await server.stop(grace=1.0)

        return f"127.0.0.1:{port}", stop
    name = SERVICE if kind == "micro-proto" else "bench.greeter"
    service = micro.Service(name, server="grpc", registry="memory", address="127.0.0.1:0")
    service.handle(proto_greeter(pb2) if kind == "micro-proto" else JsonGreeter(), name="Greeter")
    await service.start()
    return service.server.address, service.stop


class _GrpcBench(GrpcTarget):
    """A grpc target whose server is ``open_server`` above, chosen by ``server_kind``."""

    server_module = __name__
    server_kind: ClassVar[str] = "plain"
    import_probes: ClassVar[dict[str, str]] = {}

    def server_env(self, options: Options) -> dict[str, str]:
        return {**super().server_env(options), SERVER_ENV: self.server_kind}

    def stubs(self) -> tuple[ModuleType, ModuleType]:
        assert self.stubs_dir is not None, "start_server generates the stubs first"
        return import_stubs(str(self.stubs_dir))


class MicroServerTarget(_GrpcBench):
    name = "micro-grpc-server"
    title = "micro gRPC server (protobuf handler) + grpcio stub"
    server_kind = "micro-proto"


class MicroClientTarget(_GrpcBench):
    name = "micro-grpc-client"
    title = "grpcio server + micro.Client(protocol='grpc')"
    server_kind = "plain"

    async def make_client(self, address: str) -> Client:
        pb2, _ = self.stubs()
        client = micro.Client(registry="memory", protocol="grpc")
        request, reply = pb2.HelloRequest(name="John"), pb2.HelloReply

        async def call() -> Any:
            return await client.call(
                SERVICE, "Greeter.SayHello", request, response_type=reply, address=address
            )

        return Client(call=call, close=client.close)


class MicroJsonTarget(_GrpcBench):
    name = "micro-grpc"
    title = "micro gRPC server (msgspec handler, grpc+json) + micro.Client"
    server_kind = "micro-json"

    async def make_client(self, address: str) -> Client:
        client = micro.Client(registry="memory", protocol="grpc")

        async def call() -> Any:
            return await client.call("bench.greeter", "Greeter.SayHello", REQUEST, address=address)

        return Client(call=call, close=client.close)


class StreamTarget(_GrpcBench):
    """One call is one ``Count`` stream of ``STREAM_ITEMS`` replies, read to its end."""

    name = "grpc-stream"
    title = f"grpcio server stream ({STREAM_ITEMS} replies) + grpcio stub"
    server_kind = "plain-stream"

    async def make_client(self, address: str) -> Client:
        pb2, pb2_grpc = self.stubs()
        channel = grpc.aio.insecure_channel(address)
        await channel.channel_ready()
        stub = pb2_grpc.GreeterStub(channel)
        request = pb2.CountRequest(name="John", to=STREAM_ITEMS)

        async def call() -> Any:
            last = None
            async for last in stub.Count(request):  # noqa: B007
                pass
            return last

        return Client(call=call, close=channel.close)


class MicroStreamTarget(StreamTarget):
    name = "micro-grpc-stream"
    title = f"micro gRPC server stream ({STREAM_ITEMS} replies) + grpcio stub"
    server_kind = "micro-proto"


class AnchorTarget(_GrpcBench):
    name = "grpc"
    title = grpc_unary.GrpcTarget.title


TARGETS: tuple[_GrpcBench, ...] = (
    AnchorTarget(),
    MicroServerTarget(),
    MicroClientTarget(),
    MicroJsonTarget(),
    StreamTarget(),
    MicroStreamTarget(),
)
