"""Service(server="grpc") and "mucp,grpc" in process; MICRO_SERVER=grpc services as processes
reached by ``micro call``/``micro stream``, probed for health while draining on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

import micro
from micro.registry.memory import MemoryRegistry
from micro.server import HandlerFunc, Request
from micro.settings import SettingsError
from tests.grpc.core.handlers import Greeter
from tests.toolkit.cli.conftest import (
    COUNTER,
    GREETER,
    SLOW,
    Spawn,
    base_env,
    micro_json,
    spawn,  # noqa: F401 (the fixture)
    unique,
    wait_registered,
)


async def test_service_serves_grpc_and_its_client_calls_it() -> None:
    registry = MemoryRegistry()
    service = micro.Service(
        "greeter", server="grpc", registry=registry, broker="memory", address="127.0.0.1:0"
    )
    service.handle(Greeter())
    async with service:
        (found,) = await registry.get_service("greeter")
        (node,) = found.nodes
        assert node.metadata["protocol"] == "grpc"
        assert {e.name for e in found.endpoints} >= {"Greeter.SayHello", "Greeter.Count"}
        rsp = await service.client.call("greeter", "Greeter.SayHello", {"name": "svc"})
        assert rsp == {"msg": "Hello svc"}
    assert await registry.list_services() == []


async def test_service_serves_both_protocols_and_registers_both_nodes() -> None:
    served: list[str] = []

    def spy(next: HandlerFunc) -> HandlerFunc:
        async def call(request: Request) -> Any:
            served.append(request.content_type)
            return await next(request)

        return call

    registry = MemoryRegistry()
    service = micro.Service(
        "greeter",
        server="mucp,grpc",
        registry=registry,
        broker="memory",
        address="127.0.0.1:0",
        wrappers=[spy],
    )
    service.handle(Greeter())
    async with service:
        (found,) = await registry.get_service("greeter")
        by_protocol = {n.metadata["protocol"]: n.address for n in found.nodes}
        assert sorted(by_protocol) == ["grpc", "mucp"]
        assert by_protocol["grpc"] != by_protocol["mucp"]
        for _ in range(20):
            await service.client.call("greeter", "Greeter.SayHello", {"name": "x"})
    assert await registry.list_services() == []
    assert set(served) == {"application/json", "application/grpc+json"}


def test_an_unknown_server_protocol_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="mucp, grpc"):
        micro.Service("greeter", server="http2").server  # noqa: B018


# -- processes --------------------------------------------------------------------------


def grpc_env(**extra: str) -> dict[str, str]:
    return base_env(MICRO_SERVER="grpc", **extra)


def test_micro_call_and_stream_reach_a_grpc_served_node(spawn: Spawn) -> None:  # noqa: F811
    env = grpc_env()
    greeter, counter = unique("greeter"), unique("counter")
    spawn(GREETER, greeter, env=env)
    spawn(COUNTER, counter, env=env)
    [svc] = wait_registered(greeter)
    wait_registered(counter)
    assert svc["nodes"][0]["metadata"]["protocol"] == "grpc"
    # the CLI runs with the default client: it picks gRPC from the node's metadata
    got = micro_json("call", greeter, "Greeter.SayHello", '{"name": "cli"}')
    assert got == {"msg": "Hello cli"}
    streamed = micro_json("stream", counter, "Counter.Count", '{"to": 3}')
    assert len(streamed) == 3
    # micro health calls each node by address: grpc:// picks the node's protocol
    [row] = micro_json("health", greeter)
    assert row["status"] == "ok", row


async def health_of(address: str) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        answer = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=2
        )
    return int(answer.status)


async def test_health_is_not_serving_while_draining_on_sigterm(spawn: Spawn) -> None:  # noqa: F811
    name = unique("slow")
    proc = spawn(SLOW, name, "--server_grace", "10s", env=grpc_env())
    [svc] = await asyncio.to_thread(wait_registered, name)
    address = svc["nodes"][0]["address"]
    assert await health_of(address) == health_pb2.HealthCheckResponse.SERVING
    async with grpc.aio.insecure_channel(address) as channel:
        sleep = channel.unary_unary(f"/{name.replace('-', '_')}.Sleeper/Sleep")
        slow = asyncio.ensure_future(sleep(b'{"seconds": 3}', timeout=10))
        await asyncio.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        status = health_pb2.HealthCheckResponse.SERVING
        while status == health_pb2.HealthCheckResponse.SERVING and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            status = await health_of(address)
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert json.loads(await slow) == {"slept": 3}  # the call in flight finished
    assert await asyncio.to_thread(proc.wait, 10) == 0
