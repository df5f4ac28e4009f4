"""Reclaiming accepted connections: the idle timeout, the connection limit, and the client
side of both (a pooled connection the server closed is dialed again, never a failed call)."""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from micro.client.rpc import RpcClient
from micro.errors import ConnectionClosed
from micro.registry.memory import MemoryRegistry
from micro.server.rpc import RpcServer
from micro.transport import Message, Socket
from micro.transport._http_listener import MAX_CONNECTIONS, default_max_connections
from micro.transport.http import HttpListener, HttpServerSocket, HttpTransport
from tests.server.handlers import Say

from .conftest import Recorder, echo

SERVICE = "go.micro.srv.greeter"
IDLE = 0.2


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.005)


Raw = tuple[asyncio.StreamReader, asyncio.StreamWriter]
OpenRaw = Callable[[str], Awaitable[Raw]]


@pytest.fixture
async def open_raw() -> AsyncIterator[OpenRaw]:
    """Opens plain TCP connections; every one is closed at the end of the test."""
    writers: list[asyncio.StreamWriter] = []

    async def open_(address: str) -> Raw:
        host, port = address.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writers.append(writer)
        return reader, writer

    yield open_
    for writer in writers:
        writer.close()


def post(body: bytes) -> bytes:
    return b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Any]]:
    """Starts an RpcServer serving ``Say`` over an HttpTransport with the given options."""
    started: list[tuple[RpcServer, HttpTransport]] = []

    async def start(**options: Any) -> tuple[RpcServer, HttpListener]:
        transport = HttpTransport(**options)
        server = RpcServer(
            name=SERVICE,
            address="127.0.0.1:0",
            transport=transport,
            registry=MemoryRegistry(),
            register_interval=0,
        )
        server.handle(Say())
        await server.start()
        started.append((server, transport))
        listener = server._listener
        assert isinstance(listener, HttpListener)
        return server, listener

    yield start
    for server, transport in started:
        await server.stop(grace=0.5)
        await transport.close()


@pytest.fixture
async def client() -> AsyncIterator[RpcClient]:
    """A client whose pool keeps connections far longer than the servers here stay idle."""
    transport = HttpTransport()
    rpc = RpcClient(transport=transport, retries=0, pool_ttl=60)
    yield rpc
    await rpc.close()
    await transport.close()


async def hello(client: RpcClient, address: str, name: str) -> str:
    reply = await client.call(SERVICE, "Say.Hello", {"name": name}, address=address, timeout=5)
    return str(reply["msg"])


# --------------------------------------------------------------------------- idle timeout


async def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout(
    open_raw: OpenRaw,
) -> None:
    transport = HttpTransport(idle_timeout=IDLE)
    try:
        recorder = Recorder(reply=echo)
        listener = await transport.listen("127.0.0.1:0", recorder)
        loop = asyncio.get_running_loop()
        reader, _ = await open_raw(listener.address)
        opened = loop.time()
        async with asyncio.timeout(5):
            assert await reader.read() == b""  # closed by the server, nothing written
        assert loop.time() - opened >= IDLE
        await eventually(lambda: not listener.connections)
        assert recorder.messages == []
    finally:
        await transport.close()


async def test_a_kept_alive_connection_is_closed_when_idle_but_never_mid_request(
    open_raw: OpenRaw,
) -> None:
    transport = HttpTransport(idle_timeout=IDLE)
    gate = asyncio.Event()

    async def handler(sock: Socket) -> None:
        while True:
            message = await sock.recv()
            if message.body == b"slow":
                await gate.wait()  # busy for longer than the idle timeout
            await sock.send(message)

    try:
        listener = await transport.listen("127.0.0.1:0", handler)
        loop = asyncio.get_running_loop()
        reader, writer = await open_raw(listener.address)
        writer.write(post(b"slow"))
        await asyncio.sleep(IDLE * 3)
        gate.set()
        answered = await asyncio.wait_for(reader.readuntil(b"slow"), 5)
        assert answered.startswith(b"HTTP/1.1 200 OK\r\n")
        idle_from = loop.time()
        async with asyncio.timeout(5):
            assert await reader.read() == b""
        assert loop.time() - idle_from >= IDLE * 0.9  # timed from the answer, not the request
    finally:
        await transport.close()


async def test_a_busy_connection_is_not_idle(serve: Callable[..., Any]) -> None:
    """A quiet bidirectional stream outlives the idle timeout (the router marks it busy)."""
    server, _ = await serve(idle_timeout=IDLE)
    transport = HttpTransport()
    try:
        sock = await transport.dial(server.address)
        header = {"Micro-Service": SERVICE, "Micro-Endpoint": "Say.Echo", "Micro-Stream": "1"}
        header["Content-Type"] = "application/json"
        await sock.send(Message(header, b"{}"))
        await asyncio.sleep(IDLE * 3)  # neither side says anything
        assert not sock.closed
        await sock.send(Message(header, b'{"name": "still here"}'))
        reply = await asyncio.wait_for(sock.recv(), 5)
        assert reply.body == b'{"msg":"echo still here"}'
    finally:
        await transport.close()


async def test_the_client_redials_when_the_server_closed_its_pooled_connection(
    serve: Callable[..., Any], client: RpcClient
) -> None:
    server, listener = await serve(idle_timeout=IDLE)
    assert await hello(client, server.address, "a") == "Hello a"
    await eventually(lambda: not listener.connections)  # closed by the server, idle
    assert await hello(client, server.address, "b") == "Hello b"  # retries=0: no failure


async def test_the_client_redials_when_the_server_closes_just_as_it_reuses(
    serve: Callable[..., Any], client: RpcClient
) -> None:
    """The race: the server's idle close crosses the request on a pooled connection."""
    server, listener = await serve(idle_timeout=None)
    assert await hello(client, server.address, "a") == "Hello a"
    pooled = client._pool.take(server.address)
    assert pooled is not None
    client._pool.put(pooled)
    send = pooled.socket.send

    async def send_as_the_server_closes(message: Message) -> None:
        assert listener.close_idle() == 1  # the server's close is on its way, not yet seen
        await send(message)

    pooled.socket.send = send_as_the_server_closes  # type: ignore[method-assign]
    assert await hello(client, server.address, "b") == "Hello b"  # retries=0: no failure
    assert pooled.socket.closed


async def test_the_client_does_not_resend_a_request_that_was_partly_answered(
    raw_server: Callable[..., Any], client: RpcClient
) -> None:
    """A close after part of an answer means the server took the request: never resent."""
    requests: list[bytes] = []

    async def answer_once_then_half(reader: asyncio.StreamReader, writer: Any) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            requests.append(await reader.readexactly(length))
            body = b'{"msg":"Hello a"}'
            response = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            if len(requests) > 1:
                writer.write(response[:20])  # part of the head, then the connection drops
                await writer.drain()
                return
            writer.write(response)

    address = await raw_server(answer_once_then_half)
    assert await hello(client, address, "a") == "Hello a"
    with pytest.raises(ConnectionClosed):
        await hello(client, address, "b")
    assert len(requests) == 2


# --------------------------------------------------------------------------- connection limit


async def test_at_the_limit_idle_connections_make_room_for_valid_calls(
    serve: Callable[..., Any],
    client: RpcClient,
    open_raw: OpenRaw,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="micro.transport.http")
    server, listener = await serve(max_connections=50)
    held: list[int] = []
    attach = listener._attach

    def counting_attach(conn: HttpServerSocket) -> None:
        attach(conn)
        held.append(len(listener._connections))

    listener._attach = counting_attach
    raw = [await open_raw(server.address) for _ in range(80)]
    await eventually(lambda: len(held) == 80)
    assert await hello(client, server.address, "valid") == "Hello valid"
    # room was made for 30 raw connections and the client's: 31 idle ones closed
    await eventually(lambda: sum(reader.at_eof() for reader, _ in raw) == 31)
    assert max(held) == 50
    warnings = [r for r in caplog.records if r.name == "micro.transport.http"]
    assert len(warnings) == 1
    assert "50 connections" in warnings[0].getMessage()


async def test_at_the_limit_with_every_connection_busy_a_new_one_waits_its_turn(
    open_raw: OpenRaw, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="micro.transport.http")
    transport = HttpTransport(max_connections=2)
    gate = asyncio.Event()

    async def handler(sock: Socket) -> None:
        while True:
            message = await sock.recv()
            if message.body == b"work":
                await gate.wait()
            await sock.send(message)

    try:
        listener = await transport.listen("127.0.0.1:0", handler)
        held = [await open_raw(listener.address) for _ in range(2)]
        for _, writer in held:
            writer.write(post(b"work"))
        await eventually(lambda: len(listener.connections) == 2)
        await eventually(lambda: not any(conn.idle for conn in listener.connections))
        reader, writer = await open_raw(listener.address)  # waits in the listen backlog
        writer.write(post(b"late"))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readuntil(b"late"), IDLE)
        assert len(listener.connections) == 2
        gate.set()  # both answer, then idle: the one idle longest makes room
        answered = await asyncio.wait_for(reader.readuntil(b"late"), 5)
        assert answered.startswith(b"HTTP/1.1 200 OK\r\n")
        for held_reader, _ in held:
            await asyncio.wait_for(held_reader.readuntil(b"work"), 5)
        await eventually(lambda: sum(r.at_eof() for r, _ in held) == 1)
        assert len(listener.connections) == 2
        assert len(caplog.records) == 1
    finally:
        await transport.close()


async def test_the_warning_comes_once_per_episode(
    open_raw: OpenRaw, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="micro.transport.http")
    transport = HttpTransport(max_connections=10)
    try:
        listener = await transport.listen("127.0.0.1:0", Recorder())
        for episode in (1, 2):
            raw = [await open_raw(listener.address) for _ in range(15)]
            await eventually(lambda n=episode: len(caplog.records) == n)  # type: ignore[misc]
            for _, writer in raw:
                writer.close()
            await eventually(lambda: not listener.connections)  # back under 90 %: it ends
        assert len(caplog.records) == 2
    finally:
        await transport.close()


@pytest.mark.parametrize(
    ("nofile", "limit"),
    [(1024, 768), (65536, MAX_CONNECTIONS), (resource.RLIM_INFINITY, MAX_CONNECTIONS)],
)
def test_the_default_limit_leaves_a_quarter_of_the_descriptors(
    monkeypatch: pytest.MonkeyPatch, nofile: int, limit: int
) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _: (nofile, nofile))
    assert default_max_connections() == limit


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="max_connections"):
        HttpTransport(max_connections=0)
