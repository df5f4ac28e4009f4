"""Request counts in ``Debug.Stats``: requests, errors and in-flight calls, Debug.* left out."""

from __future__ import annotations

import asyncio
from typing import Any

from micro.server.rpc import RpcServer
from micro.transport import Message, Transport
from tests.server.conftest import Peer, body_of, error_of, request
from tests.server.handlers import Say


async def stats(transport: Transport, server: RpcServer) -> dict[str, Any]:
    """``Debug.Stats`` over a connection of its own (the test's peer may be busy)."""
    peer = Peer(await transport.dial(server.address))
    try:
        answer: dict[str, Any] = body_of(await peer.call(request("Debug.Stats")))
        return answer
    finally:
        await peer.close()


def counts(answer: dict[str, Any]) -> tuple[int, int, int]:
    return answer["requests"], answer["errors"], answer["in_flight"]


async def test_unary_calls_are_counted_and_debug_calls_are_not(
    peer: Peer, server: RpcServer, transport: Transport
) -> None:
    assert counts(await stats(transport, server)) == (0, 0, 0)
    for _ in range(3):
        body_of(await peer.call(request("Debug.Health")))
        body_of(await peer.call(request("Debug.Stats")))
    assert counts(await stats(transport, server)) == (0, 0, 0)

    assert body_of(await peer.call(request("Say.Hello", {"name": "a"}))) == {"msg": "Hello a"}
    error_of(await peer.call(request("Say.Fail", {"name": "b"})))  # the handler's 400
    error_of(await peer.call(request("Say.Boom", {"name": "c"})))  # an exception: 500
    error_of(await peer.call(request("Say.Hello", raw=b"{not json")))  # undecodable: 400
    error_of(await peer.call(request("Say.Nope")))  # unknown endpoint: 404
    error_of(await peer.call(request("Say.Hello", service="go.micro.srv.other")))  # not here
    error_of(await peer.call(request("Say.Unencodable")))  # the answer cannot be encoded
    error_of(await peer.call(request("Say.Stubborn", Timeout="20000000")))  # 408
    assert counts(await stats(transport, server)) == (8, 7, 0)


async def test_a_call_in_flight_shows_until_it_ends(
    peer: Peer, server: RpcServer, transport: Transport, say: Say
) -> None:
    slow = asyncio.create_task(peer.call(request("Say.Slow", {"name": "0.5"})))
    await asyncio.wait_for(say.started.wait(), 5)
    assert counts(await stats(transport, server)) == (1, 0, 1)
    assert body_of(await slow) == {"msg": "slow done"}
    assert counts(await stats(transport, server)) == (1, 0, 0)


async def test_streams_are_counted_once_with_their_outcome(
    server: RpcServer, transport: Transport, say: Say
) -> None:
    async def run(endpoint: str, body: Any) -> list[Message]:
        peer = Peer(await transport.dial(server.address))
        try:
            await peer.open_stream(endpoint, body)
            replies = []
            while True:
                reply = await peer.sock.recv()
                replies.append(reply)
                if "Micro-Error" in reply.header:
                    return replies
        finally:
            await peer.close()

    await run("Say.Count", {"name": "3"})  # three messages, then the end of stream
    assert counts(await stats(transport, server)) == (1, 0, 0)
    error_of((await run("Say.CountThenFail", {"name": "x"}))[-1])
    assert counts(await stats(transport, server)) == (2, 1, 0)

    watcher = Peer(await transport.dial(server.address))
    try:
        await watcher.open_stream("Say.Watch", {"name": "w"})
        await asyncio.wait_for(say.started.wait(), 5)
        assert counts(await stats(transport, server)) == (3, 1, 1)
    finally:
        await watcher.close()
    await asyncio.wait_for(say.cancelled.wait(), 5)  # the client left: not an error
    assert counts(await stats(transport, server)) == (3, 1, 0)


async def test_a_call_refused_while_stopping_is_an_error(
    peer: Peer, server: RpcServer, transport: Transport, say: Say
) -> None:
    other = Peer(await transport.dial(server.address))
    try:
        slow = asyncio.create_task(peer.call(request("Say.Slow", {"name": "0.5"})))
        await asyncio.wait_for(say.started.wait(), 5)
        stopping = asyncio.create_task(server.stop(grace=5))
        while not server._router.draining:
            await asyncio.sleep(0.01)
        assert error_of(await other.call(request("Say.Hello", {"name": "late"})))["code"] == 503
        await slow
        await asyncio.wait_for(stopping, 5)
    finally:
        await other.close()
    answer = await server._debug.stats()
    assert (answer.requests, answer.errors, answer.in_flight) == (2, 1, 0)
