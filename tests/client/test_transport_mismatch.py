"""A node whose ``transport`` metadata names another transport is passed over for one that
speaks this client's; with none, the call is refused with one clear, unretried error, for calls
and streams alike; a node without the metadata is dialed as it is."""

from __future__ import annotations

import pytest

from micro.client.rpc import RpcClient
from micro.errors import TransportMismatch
from micro.registry import Node, Service
from micro.registry.memory import MemoryRegistry
from tests.client.fakes import FakeServer, RecordingTransport


async def test_a_node_on_another_transport_is_refused_naming_both(
    client: RpcClient, registry: MemoryRegistry, transport: RecordingTransport
) -> None:
    node = Node(id="greeter-1", address="greeter-subject", metadata={"transport": "nats"})
    await registry.register(Service(name="greeter", version="1", nodes=[node]))
    with pytest.raises(TransportMismatch) as raised:
        await client.call("greeter", "Greeter.SayHello", {"name": "John"}, retries=3)
    detail = raised.value.detail
    assert "greeter-1" in detail
    assert "nats" in detail
    assert transport.name in detail
    assert "MICRO_TRANSPORT=nats" in detail
    assert raised.value.code == 502
    assert transport.dialed == []  # refused before dialing, and not retried
    with pytest.raises(TransportMismatch):
        await client.stream("greeter", "Greeter.Stream", {"name": "John"})
    assert transport.dialed == []


async def test_a_node_on_this_transport_or_without_the_metadata_is_called(
    client: RpcClient,
    server: FakeServer,
    registry: MemoryRegistry,
    transport: RecordingTransport,
) -> None:
    assert server.node is not None
    assert "transport" not in server.node.metadata
    await client.call(server.name, "Test.Echo", {"x": 1})
    same = Node(id="same-1", address=server.address, metadata={"transport": transport.name})
    await registry.register(Service(name="same", version="1", nodes=[same]))
    await client.call("same", "Test.Echo", {"x": 1}, retries=0)
    assert transport.dialed  # both reached the server


async def test_a_mixed_fleet_is_called_on_the_nodes_that_speak_this_transport(
    client: RpcClient,
    server: FakeServer,
    registry: MemoryRegistry,
    transport: RecordingTransport,
) -> None:
    """Two nodes of one service, one on another transport: every call goes to the one this
    client speaks, and none fails."""
    ours = Node(id="mixed-ours", address=server.address, metadata={"transport": transport.name})
    theirs = Node(id="mixed-nats", address="a-subject", metadata={"transport": "nats"})
    await registry.register(Service(name="mixed", version="1", nodes=[theirs, ours]))
    for _ in range(10):  # the selector offers both in turn; without retries none may fail
        assert await client.call("mixed", "Test.Echo", {"x": 1}, retries=0) == {"x": 1}
    # (with no node on this transport the call is refused: the first test here)
