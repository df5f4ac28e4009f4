"""``grpc``: a grpcio asyncio server and a ``grpc.aio`` unary call on one channel.

Stubs come from ``greeter.proto`` next to this file, generated at run time with
``python -m grpc_tools.protoc`` into the run's temp dir (``$BENCH_GRPC_STUBS`` for the server);
generated code is never committed.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc

from benchmarks.harness import Client, Options, Target

PROTO = Path(__file__).with_name("greeter.proto")
STUBS_ENV = "BENCH_GRPC_STUBS"


def generate_stubs(out_dir: Path, python: str = sys.executable) -> Path:
    """Run protoc on ``greeter.proto`` into ``out_dir`` (created); return ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if not (out_dir / "greeter_pb2_grpc.py").exists():
        subprocess.run(
            [
                python,
                "-m",
                "grpc_tools.protoc",
                f"-I{PROTO.parent}",
                f"--python_out={out_dir}",
                f"--grpc_python_out={out_dir}",
                PROTO.name,
            ],
            check=True,
            capture_output=True,
        )
    return out_dir


def import_stubs(stubs_dir: str) -> tuple[ModuleType, ModuleType]:
    if stubs_dir not in sys.path:
        sys.path.insert(0, stubs_dir)
    return importlib.import_module("greeter_pb2"), importlib.import_module("greeter_pb2_grpc")


async def open_server() -> tuple[str, Callable[[], Awaitable[None]]]:
    pb2, pb2_grpc = import_stubs(os.environ[STUBS_ENV])

    class Greeter(pb2_grpc.GreeterServicer):
        async def SayHello(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
            return pb2.HelloReply(msg=f"Hello {request.name}")

    server = grpc.aio.server()
    pb2_grpc.add_GreeterServicer_to_server(Greeter(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()

    async def stop() -> None:
        await server.stop(grace=1.0)

    return f"127.0.0.1:{port}", stop


class GrpcTarget(Target):
    name = "grpc"
    title = "grpcio asyncio server + grpc.aio unary call"
    server_module = __name__
    import_probes = {"grpc": "import grpc"}

    def __init__(self) -> None:
        self.stubs_dir: Path | None = None

    def _stubs(self, options: Options) -> Path:
        if self.stubs_dir is None:
            self.stubs_dir = generate_stubs(options.workdir / "grpc_stubs", options.python)
        return self.stubs_dir

    def server_env(self, options: Options) -> dict[str, str]:
        return {STUBS_ENV: str(self._stubs(options))}

    async def make_client(self, address: str) -> Client:
        assert self.stubs_dir is not None, "start_server generates the stubs first"
        pb2, pb2_grpc = import_stubs(str(self.stubs_dir))
        channel = grpc.aio.insecure_channel(address)
        await channel.channel_ready()
        stub = pb2_grpc.GreeterStub(channel)
        request_type = pb2.HelloRequest

        async def call() -> Any:
            return await stub.SayHello(request_type(name="John"))

        async def close() -> None:
            await channel.close()

        return Client(call=call, close=close)


TARGET = GrpcTarget()
