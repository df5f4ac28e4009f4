"""How virtual connections end without a close: a client that vanished (its reply queue
gone) stops a server stream at the next send; a connection idle past idle_timeout is
closed, and the client hears it."""

from __future__ import annotations

import asyncio

import pytest

from micro.errors import ConnectionClosed, PayloadTooLarge
from micro.transport import Message, Socket
from micro.transport import _rabbitmq_wire as wire
from micro.transport.rabbitmq import RabbitmqClientSocket
from tests.transport.rabbitmq.conftest import MakeTransport

pytestmark = pytest.mark.integration


async def test_a_stream_to_a_vanished_client_stops_at_the_next_send(
    make_transport: MakeTransport,
) -> None:
    stopped: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    async def stream_forever(sock: Socket) -> None:
        await sock.recv()
        try:
            while True:
                await sock.send(Message({}, b"tick"))
                await asyncio.sleep(0.02)
        except ConnectionClosed as exc:
            stopped.set_result(exc)

    server, client = make_transport(), make_transport()
    listener = await server.listen(":0", stream_forever)
    sock = await client.dial(listener.address)
    await sock.send(Message({}, b"go"))
    assert (await sock.recv()).body == b"tick"
    connection = client._connection
    assert connection is not None
    await connection.close()  # the client vanishes: no close marker, its reply queue dropped
    async with asyncio.timeout(10):  # idle_timeout (90 s) plays no part
        error = await stopped
    assert "no queue" in str(error)


async def test_an_idle_connection_is_closed_and_the_client_hears_it(
    make_transport: MakeTransport,
) -> None:
    ended: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    async def wait_for_more(sock: Socket) -> None:
        message = await sock.recv()
        await sock.send(message)
        try:
            await sock.recv()
        except ConnectionClosed as exc:
            ended.set_result(exc)

    server = make_transport(idle_timeout=0.5, probe_interval=0.2)
    client = make_transport()
    listener = await server.listen(":0", wait_for_more)
    sock = await client.dial(listener.address)
    await sock.send(Message({}, b"once"))
    assert (await sock.recv()).body == b"once"
    async with asyncio.timeout(10):
        assert "idle" in str(await ended)
        with pytest.raises(ConnectionClosed):
            await sock.recv()
    assert sock.closed


async def test_a_message_for_a_connection_the_listener_ended_is_refused_unread(
    make_transport: MakeTransport,
) -> None:
    async def read_one(sock: Socket) -> None:
        await sock.recv()

    server, client = make_transport(), make_transport()
    listener = await server.listen(":0", read_one)
    sock = await client.dial(listener.address)
    await sock.send(Message({}, b"one"))
    with pytest.raises(ConnectionClosed):
        await sock.recv()  # the handler returned: its close marker
    assert sock.answered
    # the same connection id again, as a pooled socket would be reused in a race with the
    # close: the listener answers that it did not read it, so the client may send it elsewhere
    late = RabbitmqClientSocket(client, wire.check_address(listener.address), sock.id)
    client._dialed[late.id] = late
    await late.send(Message({}, b"two"))
    with pytest.raises(ConnectionClosed, match="before it read"):
        await late.recv()
    assert not late.answered


async def test_a_response_over_the_clients_max_body_fails_recv_and_closes(
    make_transport: MakeTransport,
) -> None:
    after: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    async def answer_big(sock: Socket) -> None:
        await sock.recv()
        await sock.send(Message({}, b"x" * 4096))
        try:
            await sock.recv()
        except ConnectionClosed as exc:
            after.set_result(exc)

    server, client = make_transport(), make_transport(max_body=1024)
    listener = await server.listen(":0", answer_big)
    sock = await client.dial(listener.address)
    await sock.send(Message({}, b"small"))
    with pytest.raises(PayloadTooLarge, match="over max_body 1024"):
        await sock.recv()
    assert sock.closed
    async with asyncio.timeout(10):
        await after  # the server heard the close
