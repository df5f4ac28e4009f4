"""Registration: the node, the endpoints with their schemas, TTL renewal, deregistration."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncGenerator

import pytest

from micro.errors import ConnectError, RegistryError, ServiceNotFound
from micro.registry import Registry, Service, Value
from micro.registry.memory import MemoryRegistry
from micro.server import _addr
from micro.server._addr import advertise_address, private_ipv4
from micro.server.rpc import RpcServer
from micro.testing import eventually
from micro.transport import Handler, Listener, Transport
from micro.transport.memory import MemoryTransport
from tests.server.conftest import SERVICE, MakeServer
from tests.server.handlers import Say


class CountingRegistry(MemoryRegistry):
    """Counts registrations; fails the ones listed in ``fail`` (by call number)."""

    def __init__(self, fail: set[int] | None = None) -> None:
        super().__init__()
        self.calls = 0
        self.fail = fail or set()

    async def register(self, service: Service, *, ttl: float | None = None) -> None:
        self.calls += 1
        if self.calls in self.fail:
            raise RegistryError("registry down", id="go.micro.registry")
        await super().register(service, ttl=ttl)


async def registered(registry: Registry) -> Service:
    (service,) = await registry.get_service(SERVICE)
    return service


@pytest.mark.parametrize(  # a host:port address (nats and rabbitmq nodes have names)
    "transport", ["memory", "http", "tcp"], indirect=True
)
async def test_node_and_metadata(
    make_server: MakeServer, registry: MemoryRegistry, transport: Transport
) -> None:
    server = await make_server(Say(), version="1.2.3", metadata={"zone": "a"}, id="node-1")
    service = await registered(registry)
    assert (service.name, service.version) == (SERVICE, "1.2.3")
    (node,) = service.nodes
    assert node.id == "node-1"
    assert node.address == server.advertised == server.address
    assert node.address.startswith("127.0.0.1:")
    assert node.metadata == {
        "transport": transport.name,
        "broker": "http",
        "server": "mucp",
        "registry": "memory",
        "protocol": "mucp",
        "zone": "a",
    }


async def test_default_id_and_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICRO_SERVER_NAME", "from.env")
    server = RpcServer(transport=MemoryTransport(), registry=MemoryRegistry())
    assert server.service_name == "from.env"
    prefix, _, rest = server.id.partition("-")
    assert prefix == "from.env"
    assert uuid.UUID(rest)


async def test_endpoints_sorted_with_value_trees_and_schemas(
    make_server: MakeServer, registry: MemoryRegistry
) -> None:
    server = await make_server(Say(), start=False)
    server.handle(_Extra(), name="Extra", metadata={"Extra.Get": {"path": "/extra"}})
    await server.start()
    endpoints = (await registered(registry)).endpoints
    names = [e.name for e in endpoints]
    assert names == sorted(names)
    assert not any(n.startswith("Debug.") for n in names)
    assert {"Say.Hello", "Say.Stream", "Say.Count", "Extra.Get"} <= set(names)
    hello = next(e for e in endpoints if e.name == "Say.Hello")
    field = Value(name="name", type="string")
    assert hello.request == Value(name="HelloRequest", type="HelloRequest", values=[field])
    assert hello.response == Value(
        name="HelloResponse", type="HelloResponse", values=[Value(name="msg", type="string")]
    )
    assert hello.metadata["stream"] == "false"
    schema = json.loads(hello.metadata["request_schema"])
    definition = schema["$defs"]["HelloRequest"]
    assert definition["properties"] == {"name": {"type": "string"}}
    assert definition["required"] == ["name"]
    assert "msg" in json.dumps(json.loads(hello.metadata["response_schema"]))
    by_name = {e.name: e for e in endpoints}
    assert by_name["Say.Count"].metadata["stream"] == "true"
    assert by_name["Say.Stream"].metadata["stream"] == "true"
    assert by_name["Say.Stream"].request is not None
    assert by_name["Say.Stream"].request.type == "HelloRequest"
    assert by_name["Extra.Get"].metadata["path"] == "/extra"
    assert by_name["Say.Whoami"].request is None
    assert "request_schema" not in by_name["Say.Whoami"].metadata
    assert by_name["Say.AnonymousError"].response is None
    assert server.endpoints() == endpoints


class _Extra:
    async def get(self) -> str:
        return "extra"


async def test_ttl_is_renewed_on_the_interval(transport: Transport) -> None:
    registry = CountingRegistry()
    server = RpcServer(
        name=SERVICE,
        address="127.0.0.1:0",
        transport=transport,
        registry=registry,
        register_ttl=0.3,
        register_interval=0.1,
    )
    server.handle(Say())
    await server.start()
    try:
        await asyncio.sleep(0.7)
        assert registry.calls >= 4
        assert (await registered(registry)).nodes  # alive well past one TTL
    finally:
        await server.stop()
    with pytest.raises(ServiceNotFound):
        await registry.get_service(SERVICE)


async def test_a_failing_registry_is_retried_and_never_crashes(
    transport: Transport, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CountingRegistry(fail={2, 3})
    server = RpcServer(
        name=SERVICE,
        address="127.0.0.1:0",
        transport=transport,
        registry=registry,
        register_interval=0.05,
    )
    server.handle(Say())
    with caplog.at_level(logging.WARNING, logger="micro.server"):
        await server.start()
        try:
            for _ in range(100):
                if registry.calls >= 5:
                    break
                await asyncio.sleep(0.02)
            assert registry.calls >= 5
            assert server._keeper is not None
            assert not server._keeper.done()
        finally:
            await server.stop()
    assert any("registry down" in r.getMessage() for r in caplog.records)


async def test_deregistered_on_stop(make_server: MakeServer, registry: MemoryRegistry) -> None:
    server = await make_server(Say())
    assert await registered(registry)
    await server.stop()
    with pytest.raises(ServiceNotFound):
        await registry.get_service(SERVICE)


async def test_failed_first_registration_fails_start_and_unbinds(transport: Transport) -> None:
    server = RpcServer(
        name=SERVICE, address="127.0.0.1:0", transport=transport, registry=CountingRegistry({1})
    )
    server.handle(Say())
    listeners: list[Listener] = []
    listen = transport.listen

    async def recording(address: str, handler: Handler) -> Listener:
        listeners.append(await listen(address, handler))
        return listeners[-1]

    transport.listen = recording  # type: ignore[method-assign]
    with pytest.raises(RegistryError):
        await server.start()
    (listener,) = listeners
    with pytest.raises(ConnectError):
        await transport.dial(listener.address)
    await server.stop()  # still fine


def test_advertise_address_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    assert advertise_address("127.0.0.1:80") == "127.0.0.1:80"
    assert advertise_address("[::1]:80") == "[::1]:80"
    assert advertise_address("0.0.0.0:80", "10.0.0.9") == "10.0.0.9:80"
    assert advertise_address("0.0.0.0:80", "svc.example:9000") == "svc.example:9000"
    pinned = (" 127.0.0.5 ", "127.0.0.6")
    assert advertise_address("0.0.0.0:81", "", pinned) == "127.0.0.5:81"
    assert advertise_address(":82", "", pinned) == "127.0.0.5:82"
    monkeypatch.setattr(_addr, "private_ipv4", lambda: "192.168.1.7")
    assert advertise_address("[::]:83") == "192.168.1.7:83"


def test_private_ipv4_prefers_private_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    import ipaddress

    def fake(*ips: str) -> None:
        found = [ipaddress.IPv4Address(ip) for ip in ips]
        monkeypatch.setattr(_addr, "_interface_ipv4s", lambda: found)

    fake("127.0.0.1", "169.254.0.3", "8.8.4.4", "10.1.2.3")
    assert private_ipv4() == "10.1.2.3"
    fake("127.0.0.1", "8.8.4.4")
    assert private_ipv4() == "8.8.4.4"
    fake("127.0.0.1")
    assert private_ipv4() == "127.0.0.1"


async def test_backends_from_env_are_owned_unless_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICRO_TRANSPORT", "memory")
    monkeypatch.setenv("MICRO_REGISTRY", "memory")
    server = RpcServer(name=SERVICE, address="127.0.0.1:0")
    assert server.transport.name == "memory"
    assert server.registry.name == "memory"
    server.handle(Say())
    await server.start()
    assert (await server.registry.get_service(SERVICE))[0].nodes
    await server.stop()
    assert not server._owned  # the shared memory backends stay open for others
    monkeypatch.setenv("MICRO_TRANSPORT", "http")
    owning = RpcServer(name=SERVICE, address="127.0.0.1:0")
    assert [type(b).__name__ for b in owning._owned] == ["HttpTransport"]
    await owning.stop()


class LosingRegistry(CountingRegistry):
    """A registry that says "registration lost" whenever the test puts into ``losses``."""

    def __init__(self) -> None:
        super().__init__()
        self.losses: asyncio.Queue[Exception | None] = asyncio.Queue()
        self.listening = False

    async def lost(self, service: Service) -> AsyncGenerator[None, None]:
        assert service.name == SERVICE
        self.listening = True
        try:
            while (loss := await self.losses.get()) is None:
                yield None
            raise loss
        finally:
            self.listening = False


def _losing_server(transport: Transport, registry: Registry) -> RpcServer:
    server = RpcServer(
        name=SERVICE,
        address="127.0.0.1:0",
        transport=transport,
        registry=registry,
        register_interval=3600,  # only the registry's signal can bring a re-registration
    )
    server.handle(Say())
    return server


async def test_a_lost_registration_is_registered_again_at_once(transport: Transport) -> None:
    registry = LosingRegistry()
    server = _losing_server(transport, registry)
    await server.start()
    try:
        assert registry.calls == 1
        await eventually(lambda: registry.listening)
        await registry.deregister(server.service())  # the registry lost it behind our back
        registry.losses.put_nowait(None)
        await eventually(lambda: registry.calls == 2)
        assert (await registered(registry)).nodes[0].id == server.id
        registry.losses.put_nowait(None)
        await eventually(lambda: registry.calls == 3)
    finally:
        await server.stop()
    assert not registry.listening  # stop ends the listening


async def test_a_broken_loss_signal_leaves_the_interval_running(
    transport: Transport, caplog: pytest.LogCaptureFixture
) -> None:
    registry = LosingRegistry()
    server = _losing_server(transport, registry)
    with caplog.at_level(logging.WARNING, logger="micro.server"):
        await server.start()
        try:
            await eventually(lambda: registry.listening)
            registry.losses.put_nowait(RuntimeError("backend bug"))
            await eventually(lambda: not registry.listening)
            assert server._keeper is not None
            assert not server._keeper.done()
        finally:
            await server.stop()
    assert any("backend bug" in r.getMessage() for r in caplog.records)
