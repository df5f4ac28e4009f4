"""Publishes made in one loop turn go out together (one write) and each still gets its own
outcome: messages to a live node are delivered in order, messages to a dead one fail."""

from __future__ import annotations

import asyncio

import pytest

from micro.errors import ConnectionClosed
from micro.transport import Message, Socket
from tests.transport.rabbitmq.conftest import MakeTransport

pytestmark = pytest.mark.integration


async def test_a_batch_of_sends_to_live_and_dead_nodes_gets_each_outcome_right(
    make_transport: MakeTransport,
) -> None:
    async def echo(sock: Socket) -> None:
        while True:
            await sock.send(await sock.recv())

    server, client = make_transport(), make_transport()
    live = await server.listen(":0", echo)
    alive = [await client.dial(live.address) for _ in range(20)]
    dead = [await client.dial(live.address) for _ in range(20)]
    for sock in dead:  # as if their node had died: its queue is gone
        sock.address = "micro.test.no-such-queue"

    sends = [sock.send(Message({"N": str(i)}, str(i).encode())) for i, sock in enumerate(alive)]
    sends += [sock.send(Message({}, b"lost")) for sock in dead]
    results = await asyncio.gather(*sends, return_exceptions=True)
    assert results[:20] == [None] * 20
    assert all(isinstance(r, ConnectionClosed) and "no queue" in str(r) for r in results[20:])
    for i, sock in enumerate(alive):
        reply = await asyncio.wait_for(sock.recv(), 10)
        assert (reply.header["N"], reply.body) == (str(i), str(i).encode())
    # one socket's messages in one batch keep their order
    await asyncio.gather(*(alive[0].send(Message({}, str(n).encode())) for n in range(50)))
    assert [(await alive[0].recv()).body for _ in range(50)] == [str(n).encode() for n in range(50)]


async def test_a_send_cancelled_before_its_message_is_returned_leaves_the_transport_working(
    make_transport: MakeTransport,
) -> None:
    async def echo(sock: Socket) -> None:
        while True:
            await sock.send(await sock.recv())

    server, client = make_transport(), make_transport()
    live = await server.listen(":0", echo)
    lost = [await client.dial(live.address) for _ in range(10)]
    for sock in lost:
        sock.address = "micro.test.no-such-queue"
    sends = [asyncio.ensure_future(sock.send(Message({}, b"x"))) for sock in lost]
    await asyncio.sleep(0)  # published in this turn's batch, then the callers give up
    await asyncio.sleep(0)
    for send in sends:
        send.cancel()
    await asyncio.gather(*sends, return_exceptions=True)
    await asyncio.sleep(0.2)  # RabbitMQ returns them meanwhile
    sock = await client.dial(live.address)
    await sock.send(Message({}, b"still here"))
    assert (await asyncio.wait_for(sock.recv(), 10)).body == b"still here"
