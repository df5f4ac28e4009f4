"""Unary calls: routing, decoding and validation, errors, deadlines, metadata, wrappers."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
import pytest

from micro.server import HandlerFunc, Request
from micro.server.rpc import RpcServer
from tests.server.conftest import SERVICE, MakeServer, Peer, body_of, error_of, request
from tests.server.handlers import Say


async def test_unary_call_echoes_the_routing_headers(peer: Peer) -> None:
    reply = await peer.call(request("Say.Hello", {"name": "John"}, Micro_Id="7"))
    assert body_of(reply) == {"msg": "Hello John"}
    assert reply.header["Content-Type"] == "application/json"
    assert reply.header["Micro-Id"] == "7"
    assert reply.header["Micro-Service"] == SERVICE
    assert reply.header["Micro-Endpoint"] == reply.header["Micro-Method"] == "Say.Hello"


async def test_connection_is_kept_alive_across_calls(peer: Peer) -> None:
    for name in ("a", "b", "c"):
        reply = await peer.call(request("Say.Hello", {"name": name}))
        assert body_of(reply) == {"msg": f"Hello {name}"}


async def test_micro_method_and_legacy_spellings_route(peer: Peer) -> None:
    message = request("Say.Hello", {"name": "M"}, service=None)
    del message.header["Micro-Endpoint"]
    message.header["Micro-Method"] = "Say.Hello"
    assert body_of(await peer.call(message)) == {"msg": "Hello M"}
    legacy = request("Say.Hello", {"name": "X"}, service=None)
    del legacy.header["Micro-Endpoint"]
    legacy.header["X-Micro-Endpoint"] = "Say.Hello"
    legacy.header["X-Micro-Service"] = SERVICE
    assert body_of(await peer.call(legacy)) == {"msg": "Hello X"}


@pytest.mark.parametrize(
    ("endpoint", "body", "names"),
    [  # the detail names the path (or the missing field); its other words are the library's
        ("Say.Hello", {"name": 3}, "`$.name`"),
        ("Say.Hello", {}, "`name`"),
        ("Say.Order", {"id": "o", "items": [{"qty": "x"}]}, "`$.items[0].qty`"),
        ("Say.Data", {"count": "2"}, "`$.count`"),
        ("Say.Typed", {"value": "v"}, "`$.value`"),
        ("Say.Pyd", {"age": "old"}, "`$.age`"),
    ],
)
async def test_invalid_bodies_are_400_naming_the_path(
    peer: Peer, endpoint: str, body: Any, names: str
) -> None:
    error = error_of(await peer.call(request(endpoint, body)))
    assert error["code"] == 400
    assert error["id"] == SERVICE
    assert error["status"] == "Bad Request"
    assert names in error["detail"]


async def test_every_request_type_decodes(peer: Peer) -> None:
    order = {"id": "o", "items": [{"qty": 2}, {"qty": 3}]}
    assert body_of(await peer.call(request("Say.Order", order))) == 5
    assert body_of(await peer.call(request("Say.Data", {"count": 2}))) == "x2"
    assert body_of(await peer.call(request("Say.Typed", {"value": 1.5}))) == 3.0
    assert body_of(await peer.call(request("Say.Pyd", {"age": 41}))) == 42
    assert body_of(await peer.call(request("Say.Raw", {"a": [1]}))) == {"got": {"a": [1]}}


async def test_malformed_json_is_400(peer: Peer) -> None:
    error = error_of(await peer.call(request("Say.Hello", raw=b'{"name": ')))
    assert error["code"] == 400
    assert "malformed JSON" in error["detail"]


async def test_optional_request_accepts_an_empty_body(peer: Peer) -> None:
    assert body_of(await peer.call(request("Say.Maybe", raw=b""))) == "none"
    assert body_of(await peer.call(request("Say.Maybe", {"name": "n"}))) == "n"


async def test_unsupported_content_type_is_400(peer: Peer) -> None:
    message = request("Say.Hello", raw=b"John", Content_Type="text/plain")
    reply = await peer.call(message)
    error = error_of(reply)
    assert error == {
        "id": "go.micro.server",
        "code": 400,
        "detail": "Unsupported Content-Type: text/plain (Say.Hello speaks application/json, "
        "application/msgpack, application/x-msgpack)",
        "status": "Bad Request",
    }
    assert reply.header["Content-Type"] == "text/plain"


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [  # \udcXX: a byte that was not UTF-8, as the HTTP transport hands it over
        ("Micro-Service", "gr\udcffeter", "'gr\\xffeter'"),
        ("Micro-Endpoint", "Say.Hel\udcfflo", "'Say.Hel\\xfflo'"),
        ("Content-Type", "application/json; charset=\udcc3", "'application/json; charset=\\xc3'"),
    ],
)
@pytest.mark.parametrize(  # raw header bytes: nats and rabbitmq carry text headers only
    "transport", ["memory", "http", "tcp"], indirect=True
)
async def test_a_routing_header_that_is_not_utf8_is_400(
    peer: Peer, name: str, value: str, shown: str
) -> None:
    await _refused_as_not_utf8(peer, name, value, shown)


@pytest.mark.parametrize("transport", ["memory"], indirect=True)  # HTTP cannot carry it
async def test_a_lone_surrogate_from_an_in_process_peer_is_400(peer: Peer) -> None:
    await _refused_as_not_utf8(peer, "Micro-Endpoint", "Say.\ud800", "'Say.\\ud800'")


async def _refused_as_not_utf8(peer: Peer, name: str, value: str, shown: str) -> None:
    message = request("Say.Hello", {"name": "x"})
    message.header[name] = value
    reply = await peer.call(message)
    error = error_of(reply)
    assert error["code"] == 400
    assert error["detail"] == f"header {name} is not valid UTF-8: {shown}"
    assert all(v.isascii() for v in reply.header.values())
    assert body_of(await peer.call(request("Say.Hello", {"name": "y"}))) == {"msg": "Hello y"}


async def test_msgpack_request_gets_a_msgpack_reply(peer: Peer) -> None:
    message = request("Say.Hello", raw=msgspec.msgpack.encode({"name": "mp"}))
    message.header["Content-Type"] = "application/msgpack"
    reply = await peer.call(message)
    assert reply.header["Content-Type"] == "application/msgpack"
    assert msgspec.msgpack.decode(reply.body) == {"msg": "Hello mp"}


async def test_missing_endpoint_is_ill_formed(peer: Peer) -> None:
    message = request("Say.Hello", {"name": "x"})
    del message.header["Micro-Endpoint"]
    error = error_of(await peer.call(message))
    assert error["code"] == 400
    assert error["detail"] == "rpc: service/endpoint request ill-formed"


@pytest.mark.parametrize("endpoint", ["Say.Nope", "Nope.Hello", "Say._private", "Say"])
async def test_unknown_endpoint_is_404(peer: Peer, endpoint: str) -> None:
    error = error_of(await peer.call(request(endpoint, {"name": "x"})))
    assert error["code"] == 404
    assert error["id"] == "go.micro.server"
    assert error["detail"].startswith(f"unknown endpoint {endpoint} (known: Say.AnonymousError,")


async def test_other_service_is_404(peer: Peer) -> None:
    error = error_of(await peer.call(request("Say.Hello", {"name": "x"}, service="other")))
    assert error["code"] == 404
    assert error["detail"] == f"service other: not found here (this is {SERVICE})"


async def test_handler_micro_error_passes_through(peer: Peer) -> None:
    error = error_of(await peer.call(request("Say.Fail", {"name": "John"})))
    assert error == {
        "id": SERVICE,
        "code": 400,
        "detail": 'bad name "John"',
        "status": "Bad Request",
    }
    anonymous = error_of(await peer.call(request("Say.AnonymousError")))
    assert anonymous == {"id": SERVICE, "code": 403, "detail": "no", "status": "Forbidden"}


async def test_other_exceptions_are_500_and_logged(
    peer: Peer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="micro.server"):
        error = error_of(await peer.call(request("Say.Boom", {"name": "x"})))
    assert error["code"] == 500
    assert error["id"] == SERVICE
    assert error["detail"] == "Say.Boom: ValueError: boom"
    record = next(r for r in caplog.records if r.name == "micro.server")
    assert record.exc_info is not None
    assert record.exc_info[0] is ValueError
    # the connection still serves
    assert body_of(await peer.call(request("Say.Hello", {"name": "after"}))) == {
        "msg": "Hello after"
    }


async def test_unencodable_response_is_500(peer: Peer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="micro.server"):
        error = error_of(await peer.call(request("Say.Unencodable")))
    assert error["code"] == 500
    assert error["detail"].startswith("Say.Unencodable: cannot encode object")


async def test_deadline_is_408_and_cancels_the_handler(peer: Peer, say: Say) -> None:
    message = request("Say.Slow", {"name": "30"}, Timeout=str(200_000_000))
    loop = asyncio.get_running_loop()
    began = loop.time()
    error = error_of(await peer.call(message))
    assert loop.time() - began < 5
    assert error == {
        "id": SERVICE,
        "code": 408,
        "detail": "Say.Slow: deadline of 0.2s exceeded",
        "status": "Request Timeout",
    }
    assert say.cancelled.is_set()
    assert not say.finished.is_set()


async def test_deadlines_of_concurrent_calls_are_each_kept(
    server: RpcServer, transport: Any
) -> None:
    long = Peer(await transport.dial(server.address))
    short = Peer(await transport.dial(server.address))
    try:
        patient = asyncio.create_task(
            long.call(request("Say.Slow", {"name": "0.4"}, Timeout=str(5 * 10**9)))
        )
        await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        began = loop.time()
        hurried = await short.call(request("Say.Slow", {"name": "30"}, Timeout=str(10**8)))
        assert error_of(hurried)["code"] == 408
        assert loop.time() - began < 0.35  # not held up by the longer deadline
        assert body_of(await patient) == {"msg": "slow done"}
    finally:
        await long.close()
        await short.close()


async def test_after_a_deadline_the_connection_and_timeouts_still_work(peer: Peer) -> None:
    stubborn = await peer.call(request("Say.Stubborn", Timeout=str(10**8)))
    assert error_of(stubborn)["code"] == 408
    expired = await peer.call(request("Say.Slow", {"name": "30"}, Timeout=str(10**8)))
    assert error_of(expired)["code"] == 408
    assert body_of(await peer.call(request("Say.OwnTimeout"))) == "own timeout"
    assert body_of(await peer.call(request("Say.Hello", {"name": "z"}))) == {"msg": "Hello z"}


async def test_call_within_its_deadline_succeeds(peer: Peer) -> None:
    message = request("Say.Slow", {"name": "0.01"}, Timeout="5000000000")
    assert body_of(await peer.call(message)) == {"msg": "slow done"}


async def test_sync_handler_runs_in_a_thread_with_metadata(peer: Peer, say: Say) -> None:
    reply = await peer.call(request("Say.Blocking", {"name": "s"}, X_User="ann"))
    assert body_of(reply) == {"msg": "sync s ann"}
    assert say.thread_names
    assert say.thread_names[0] != "MainThread"


async def test_metadata_is_visible_without_hop_headers(peer: Peer) -> None:
    message = request(
        "Say.Whoami", Micro_From_Service="go.micro.cli.greeter", X_Trace_Id="t1", Timeout="9999"
    )
    metadata = body_of(await peer.call(message))["metadata"]
    assert metadata == {"Micro-From-Service": "go.micro.cli.greeter", "X-Trace-Id": "t1"}
    second = body_of(await peer.call(request("Say.Whoami")))["metadata"]
    assert second == {}


def _recording(name: str, seen: list[str]) -> Any:
    def wrapper(next_call: HandlerFunc) -> HandlerFunc:
        async def call(req: Request) -> Any:
            seen.append(f"{name}>{req.endpoint}")
            result = await next_call(req)
            seen.append(f"<{name}")
            return result

        return call

    return wrapper


async def test_wrappers_run_in_order_around_the_handler(
    make_server: MakeServer, say: Say, transport: Any
) -> None:
    seen: list[str] = []
    server = await make_server(say, wrappers=[_recording("a", seen), _recording("b", seen)])
    peer = Peer(await transport.dial(server.address))
    try:
        assert body_of(await peer.call(request("Say.Hello", {"name": "w"})))
    finally:
        await peer.close()
    assert seen == ["a>Say.Hello", "b>Say.Hello", "<b", "<a"]


async def test_wrapper_can_short_circuit_and_see_the_request(
    make_server: MakeServer, say: Say, transport: Any
) -> None:
    seen: list[Request] = []

    def guard(next_call: HandlerFunc) -> HandlerFunc:
        async def call(req: Request) -> Any:
            seen.append(req)
            if req.metadata.get("X-Token") != "ok":
                return {"msg": "denied"}
            return await next_call(req)

        return call

    server: RpcServer = await make_server(say, wrappers=[guard])
    peer = Peer(await transport.dial(server.address))
    try:
        denied = await peer.call(request("Say.Hello", {"name": "w"}))
        allowed = await peer.call(request("Say.Hello", {"name": "w"}, X_Token="ok"))
    finally:
        await peer.close()
    assert body_of(denied) == {"msg": "denied"}
    assert body_of(allowed) == {"msg": "Hello w"}
    first = seen[0]
    assert (first.service, first.endpoint, first.method) == (SERVICE, "Say.Hello", "Say.Hello")
    assert first.content_type == "application/json"
    assert first.body.name == "w"
    assert not first.stream
    assert first.header["Micro-Endpoint"] == "Say.Hello"
