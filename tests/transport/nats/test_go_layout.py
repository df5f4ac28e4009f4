"""go-plugins v1's layout: the JSON body, and peers that speak only it (raw nats-py standing
in for a Go dialer and a Go listener: JSON in the body, replies to the reply subject, no
NATS headers)."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid

import nats
import pytest
from nats.aio.msg import Msg

from micro.errors import BadRequest
from micro.transport import Message, Socket
from micro.transport._nats_wire import _decode_loose, decode, encode
from micro.transport.nats import NatsTransport
from tests.servers import address, nats_url


def test_the_body_is_go_plugins_json() -> None:
    assert encode(Message({"Micro-Id": "1"}, b"\x00\x01")) == (
        b'{"Header":{"Micro-Id":"1"},"Body":"AAE="}'
    )
    # Go's decoder matches keys in any case and writes a nil body as null
    assert decode(b'{"header":{"A":"b"},"body":null}') == Message({"A": "b"}, b"")
    with pytest.raises(BadRequest, match="Header, Body"):
        decode(b"[1]")


@pytest.mark.parametrize(
    "data",
    [
        b'{"Header":{"Micro-Id":"1"},"Body":"AAE="}',
        b'{"Header":null,"Body":null}',
        b'{"Header":{},"Body":""}',
        rb'{"Header":{"A":"\u00e9\u4e2d"},"Body":"aGk="}',
        b'{"header":{"A":"b"},"BODY":"aGk="}',  # Go matches keys in any case
        b'{"Header":{"A":1},"Body":""}',  # a value that is not a string
        b'{"Header":{},"Body":"","Extra":true}',
        b'{"Body":"aGk="}',
        b'{"Header":{}}',
        b'{"Header":{},"Body":"AAE"}',  # no padding
        b'{"Header":{},"Body":"-_8="}',  # the URL alphabet
        b'{"Header":[],"Body":""}',
        b'{"Header":{},"Body":1}',
        b'{"Header":{},"Body":"\xff"}',
        b"\xff\xfe",
        b"",
        b"null",
    ],
)
def test_the_fast_decoder_takes_what_the_json_path_takes(data: bytes) -> None:
    """msgspec reads go-plugins' exact layout; everything else goes the old way, unchanged."""
    try:
        expected: Message | str = _decode_loose(data)
    except BadRequest as exc:
        expected = exc.detail
    try:
        got: Message | str = decode(data)
    except BadRequest as exc:
        got = exc.detail
    assert got == expected


def test_encoding_round_trips_any_bytes() -> None:
    message = Message({"Micro-Id": "7", "X": "é"}, bytes(range(256)) * 3)
    assert decode(encode(message)) == message
    assert json.loads(encode(message))["Body"] == base64.b64encode(message.body).decode()


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


class HeaderlessClient:
    """A NATS client as old as go-plugins v1.0's (go-nats, no header support), spoken by
    hand: the server strips NATS headers from what it delivers to it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, address: str) -> HeaderlessClient:
        host, _, port = address.rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        await reader.readline()  # INFO
        writer.write(b'CONNECT {"verbose":false,"headers":false,"protocol":1}\r\n')
        return cls(reader, writer)

    async def subscribe(self, subject: str) -> None:
        self.writer.write(f"SUB {subject} 1\r\nPING\r\n".encode())
        assert await self.reader.readline() == b"PONG\r\n"

    async def next_msg(self) -> tuple[str, bytes]:
        """(reply subject, body) of the next MSG; fails on anything else (an HMSG)."""
        while True:
            line = await self.reader.readline()
            if line == b"PING\r\n":
                self.writer.write(b"PONG\r\n")
                continue
            kind, _subject, _sid, reply, size = line.decode().split()
            assert kind == "MSG", line
            body = await self.reader.readexactly(int(size) + 2)
            return reply, body[:-2]

    def publish(self, subject: str, body: bytes) -> None:
        self.writer.write(f"PUB {subject} {len(body)}\r\n".encode() + body + b"\r\n")

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


@pytest.mark.integration
async def test_a_headerless_go_client_sees_exactly_go_plugins_messages() -> None:
    go = await HeaderlessClient.connect(address("nats"))
    subject = f"microtest.go.{uuid.uuid4().hex[:10]}"
    await go.subscribe(subject)
    transport = NatsTransport(address=nats_url())
    try:
        dialing = asyncio.create_task(transport.dial(subject))
        _, opening = await go.next_msg()  # the open: an empty body go-plugins drops
        assert opening == b""
        sock = await dialing
        message = Message({"Micro-Id": "1", "Content-Type": "application/json"}, b'{"a":1}')
        await sock.send(message)
        reply, body = await go.next_msg()
        assert body == encode(message)  # byte for byte what go-plugins' Send would publish
        go.publish(reply, encode(Message({"Micro-Id": "1"}, b"ok")))
        assert await asyncio.wait_for(sock.recv(), 5) == Message({"Micro-Id": "1"}, b"ok")
        await sock.close()
    finally:
        await transport.close()
        await go.close()
