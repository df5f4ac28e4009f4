"""One setting sends everything through the proxy: plugins pick the proxy backends when
``proxy_address`` is set, RpcClient hands its calls to a ProxyClient, and a proxy that is
not there fails each path at once with the same one-line error."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from micro import plugins
from micro.broker import BrokerError
from micro.broker.proxy import ProxyBroker
from micro.client import CallFunc, CallOptions, Request
from micro.client.proxy import ProxyClient
from micro.client.rpc import RpcClient
from micro.errors import ConnectError, RegistryError
from micro.registry import Node
from micro.registry.memory import MemoryRegistry
from micro.registry.proxy import ProxyRegistry
from micro.settings import BACKEND_GROUPS, SERVICE_GROUPS, load
from micro.transport import Message


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_proxy_address_picks_the_proxy_backends_over_the_named_ones() -> None:
    env = {
        "MICRO_PROXY_ADDRESS": "10.1.2.3:8081",
        "MICRO_PROXY_TOKEN": "t",
        "MICRO_REGISTRY": "etcd",
        "MICRO_REGISTRY_ADDRESS": "10.9.9.9:2379",
        "MICRO_BROKER": "nats",
        "MICRO_BROKER_ADDRESS": "10.9.9.9:4222",
    }
    s = load(groups=SERVICE_GROUPS, environ=env)
    registry = plugins.create("registry", settings=s)
    broker = plugins.create_broker(settings=s, address="127.0.0.1:0")
    assert isinstance(registry, ProxyRegistry)
    assert isinstance(broker, ProxyBroker)
    # the proxy's address wins over the remote engines' (unreachable from here)
    assert registry.url == broker.address == "http://10.1.2.3:8081"
    assert registry.link.token == broker.link.token == "t"


def test_without_proxy_address_nothing_changes() -> None:
    s = load(groups=SERVICE_GROUPS, environ={"MICRO_REGISTRY": "memory"})
    assert isinstance(plugins.create("registry", settings=s), MemoryRegistry)
    assert RpcClient(settings=s).proxy is None


def test_proxy_chosen_by_name_takes_the_backend_address() -> None:
    env = {
        "MICRO_REGISTRY": "proxy",
        "MICRO_REGISTRY_ADDRESS": "https://proxy.example:8443",
        "MICRO_BROKER": "proxy",
        "MICRO_BROKER_ADDRESS": "proxy.example:8081",
    }
    s = load(groups=SERVICE_GROUPS, environ=env)
    registry = plugins.create("registry", settings=s)
    broker = plugins.create_broker(settings=s)
    assert isinstance(registry, ProxyRegistry)
    assert registry.url == "https://proxy.example:8443"
    assert isinstance(broker, ProxyBroker)
    assert broker.address == "http://proxy.example:8081"


def test_a_registry_named_in_code_still_wins() -> None:
    s = load(
        groups=SERVICE_GROUPS,
        environ={"MICRO_PROXY_ADDRESS": "10.1.2.3:8081"},
        code={"registry": "memory"},
    )
    assert isinstance(plugins.create("registry", settings=s), MemoryRegistry)
    assert isinstance(plugins.create_broker(settings=s), ProxyBroker)


def test_settings_without_the_remote_group_are_fine() -> None:
    s = load(groups=("registry", "broker", "client", "transport", "selector"), environ={})
    assert "proxy_address" not in s
    assert not isinstance(plugins.create("registry", "memory", settings=s), ProxyRegistry)
    assert RpcClient(settings=s).proxy is None


def test_rpc_client_goes_through_a_proxy_from_settings_or_code() -> None:
    s = load(
        groups=BACKEND_GROUPS,
        environ={"MICRO_PROXY_ADDRESS": "10.1.2.3:8081", "MICRO_CLIENT_REQUEST_TIMEOUT": "3s"},
    )
    client = RpcClient(settings=s, retries=0)
    assert isinstance(client.proxy, ProxyClient)
    assert client.proxy.url == "http://10.1.2.3:8081"
    assert (client.proxy.timeout, client.proxy.retries) == (3.0, 0)
    by_code = RpcClient(proxy="https://proxy.example:8443", settings=load(environ={}))
    assert by_code.proxy is not None
    assert by_code.proxy.url == "https://proxy.example:8443"
    assert "proxy.example" in repr(by_code)


def test_a_bad_proxy_address_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="has no port"):
        RpcClient(proxy="proxy.example", settings=load(environ={}))
    with pytest.raises(ValueError, match="needs the proxy's address"):
        ProxyRegistry()


async def test_an_unreachable_proxy_fails_every_path_fast_with_one_line() -> None:
    address = f"127.0.0.1:{_free_port()}"
    prefix = f"cannot reach the proxy at http://{address}: "
    started = time.monotonic()
    async with RpcClient(proxy=address, settings=load(environ={})) as client:
        with pytest.raises(ConnectError) as call:
            await client.call("greeter", "Greeter.Hello", {})
        with pytest.raises(ConnectError) as stream:
            await client.stream("greeter", "Greeter.Stream", {}).open()
        with pytest.raises(BrokerError) as publish:
            await client.publish("events", {"n": 1})
    registry = ProxyRegistry(proxy_address=address)
    with pytest.raises(RegistryError) as listing:
        await registry.list_services()
    watch = registry.watch()
    with pytest.raises(RegistryError) as watching:
        await watch.__anext__()
    await registry.close()
    broker = ProxyBroker(proxy_address=address)
    with pytest.raises(BrokerError) as connect:
        await broker.connect()
    await broker.disconnect()
    assert time.monotonic() - started < 3
    for caught in (call, stream, publish, listing, watching, connect):
        assert caught.value.detail.startswith(prefix), caught.value.detail
        assert isinstance(caught.value, ConnectError)  # also the interface's own class


async def test_the_broker_refuses_use_before_connect() -> None:
    broker = ProxyBroker(proxy_address="127.0.0.1:1")
    with pytest.raises(BrokerError, match="not connected"):
        await broker.publish("t", Message({}, b""))


async def test_calls_are_retried_only_when_they_never_left() -> None:
    """A refused connection is tried again (retries=2: three attempts through the wrapper,
    each seeing the proxy as its node); the error stays the connect error."""
    address = f"127.0.0.1:{_free_port()}"
    attempts: list[str] = []

    def count(next_call: CallFunc) -> CallFunc:
        async def wrapped(node: Node, req: Request, opts: CallOptions) -> Any:
            attempts.append(node.address)
            return await next_call(node, req, opts)

        return wrapped

    client = ProxyClient(address, retries=2, wrappers=[count], backoff=lambda n: 0.0)
    try:
        with pytest.raises(ConnectError, match="cannot reach the proxy"):
            await client.call("greeter", "Greeter.Hello", {})
    finally:
        await client.close()
    assert attempts == [address] * 3
