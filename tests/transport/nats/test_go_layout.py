"""go-plugins v1's layout: the JSON body, and peers that speak only it (raw nats-py standing
in for a Go dialer and a Go listener: JSON in the body, replies to the reply subject, no
NATS headers)."""

from __future__ import annotations

import asyncio
import json

import nats
import pytest
from nats.aio.msg import Msg

from micro.errors import BadRequest
from micro.transport import Message, Socket
from micro.transport._nats_wire import decode, encode
from micro.transport.nats import NatsTransport
from tests.servers import nats_url


def test_the_body_is_go_plugins_json() -> None:
    assert encode(Message({"Micro-Id": "1"}, b"\x00\x01")) == (
        b'{"Header":{"Micro-Id":"1"},"Body":"AAE="}'
    )
    # Go's decoder matches keys in any case and writes a nil body as null
    assert decode(b'{"header":{"A":"b"},"body":null}') == Message({"A": "b"}, b"")
    with pytest.raises(BadRequest, match="Header, Body"):
        decode(b"[1]")


@pytest.mark.integration
async def test_a_go_style_dialer_reaches_a_micro_listener() -> None:
    async def echo(sock: Socket) -> None:
        while True:
            message = await sock.recv()
            await sock.send(Message({**message.header, "Echo": "1"}, message.body))

    transport = NatsTransport(address=nats_url())
    listener = await transport.listen(":0", echo)
    nc = await nats.connect(nats_url())
    try:
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        subject = listener.address.removeprefix("nats://")
        for n in range(3):
            body = {"Header": {"Micro-Id": str(n)}, "Body": "aGk="}
            await nc.publish(subject, json.dumps(body).encode(), reply=inbox)
            reply = await sub.next_msg(timeout=5)
            assert decode(reply.data) == Message({"Micro-Id": str(n), "Echo": "1"}, b"hi")
    finally:
        await nc.close()
        await listener.close()
        await transport.close()


@pytest.mark.integration
async def test_a_micro_dialer_reaches_a_go_style_listener() -> None:
    nc = await nats.connect(nats_url())
    subject = nc.new_inbox()

    async def go_listener(msg: Msg) -> None:
        if not msg.data:  # go-plugins fails to decode the empty open and drops that socket
            return
        message = decode(msg.data)
        await nc.publish(msg.reply, encode(Message(message.header, message.body[::-1])))

    await nc.subscribe(subject, cb=go_listener)
    await nc.flush()
    transport = NatsTransport(address=nats_url())
    try:
        sock = await transport.dial(subject)
        await sock.send(Message({"Micro-Id": "7"}, b"abc"))
        reply = await asyncio.wait_for(sock.recv(), 5)
        assert reply == Message({"Micro-Id": "7"}, b"cba")
        await sock.close()
    finally:
        await transport.close()
        await nc.close()
