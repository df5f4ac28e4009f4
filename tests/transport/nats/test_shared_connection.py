"""A service whose registry, broker and transport all use one NATS holds one connection.

Counted by the server itself: a private nats-server with its monitoring port, whose
``/connz`` lists the client connections.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

import micro
from micro.broker.nats import NatsBroker
from micro.registry.nats import NatsRegistry
from micro.transport.nats import NatsTransport
from tests.broker.helpers import PrivateNats, free_port

pytestmark = pytest.mark.integration


class MonitoredNats(PrivateNats):
    """A private nats-server that also serves its monitoring endpoints."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.monitor_port = free_port()

    def command(self) -> list[str]:
        return [*super().command(), "-m", str(self.monitor_port)]

    async def connections(self) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.monitor_port}/connz"
        async with httpx.AsyncClient() as http:
            rsp = await http.get(url, timeout=5)
        rsp.raise_for_status()
        return list(rsp.json().get("connections") or [])

    async def settle_at(self, count: int) -> list[dict[str, Any]]:
        """The connections once there are ``count`` of them (the server lists a closed one
        a moment longer)."""
        for _ in range(100):
            conns = await self.connections()
            if len(conns) == count:
                return conns
            await asyncio.sleep(0.05)
        raise AssertionError(f"{len(conns)} connections, not {count}: {conns}")


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[MonitoredNats]:
    async with MonitoredNats(tmp_path) as server:
        yield server


class Hello(msgspec.Struct):
    name: str


class Greeter:
    async def say_hello(self, req: Hello) -> Hello:
        return Hello(name=f"hello {req.name}")


def nats_service(url: str, prefix: str, monkeypatch: pytest.MonkeyPatch) -> micro.Service:
    """A service configured as a user would: NATS for all three, by settings."""
    for kind in ("registry", "broker", "transport"):
        monkeypatch.setenv(f"MICRO_{kind.upper()}", "nats")
        monkeypatch.setenv(f"MICRO_{kind.upper()}_ADDRESS", url)
    monkeypatch.setenv("MICRO_REGISTRY_PREFIX", prefix)
    return micro.Service("shared", address=":0", handle_signals=False)


async def test_registry_broker_and_transport_share_one_connection(
    nats_server: MonitoredNats, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = nats_server.url
    prefix = f"microtest.{uuid.uuid4().hex[:10]}"
    service = nats_service(url, prefix, monkeypatch)
    service.handle(Greeter())
    got: asyncio.Queue[Hello] = asyncio.Queue()

    @service.subscribe("shared.events")
    async def on_event(event: Hello) -> None:
        await got.put(event)

    await service.start()
    try:
        assert len(await nats_server.settle_at(1)) == 1
        # all three work over it: a lookup, a call, a publish and its delivery
        reply = await service.client.call(
            "shared", "Greeter.SayHello", Hello("ann"), response_type=Hello
        )
        assert reply.name == "hello ann"
        await service.client.publish("shared.events", Hello("evt"))
        assert (await asyncio.wait_for(got.get(), 5)).name == "evt"
        assert len(await nats_server.settle_at(1)) == 1
    finally:
        await service.stop()
    assert await nats_server.settle_at(0) == []  # the last user closed it


async def test_other_servers_or_credentials_get_a_connection_of_their_own(
    nats_server: MonitoredNats,
) -> None:
    url = nats_server.url
    plain = NatsTransport(address=url)
    other = NatsTransport(address=url, token="someone-else")  # the server takes any token
    registry = NatsRegistry(address=url, prefix=f"microtest.{uuid.uuid4().hex[:10]}")
    try:
        await plain.listen(":0", _ignore)
        await other.listen(":0", _ignore)
        await registry.start()
        names = sorted(c.get("name", "") for c in await nats_server.settle_at(2))
        assert names == ["micro-transport", "micro-transport"]  # the registry joined one
    finally:
        await registry.close()
        await plain.close()
        await other.close()
    await nats_server.settle_at(0)


async def test_a_user_that_lets_go_leaves_the_others_working(
    nats_server: MonitoredNats, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = nats_server.url
    prefix = f"microtest.{uuid.uuid4().hex[:10]}"
    service = nats_service(url, prefix, monkeypatch)
    service.handle(Greeter())
    await service.start()
    try:
        registry = NatsRegistry(address=url, prefix=prefix)
        await registry.start()  # a second registry in the process: joins the connection
        assert [s.name for s in await registry.get_service("shared")] == ["shared"]
        await registry.close()  # unsubscribes only its own subjects
        assert len(await nats_server.settle_at(1)) == 1
        reply = await service.client.call(
            "shared", "Greeter.SayHello", Hello("bo"), response_type=Hello
        )
        assert reply.name == "hello bo"
    finally:
        await service.stop()
    await nats_server.settle_at(0)


async def test_every_user_hears_of_a_restart(
    nats_server: MonitoredNats, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A NATS restart under a shared connection: the transport's open sockets fail at once,
    and once it is back the registry re-announces, so a caller elsewhere finds the node."""
    url = nats_server.url
    prefix = f"microtest.{uuid.uuid4().hex[:10]}"
    service = nats_service(url, prefix, monkeypatch)
    service.handle(Greeter())
    await service.start()
    # the caller on a connection of its own (other credentials)
    caller_registry = NatsRegistry(address=url, prefix=prefix, token="caller")
    caller_transport = NatsTransport(address=url, token="caller")
    caller = micro.Client(registry=caller_registry, transport=caller_transport)
    try:
        assert (await caller.call("shared", "Greeter.SayHello", Hello("1"))) == {"name": "hello 1"}
        nats_server.kill()
        await nats_server.start()  # same port: both connections come back by themselves
        for _ in range(100):  # until the caller's cache and the reconnects catch up
            try:
                reply = await caller.call("shared", "Greeter.SayHello", Hello("2"), timeout=1)
                break
            except micro.errors.MicroError:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("the service was not reachable after the restart")
        assert reply == {"name": "hello 2"}
        assert len(await nats_server.settle_at(2)) == 2
    finally:
        await caller.close()
        await caller_registry.close()
        await caller_transport.close()
        await service.stop()
    await nats_server.settle_at(0)


async def _ignore(sock: object) -> None:
    return None


async def test_users_connecting_at_once_share_the_first_connect(
    nats_server: MonitoredNats,
) -> None:
    url = nats_server.url
    transport = NatsTransport(address=url)
    registry = NatsRegistry(address=url, prefix=f"microtest.{uuid.uuid4().hex[:10]}")
    broker = NatsBroker(address=url)
    try:
        await asyncio.gather(transport.listen(":0", _ignore), registry.start(), broker.connect())
        assert len(await nats_server.settle_at(1)) == 1
    finally:
        await asyncio.gather(transport.close(), registry.close(), broker.disconnect())
    await nats_server.settle_at(0)


async def test_a_failed_first_connect_fails_every_user_waiting_on_it() -> None:
    url = f"nats://127.0.0.1:{free_port()}"  # nobody listens
    transport = NatsTransport(address=url, connect_timeout=0.5)
    broker = NatsBroker(address=url, connect_timeout=0.5)
    results = await asyncio.gather(
        transport.listen(":0", _ignore), broker.connect(), return_exceptions=True
    )
    assert isinstance(results[0], micro.errors.ConnectError)
    assert isinstance(results[1], micro.errors.BrokerError)
    # nothing half-open is kept: the next attempt tries again (and fails again)
    with pytest.raises(micro.errors.ConnectError, match="cannot connect to NATS"):
        await transport.listen(":0", _ignore)
