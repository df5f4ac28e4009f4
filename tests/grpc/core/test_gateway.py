"""The API gateway's ``grpc`` resolver in front of a gRPC-served service: an HTTP POST to
``/<package>.<Handler>/<Method>`` reaches the node over gRPC (the client picks the node's
protocol), and a service error keeps its code."""

from __future__ import annotations

import httpx

from micro.client.rpc import RpcClient
from micro.grpc.server import GrpcServer
from micro.registry.memory import MemoryRegistry
from micro.toolkit.api import ApiOptions, Gateway


async def test_the_grpc_resolver_routes_to_a_grpc_node(
    json_server: GrpcServer, registry: MemoryRegistry
) -> None:
    client = RpcClient(registry=registry)
    gateway = Gateway(
        ApiOptions(resolver="grpc", handler="rpc", access_log=False),
        registry=registry,
        client=client,
    )
    await gateway.start()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=gateway), base_url="http://gateway"
        ) as http:
            rsp = await http.post("/greeter.Greeter/SayHello", json={"name": "web"})
            assert rsp.status_code == 200, rsp.text
            assert rsp.json() == {"msg": "Hello web"}
            missing = await http.post("/greeter.Greeter/Fail", json={"kind": "missing"})
            assert missing.status_code == 404
            assert missing.json()["detail"] == "no such greeting"
    finally:
        await gateway.close()
        await client.close()
    stats = await json_server.debug.stats()
    assert (stats.requests, stats.errors) == (2, 1)  # both went to the gRPC node
