"""A msgspec-typed service over gRPC as a generic gRPC client sees it: the protobuf messages
generated from its types, described by server reflection, so that grpcurl (with no .proto)
and a stub generated from ``micro proto``'s file call it; micro's own client keeps JSON."""

from __future__ import annotations

import importlib
import importlib.resources
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc  # type: ignore[import-untyped]
import pytest

from micro.client.rpc import RpcClient
from micro.grpc._protogen import from_endpoints
from micro.grpc.server import GrpcServer
from micro.registry.memory import MemoryRegistry
from tests.grpc.core.conftest import serving
from tests.grpc.core.handlers import Greeter
from tests.grpc.proto.test_reflection import grpcurl


async def test_reflection_lists_and_describes_the_generated_service(
    json_server: GrpcServer,
) -> None:
    listed = await grpcurl(json_server.address, "list")
    assert listed.returncode == 0, listed.stderr
    assert "greeter.Greeter" in listed.stdout.split()
    assert "grpc.reflection.v1alpha.ServerReflection" in listed.stdout.split()
    assert "greeter.Debug" not in listed.stdout.split()  # internal, as in the registry
    described = await grpcurl(json_server.address, "describe", "greeter.Greeter")
    assert described.returncode == 0, described.stderr
    assert "rpc SayHello ( .greeter.HelloRequest )" in described.stdout
    message = await grpcurl(json_server.address, "describe", "greeter.HelloRequest")
    assert "string name = 1" in message.stdout


async def test_grpcurl_calls_unary_and_streams_through_reflection(
    json_server: GrpcServer,
) -> None:
    address = json_server.address
    hello = await grpcurl("-d", '{"name": "Ann"}', address, "greeter.Greeter/SayHello")
    assert hello.returncode == 0, hello.stderr
    assert json.loads(hello.stdout) == {"msg": "Hello Ann"}
    counted = await grpcurl("-d", '{"to": 3}', address, "greeter.Greeter/Count")
    assert counted.returncode == 0, counted.stderr
    assert [m["msg"] for m in _objects(counted.stdout)] == ["#0", "#1", "#2"]
    # a validation error still comes back as a gRPC status, not a crash
    bad = await grpcurl("-d", '{"to": "three"}', address, "greeter.Greeter/Count")
    assert bad.returncode != 0


@pytest.fixture
async def gen_server(registry: MemoryRegistry) -> AsyncIterator[GrpcServer]:
    """The msgspec greeter as ``gen.greeter``: a package of its own, since the generated
    module's messages go into protobuf's process-wide pool beside other tests' ``greeter``."""
    async with serving(registry, Greeter(), service="gen.greeter") as server:
        yield server


async def test_a_stub_generated_from_the_registry_file_calls_it(
    gen_server: GrpcServer, registry: MemoryRegistry, tmp_path: Path
) -> None:
    """The file ``micro proto gen.greeter`` prints (built from the registry's schemas),
    compiled with grpcio-tools: its stub speaks protobuf to the server."""
    from grpc_tools import protoc

    [service] = await registry.get_service("gen.greeter")
    source = from_endpoints("gen.greeter", service.endpoints).source()
    (tmp_path / "greeter_reg.proto").write_text(source)
    well_known = importlib.resources.files("grpc_tools") / "_proto"  # google/protobuf/*.proto
    args = ["protoc", f"-I{tmp_path}", f"-I{well_known}", f"--python_out={tmp_path}"]
    args += [f"--grpc_python_out={tmp_path}", "greeter_reg.proto"]
    assert protoc.main(args) == 0, source
    sys.path.insert(0, str(tmp_path))
    try:
        pb2 = importlib.import_module("greeter_reg_pb2")
        pb2_grpc = importlib.import_module("greeter_reg_pb2_grpc")
    finally:
        sys.path.remove(str(tmp_path))
    async with grpc.aio.insecure_channel(gen_server.address) as channel:
        stub = pb2_grpc.GreeterStub(channel)
        reply = await stub.SayHello(pb2.HelloRequest(name="stub"))
        assert reply.msg == "Hello stub"
        # the registry does not say which side streams: the file declares both, and the
        # server reads any request as a stream, so the stub's one request is enough
        replies = [r.msg async for r in stub.Count(iter([pb2.CountRequest(to=2)]))]
        assert replies == ["#0", "#1"]
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.Fail(_struct({"kind": "missing"}))
        assert failed.value.code() == grpc.StatusCode.NOT_FOUND
    # micro's own client still speaks JSON to the same endpoint
    client = RpcClient(registry=registry, from_service="caller")
    try:
        got = await client.call("gen.greeter", "Greeter.SayHello", {"name": "json"})
        assert got == {"msg": "Hello json"}
    finally:
        await client.close()


def _objects(text: str) -> list[dict[str, str]]:
    """The JSON objects grpcurl printed one after the other."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while (at := len(text) - len(text[at:].lstrip())) < len(text):
        value, at = decoder.raw_decode(text, at)
        found.append(value)
    return found


def _struct(value: dict[str, str]) -> object:
    from google.protobuf import struct_pb2

    message = struct_pb2.Struct()
    message.update(value)
    return message
