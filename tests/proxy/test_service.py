"""A micro.Service on the laptop with only MICRO_PROXY_ADDRESS set registers, calls and
receives events through the proxy."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import micro
from micro.broker.proxy import ProxyBroker
from micro.client.proxy import ProxyClient
from micro.errors import ServiceNotFound
from micro.registry.proxy import ProxyRegistry
from tests.proxy.conftest import Remote

pytestmark = pytest.mark.integration


class Laptop:
    async def ping(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"pong": req.get("n")}


async def test_a_service_works_through_the_proxy(
    remote: Remote, proxy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MICRO_PROXY_ADDRESS", proxy)
    monkeypatch.setenv("MICRO_REGISTRY", "etcd")  # the remote engines: not reachable here
    monkeypatch.setenv("MICRO_BROKER", "nats")
    got: list[dict[str, Any]] = []
    arrived = asyncio.Event()
    service = micro.Service("laptop-svc", handle_signals=False, register_interval=60)
    service.handle(Laptop())

    @service.subscribe("remote.events", queue="laptop")
    async def on_event(event: dict[str, Any]) -> None:
        got.append(event)
        arrived.set()

    await service.start()
    try:
        assert isinstance(service.server.registry, ProxyRegistry)
        assert isinstance(service.broker, ProxyBroker)
        assert isinstance(service.client.proxy, ProxyClient)
        # registered in the remote registry, through the proxy
        (entry,) = await remote.registry.get_service("laptop-svc")
        assert {e.name for e in entry.endpoints} >= {"Laptop.Ping"}
        # its calls go through the proxy
        rsp = await service.client.call("greeter", "Greeter.SayHello", {"name": "S"})
        assert rsp == {"msg": "Hello S"}
        # the remote side reaches it (loopback here; on a real network, if routable)
        assert await remote.client.call("laptop-svc", "Laptop.Ping", {"n": 3}) == {"pong": 3}
        # events of the remote environment reach its subscriber, through the proxy
        await remote.client.publish("remote.events", {"n": 1})
        await asyncio.wait_for(arrived.wait(), 10)
        assert got == [{"n": 1}]
    finally:
        await service.stop()
    with pytest.raises(ServiceNotFound):  # deregistered through the proxy
        await remote.registry.get_service("laptop-svc")
