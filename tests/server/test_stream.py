"""Streams: server streaming and bidirectional, EOS both ways, errors, clients leaving."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from micro.errors import ConnectionClosed
from micro.server import HandlerFunc, Request
from micro.server.rpc import RpcServer
from micro.testing import eventually
from micro.transport import Message, Transport
from tests.server.conftest import MakeServer, Peer, body_of, error_of, request
from tests.server.handlers import Say

EOS = {"Micro-Error": "EOS"}


async def read_all(peer: Peer) -> list[Message]:
    """Every message until the server closes the connection."""
    out = []
    while True:
        try:
            out.append(await peer.sock.recv())
        except ConnectionClosed:
            return out


def is_eos(message: Message) -> bool:
    return message.header.get("Micro-Error") == "EOS" and message.body == b""


async def test_server_stream_sends_each_item_then_eos_and_closes(peer: Peer) -> None:
    await peer.open_stream("Say.Count", {"name": "3"}, Micro_Stream="s1")
    messages = await read_all(peer)
    assert [body_of(m) for m in messages[:-1]] == [{"msg": "#0"}, {"msg": "#1"}, {"msg": "#2"}]
    assert is_eos(messages[-1])
    assert messages[-1].header["X-Micro-Error"] == "EOS"
    assert all(m.header["Micro-Stream"] == "s1" for m in messages)
    assert all(m.header["Micro-Endpoint"] == "Say.Count" for m in messages)


@pytest.mark.parametrize("extra", [{}, {"Micro-Stream": "9"}], ids=["v1.0", "v1.9+"])
async def test_server_stream_request_is_the_first_stream_message(
    peer: Peer, extra: dict[str, str]
) -> None:
    """go-micro v1 clients open with a placeholder (v1.0 without Micro-Stream), then send
    the request; later messages and the client's EOS are read and dropped."""
    for body in ({"name": ""}, {"name": "2"}, {"name": "5"}):
        message = request("Say.Count", body)
        message.header.update(extra)
        await peer.sock.send(message)
    await peer.sock.send(Message({**request("Say.Count").header, **extra, **EOS}, b""))
    messages = await read_all(peer)
    assert [body_of(m) for m in messages[:-1]] == [{"msg": "#0"}, {"msg": "#1"}]
    assert is_eos(messages[-1])


async def test_server_stream_request_from_the_opening_when_the_client_ends_first(
    peer: Peer,
) -> None:
    await peer.sock.send(request("Say.Count", {"name": "2"}))
    await peer.sock.send(Message({**request("Say.Count").header, **EOS}, b""))
    messages = await read_all(peer)
    assert [body_of(m) for m in messages[:-1]] == [{"msg": "#0"}, {"msg": "#1"}]
    assert is_eos(messages[-1])


async def test_server_stream_without_a_request_starts_at_once(peer: Peer) -> None:
    await peer.sock.send(request("Say.Ticks"))
    messages = await read_all(peer)
    assert [body_of(m) for m in messages[:-1]] == [{"msg": "tick 0"}, {"msg": "tick 1"}]
    assert is_eos(messages[-1])


async def test_server_stream_waiting_for_its_request_times_out(peer: Peer, say: Say) -> None:
    await peer.sock.send(request("Say.Watch", {"name": "w"}, Timeout=str(200_000_000)))
    (only,) = await read_all(peer)
    assert error_of(only)["code"] == 408
    assert not say.started.is_set()


async def test_client_leaving_before_the_request_runs_nothing(
    peer: Peer, say: Say, server: RpcServer
) -> None:
    before = asyncio.all_tasks()
    await peer.sock.send(request("Say.Watch", {"name": "w"}))
    await eventually(lambda: any(conn.busy for conn in server._router.conns))  # it waits
    await peer.close()
    await _settle(before, server)
    assert not say.started.is_set()


async def test_a_stray_eos_is_not_a_call(peer: Peer) -> None:
    """A stream client's EOS after a unary answer (it opened a unary endpoint)."""
    await peer.sock.send(Message({**request("Say.Hello").header, **EOS}, b""))
    reply = await peer.call(request("Say.Hello", {"name": "x"}))
    assert body_of(reply) == {"msg": "Hello x"}


async def test_server_stream_request_is_validated(peer: Peer) -> None:
    await peer.open_stream("Say.Count", {"name": 3})
    messages = await read_all(peer)
    assert len(messages) == 1
    error = error_of(messages[0])
    assert error["code"] == 400
    assert "$.name" in error["detail"]


async def test_server_stream_error_mid_stream(peer: Peer) -> None:
    await peer.open_stream("Say.CountThenFail", {"name": "x"})
    first, last = await read_all(peer)
    assert body_of(first) == {"msg": "first"}
    assert error_of(last)["code"] == 409
    assert error_of(last)["detail"] == "second failed"


async def test_bidi_stream_echoes_until_client_eos(peer: Peer) -> None:
    await peer.sock.send(request("Say.Echo", {"ignored": True}, Micro_Stream="b1"))
    for name in ("a", "b"):
        await peer.sock.send(request("Say.Echo", {"name": name}, Micro_Stream="b1"))
        assert body_of(await peer.sock.recv()) == {"msg": f"echo {name}"}
    await peer.sock.send(Message({**request("Say.Echo").header, **EOS}, b""))
    bye, eos = await read_all(peer)
    assert body_of(bye) == {"msg": "bye"}
    assert is_eos(eos)


async def test_bidi_go_v1_shape_first_body_is_ignored(peer: Peer) -> None:
    await peer.sock.send(request("Say.Stream", {"name": ""}))
    await peer.sock.send(request("Say.Stream", {"name": "John"}))
    messages = await read_all(peer)
    bodies = [body_of(m) for m in messages[:-1]]
    assert bodies == [{"msg": f"Hello John #{i}"} for i in range(3)]
    assert is_eos(messages[-1])


async def test_bidi_bad_message_fails_the_stream_with_400(peer: Peer) -> None:
    await peer.sock.send(request("Say.Stream", {}))
    await peer.sock.send(request("Say.Stream", {"name": 5}))
    (only,) = await read_all(peer)
    error = error_of(only)
    assert error["code"] == 400
    assert "$.name" in error["detail"]


@pytest.mark.parametrize("endpoint", ["Say.Watch", "Say.Hang"])
async def test_client_leaving_a_stream_cancels_the_handler(
    peer: Peer, say: Say, server: RpcServer, endpoint: str
) -> None:
    before = asyncio.all_tasks()
    await peer.open_stream(endpoint, {"name": "w"})
    await asyncio.wait_for(say.started.wait(), 5)
    await peer.close()
    await asyncio.wait_for(say.cancelled.wait(), 5)
    await _settle(before, server)


async def test_client_leaving_mid_call_leaks_nothing(
    peer: Peer, say: Say, server: RpcServer
) -> None:
    before = asyncio.all_tasks()
    await peer.sock.send(request("Say.Slow", {"name": "0.2"}))
    await asyncio.wait_for(say.started.wait(), 5)
    await peer.close()
    await asyncio.wait_for(say.finished.wait(), 5)
    await _settle(before, server)


async def _settle(before: set[asyncio.Task[Any]], server: RpcServer) -> None:
    """Wait until no task beyond ``before`` is left and the connection's task has ended."""
    for _ in range(200):
        extra = asyncio.all_tasks() - before
        if not extra and not server._router.conns:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"left over: tasks {extra}, connections {server._router.conns}")


async def test_stream_wrapper_sees_the_whole_stream(
    make_server: MakeServer, say: Say, transport: Transport
) -> None:
    seen: list[Any] = []

    def wrapper(next_call: HandlerFunc) -> HandlerFunc:
        async def call(req: Request) -> Any:
            seen.append((req.endpoint, req.stream, req.io is not None))
            await next_call(req)
            seen.append("done")

        return call

    server = await make_server(say, wrappers=[wrapper])
    peer = Peer(await transport.dial(server.address))
    try:
        await peer.open_stream("Say.Count", {"name": "2"})
        messages = await read_all(peer)
    finally:
        await peer.close()
    assert len(messages) == 3
    assert seen == [("Say.Count", True, True), "done"]


async def test_stream_deadline_ends_it_with_408(peer: Peer, say: Say) -> None:
    await peer.sock.send(request("Say.Hang", {}, Timeout=str(200_000_000)))
    (only,) = await read_all(peer)
    error = error_of(only)
    assert error["code"] == 408
    assert error["detail"] == "Say.Hang: deadline of 0.2s exceeded"
    assert say.cancelled.is_set()


async def test_stream_without_timeout_outlives_a_short_while(peer: Peer, say: Say) -> None:
    await peer.open_stream("Say.Watch", {"name": "w"})
    assert body_of(await peer.sock.recv()) == {"msg": "watching"}
    await asyncio.sleep(0.3)
    assert not say.cancelled.is_set()
