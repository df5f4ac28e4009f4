"""ProxyRegistry keeps the registry contract (micro.testing.registry) against a real proxy
over a memory registry only the proxy sees; a watch whose proxy goes away says so."""

from __future__ import annotations

import asyncio

import pytest

from micro.errors import RegistryError, ServiceNotFound, Unauthorized
from micro.registry import Node, Service, Watcher
from micro.registry.proxy import ProxyRegistry
from micro.testing.registry import CHECKS
from tests.proxy.conftest import TOKEN, Remote

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("check", list(CHECKS))
async def test_registry_contract(proxy: str, check: str) -> None:
    await CHECKS[check](lambda: ProxyRegistry(proxy_address=proxy), 5.0)


async def test_it_lists_and_gets_what_the_remote_registry_holds(remote: Remote, proxy: str) -> None:
    async with ProxyRegistry(proxy_address=proxy) as registry:
        names = {s.name for s in await registry.list_services()}
        assert {"greeter", "failing", "headers"} <= names
        (greeter,) = await registry.get_service("greeter")
        assert {e.name for e in greeter.endpoints} >= {"Greeter.SayHello", "Counter.Count"}
        assert greeter.nodes == (await remote.registry.get_service("greeter"))[0].nodes
        with pytest.raises(ServiceNotFound):
            await registry.get_service("nobody")
        with pytest.raises(ServiceNotFound):
            await registry.get_service("")


async def test_register_with_a_ttl_goes_to_the_remote_registry(remote: Remote, proxy: str) -> None:
    svc = Service("laptop-svc", "1.0.0", nodes=[Node("laptop-1", "127.0.0.1:9")])
    async with ProxyRegistry(proxy_address=proxy) as registry:
        await registry.register(svc, ttl=0.5)
        assert (await remote.registry.get_service("laptop-svc"))[0].nodes == svc.nodes
        await asyncio.sleep(0.8)
        with pytest.raises(ServiceNotFound):
            await remote.registry.get_service("laptop-svc")


async def test_a_watch_ends_with_an_error_when_the_proxy_goes(remote: Remote, proxy: str) -> None:
    registry = ProxyRegistry(proxy_address=proxy)
    watch = registry.watch()
    try:
        await asyncio.sleep(0.2)
        await remote.stop_proxy()
        with pytest.raises(RegistryError, match="ended"):
            await asyncio.wait_for(_drain(watch), 5)
    finally:
        await watch.aclose()
        await registry.close()


async def test_every_route_needs_the_token(remote: Remote) -> None:
    address = await remote.start_proxy(token=TOKEN)
    anonymous = ProxyRegistry(proxy_address=address)
    trusted = ProxyRegistry(proxy_address=address, proxy_token=TOKEN)
    try:
        with pytest.raises(Unauthorized, match="requires a token"):
            await anonymous.list_services()
        with pytest.raises(Unauthorized):
            await anonymous.watch().__anext__()
        assert await trusted.get_service("greeter")
    finally:
        await anonymous.close()
        await trusted.close()


async def _drain(watch: Watcher) -> None:
    async for _ in watch:
        pass
