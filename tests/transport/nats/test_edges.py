"""The nats transport's own edges (the contract itself is in tests/contract)."""

from __future__ import annotations

import asyncio
import json

import nats
import pytest

from micro.errors import ConnectError, ConnectionClosed, MicroError, PayloadTooLarge
from micro.transport import Message, Socket, _nats_conn
from micro.transport.nats import NatsTransport
from tests.servers import nats_url

pytestmark = pytest.mark.integration


async def test_listen_refuses_a_fixed_port_and_a_wildcard() -> None:
    transport = NatsTransport(address=nats_url())
    try:
        with pytest.raises(ConnectError, match="NATS subject"):
            await transport.listen("127.0.0.1:8080", lambda sock: sock.close())
        with pytest.raises(ConnectError, match="not a NATS subject"):
            await transport.listen("nats://orders.>", lambda sock: sock.close())
    finally:
        await transport.close()


async def test_a_named_subject_is_the_address() -> None:
    transport = NatsTransport(address=nats_url())
    try:
        listener = await transport.listen("nats://microtest.named.node", lambda s: s.close())
        assert listener.address == "nats://microtest.named.node"
        sock = await transport.dial("microtest.named.node")  # with or without the scheme
        await sock.close()
        await listener.close()
    finally:
        await transport.close()


async def test_no_nats_server_is_a_connect_error() -> None:
    transport = NatsTransport(address="nats://127.0.0.1:1", connect_timeout=1.0)
    with pytest.raises(ConnectError, match="cannot connect to NATS"):
        await transport.dial("anything")
    await transport.close()


async def test_a_node_refuses_a_body_over_its_max_body() -> None:
    got: list[BaseException] = []

    async def handler(sock: Socket) -> None:
        try:
            await sock.recv()
        except ConnectionClosed as exc:
            got.append(exc)

    server = NatsTransport(address=nats_url(), max_body=1024 * 1024)
    client = NatsTransport(address=nats_url(), max_body=8 * 1024 * 1024)
    try:
        listener = await server.listen(":0", handler)
        sock = await client.dial(listener.address)
        with pytest.raises(PayloadTooLarge):  # the client's own limit, before sending
            await sock.send(Message({}, b"x" * (8 * 1024 * 1024 + 1)))
        await sock.send(Message({}, b"x" * (2 * 1024 * 1024)))
        answer = await asyncio.wait_for(sock.recv(), 5)
        error = MicroError.parse(answer.header["Micro-Error"])
        assert isinstance(error, PayloadTooLarge)
        assert "max_body" in error.detail
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(sock.recv(), 5)
        assert got
    finally:
        await server.close()
        await client.close()


async def test_an_idle_go_plugins_connection_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_nats_conn, "FOREIGN_IDLE", 0.3)
    ended: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    async def handler(sock: Socket) -> None:
        await sock.recv()
        try:
            await sock.recv()
        except ConnectionClosed as exc:
            ended.set_result(exc)

    transport = NatsTransport(address=nats_url())
    nc = await nats.connect(nats_url())
    try:
        listener = await transport.listen(":0", handler)
        body = json.dumps({"Header": {}, "Body": ""}).encode()
        subject = listener.address.removeprefix("nats://")
        await nc.publish(subject, body, reply=nc.new_inbox())  # a Go dialer: no headers
        error = await asyncio.wait_for(ended, 5)
        assert "idle" in str(error)
    finally:
        await nc.close()
        await transport.close()


async def test_a_node_finds_its_caller_gone() -> None:
    ended: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    async def handler(sock: Socket) -> None:
        await sock.recv()
        sock.busy = True  # serving a stream that waits for the caller
        try:
            await sock.recv()
        except ConnectionClosed as exc:
            ended.set_result(exc)

    server = NatsTransport(address=nats_url(), ping_interval=0.3)
    # other credentials, so a connection of its own (the shared test server takes any)
    caller = NatsTransport(address=nats_url(), username="caller", password="-")
    try:
        listener = await server.listen(":0", handler)
        sock = await caller.dial(listener.address)
        assert caller._inboxes.nc is not server._inboxes.nc  # type: ignore[union-attr]
        await sock.send(Message({}, b"open a stream"))
        await caller._inboxes.nc.close()  # type: ignore[union-attr]  # dies: no close sent
        error = await asyncio.wait_for(ended, 5)
        assert "caller" in str(error)
        assert "went away" in str(error)
    finally:
        await server.close()
        await caller.close()


async def test_two_waiting_recvs_each_take_one_message() -> None:
    async def handler(sock: Socket) -> None:
        first = await sock.recv()
        await sock.send(Message({"N": "1"}, first.body))
        await sock.send(Message({"N": "2"}, first.body))
        await sock.recv()  # until the caller closes

    transport = NatsTransport(address=nats_url())
    try:
        listener = await transport.listen(":0", handler)
        sock = await transport.dial(listener.address)
        waiting = [asyncio.ensure_future(sock.recv()) for _ in range(2)]
        await asyncio.sleep(0)  # both wait before anything arrives
        await sock.send(Message({}, b"go"))
        got = await asyncio.wait_for(asyncio.gather(*waiting), 5)
        assert sorted(m.header["N"] for m in got) == ["1", "2"]
        await sock.close()
        with pytest.raises(ConnectionClosed):
            await sock.recv()
    finally:
        await transport.close()
