"""A go-micro v1.0 client's streams against micro's server: captured bytes and the peer."""

from __future__ import annotations

import asyncio

from micro.server.rpc import RpcServer
from micro.testing import eventually
from tests.interop.go_v1 import GoV1Client, read_message
from tests.interop.greeter import Request, Say
from tests.transport.go_wire import REQUESTS_5_3


async def replay(address: str, data: bytes) -> list[tuple[dict[str, str], bytes]]:
    """Write ``data`` verbatim; the messages answered until the server closes."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    answers = []
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(5):
            while (message := await read_message(reader)) is not None:
                answers.append(message[1:])
    finally:
        writer.close()
    return answers


async def test_captured_go_stream_gets_its_request(py_server: RpcServer, say: Say) -> None:
    """The two POSTs of a v1.0 stream: the placeholder, then the request."""
    answers = await replay(py_server.address, REQUESTS_5_3)
    bodies = [body for _, body in answers]
    assert bodies == [b'{"msg":"Hello John #%d"}' % n for n in range(3)] + [b""]
    last = answers[-1][0]
    assert last["Micro-Error"] == last["X-Micro-Error"] == "EOS"  # v1.0's client reads EOF
    assert all("Micro-Stream" not in header for header, _ in answers)
    assert say.requests == [Request("John")]


async def test_go_client_streams(py_server: RpcServer, say: Say) -> None:
    stream = await GoV1Client(py_server.address).stream("Say.Stream", {"name": "John"})
    try:
        items, end = await stream.read_all()
    finally:
        await stream.close()
    assert items == [{"msg": f"Hello John #{n}"} for n in range(3)]
    assert end == "EOF"
    assert say.requests == [Request("John")]


async def test_go_client_bidi(py_server: RpcServer) -> None:
    stream = await GoV1Client(py_server.address).stream("Say.Bidi", {"name": "a"})
    try:
        assert await stream.recv() == {"msg": "echo a"}  # the placeholder is not a message
        await stream.send({"name": "b"})
        assert await stream.recv() == {"msg": "echo b"}
    finally:
        await stream.close()


async def test_go_client_leaving_before_its_request(py_server: RpcServer, say: Say) -> None:
    stream = await GoV1Client(py_server.address).stream("Say.Stream", None)
    await eventually(lambda: len(py_server._router.conns) == 1)
    await stream.close()
    await eventually(lambda: not py_server._router.conns)
    assert say.requests == []  # the handler never ran on the placeholder
