"""The proxy's WebSockets (watch, stream, subscribe) and its HTTP routes over real sockets:
uvicorn with the proxy's server config on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from micro.registry import Node, Service
from micro.toolkit.api.auth import static_tokens
from tests.toolkit.proxy.conftest import TOKEN, ProxyStack
from tests.toolkit.proxy.services import Ticker

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def recv_json(ws: ClientConnection, timeout: float = 5.0) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def close_code(ws: ClientConnection, timeout: float = 5.0) -> int | None:
    """The code the server closed with (frames still unread are dropped)."""
    async with asyncio.timeout(timeout):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            pass
    return ws.close_code


async def primed(stack: ProxyStack, ws: ClientConnection, name: str) -> None:
    """Return once the watch on ``ws`` reports changes: register ``name`` until it does."""
    probe = Service(name=name, nodes=[Node(id=f"{name}-probe", address="10.0.0.9:1")])
    async with asyncio.timeout(10):
        while True:
            await stack.registry.register(probe)
            try:
                result = await recv_json(ws, 0.2)
            except TimeoutError:
                continue
            if result["service"]["name"] == name:
                break
    await stack.registry.deregister(probe)
    while (await recv_json(ws))["action"] != "delete":
        pass


async def proxy_url(stack: ProxyStack, **options: Any) -> str:
    return await stack.served(stack.app(**options))


# -- over HTTP, through uvicorn ----------------------------------------------------------


async def test_http_routes_over_a_real_socket(stack: ProxyStack) -> None:
    address = await proxy_url(stack)
    async with httpx.AsyncClient(base_url=f"http://{address}", timeout=5) as http:
        assert (await http.get("/health")).json()["status"] == "ok"
        call = {"service": "greeter", "endpoint": "Greeter.SayHello", "request": {"name": "J"}}
        assert (await http.post("/rpc", json=call)).json() == {"msg": "Hello J"}
        rsp = await http.post("/rpc", json={"service": "nobody", "endpoint": "X.Y"})
        assert rsp.status_code == 404
        assert rsp.json()["code"] == 404


# -- the registry watch -------------------------------------------------------------------


async def test_watch_sends_each_change_and_leaves_out_disallowed(stack: ProxyStack) -> None:
    address = await proxy_url(stack, allow_services=("w-*",))
    async with connect(f"ws://{address}/registry") as ws:
        await primed(stack, ws, "w-probe")
        hidden = Service(name="hidden", nodes=[Node(id="h-1", address="10.0.0.1:1")])
        shown = Service(name="w-one", nodes=[Node(id="w-1", address="10.0.0.1:2")])
        await stack.registry.register(hidden)
        await stack.registry.register(shown)
        result = await recv_json(ws)
        assert result["action"] == "create"
        assert result["service"]["name"] == "w-one"
        assert result["service"]["nodes"] == [
            {"id": "w-1", "address": "10.0.0.1:2", "metadata": {}}
        ]
        await stack.registry.deregister(shown)
        result = await recv_json(ws)
        assert (result["action"], result["service"]["name"]) == ("delete", "w-one")


async def test_watch_of_one_service(stack: ProxyStack) -> None:
    address = await proxy_url(stack)
    async with connect(f"ws://{address}/registry?service=only") as ws:
        await primed(stack, ws, "only")
        await stack.registry.register(Service(name="other", nodes=[Node(id="o", address="a:1")]))
        await stack.registry.register(Service(name="only", nodes=[Node(id="n", address="a:2")]))
        result = await recv_json(ws)
        assert result["service"]["name"] == "only"


async def test_watch_of_a_disallowed_service_is_refused(stack: ProxyStack) -> None:
    address = await proxy_url(stack, allow_services=("greeter",))
    async with connect(f"ws://{address}/registry?service=calc") as ws:
        err = await recv_json(ws)
        assert err["error"]["code"] == 403
        assert await close_code(ws) == 4403


async def test_watch_ends_when_the_proxy_stops(stack: ProxyStack) -> None:
    app = stack.app()
    address = await stack.served(app)
    async with connect(f"ws://{address}/registry") as ws:
        await asyncio.sleep(0.2)
        app.end_streams()
        assert await close_code(ws) == 1001


# -- streams ------------------------------------------------------------------------------


async def test_server_stream(stack: ProxyStack) -> None:
    address = await proxy_url(stack)
    url = f"ws://{address}/rpc?service=greeter&endpoint=Counter.Count"
    async with connect(url) as ws:
        await ws.send(json.dumps({"to": 3, "delay": 0.01}))
        assert [await recv_json(ws) for _ in range(3)] == [{"n": 1}, {"n": 2}, {"n": 3}]
        assert await close_code(ws) == 1000


async def test_bidirectional_stream_with_close_send(stack: ProxyStack) -> None:
    address = await proxy_url(stack)
    async with connect(f"ws://{address}/rpc?service=greeter&endpoint=Counter.Echo") as ws:
        await ws.send(json.dumps({"text": "a"}))
        assert await recv_json(ws) == {"text": "A"}
        await ws.send(json.dumps({"text": "b"}))
        assert await recv_json(ws) == {"text": "B"}
        await ws.send(b"")  # close_send: the service's input ends, so does its stream
        assert await close_code(ws) == 1000


async def test_stream_cancelled_when_the_client_leaves(stack: ProxyStack) -> None:
    address = await proxy_url(stack)
    async with connect(f"ws://{address}/rpc?service=ticker&endpoint=Ticker.Forever") as ws:
        await ws.send("{}")
        assert await recv_json(ws) == {"n": 1}
        ended = Ticker.ended
        assert not ended.is_set()
    await asyncio.wait_for(ended.wait(), 5)


async def test_stream_with_a_timeout_ends_in_408(stack: ProxyStack) -> None:
    address = await proxy_url(stack)
    url = f"ws://{address}/rpc?service=ticker&endpoint=Ticker.Forever&timeout=0.3"
    async with connect(url) as ws:
        await ws.send("{}")
        frames = []
        async with asyncio.timeout(5):
            try:
                while True:
                    frames.append(json.loads(await ws.recv()))
            except ConnectionClosed:
                pass
        assert frames[0] == {"n": 1}
        assert frames[-1]["error"]["code"] == 408  # as a call's deadline: a Timeout
        assert ws.close_code == 4408


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("service=nobody&endpoint=X.Y", 4404),
        ("endpoint=X.Y", 4400),
        ("service=greeter", 4400),
        ("service=greeter&endpoint=Counter.Count&timeout=never", 4400),
        ("service=greeter&endpoint=Counter.Count&address=nowhere", 4400),
        ("service=calc&endpoint=Calc.Add", 4403),
    ],
)
async def test_stream_errors_are_a_frame_then_a_close_code(
    stack: ProxyStack, query: str, code: int
) -> None:
    address = await proxy_url(stack, allow_services=("greeter", "nobody"))
    async with connect(f"ws://{address}/rpc?{query}") as ws:
        if code == 4404:
            await ws.send("{}")  # the stream opens on the first message
        err = await recv_json(ws)
        assert set(err["error"]) == {"id", "code", "detail", "status"}
        assert err["error"]["code"] == code - 4000
        assert await close_code(ws) == code


async def test_unknown_websocket_route_is_4404(stack: ProxyStack) -> None:
    address = await proxy_url(stack)
    async with connect(f"ws://{address}/nothing") as ws:
        assert (await recv_json(ws))["error"]["code"] == 404
        assert await close_code(ws) == 4404


# -- broker subscriptions -----------------------------------------------------------------


async def test_subscribe_pushes_go_micro_frames(stack: ProxyStack) -> None:
    address = await proxy_url(stack)
    async with (
        connect(f"ws://{address}/broker?topic=news") as ws,
        httpx.AsyncClient(base_url=f"http://{address}") as http,
    ):
        # the handshake completes once the subscription is in place: nothing is missed
        rsp = await http.post("/broker?topic=news", content=b"hello", headers={"X-A": "1"})
        assert rsp.status_code == 200
        frame = await recv_json(ws)
        assert set(frame) == {"Header", "Body"}
        assert base64.b64decode(frame["Body"]) == b"hello"
        assert frame["Header"]["X-A"] == "1"


async def test_subscriber_frames_are_published_with_the_upgrade_content_type(
    stack: ProxyStack,
) -> None:
    address = await proxy_url(stack)
    url = f"ws://{address}/broker?topic=chat"
    async with (
        connect(url) as listener,
        connect(url, additional_headers={"Content-Type": "application/json"}) as talker,
        connect(f"ws://{address}/broker?topic=chat") as plain,
    ):
        await talker.send('{"say": "hi"}')
        frame = await recv_json(listener)
        assert base64.b64decode(frame["Body"]) == b'{"say": "hi"}'
        assert frame["Header"] == {"Content-Type": "application/json"}
        await plain.send("text")
        while base64.b64decode((frame := await recv_json(listener))["Body"]) != b"text":
            pass
        assert frame["Header"] == {"Content-Type": "text/plain"}


async def test_queue_subscribers_share_the_messages(stack: ProxyStack) -> None:
    address = await proxy_url(stack)
    url = f"ws://{address}/broker?topic=jobs&queue=workers"
    async with connect(url) as a, connect(url) as b, httpx.AsyncClient() as http:
        for n in range(6):
            await http.post(f"http://{address}/broker?topic=jobs", content=str(n).encode())
        got: list[bytes] = []
        for ws in (a, b):
            try:
                while True:
                    got.append(base64.b64decode((await recv_json(ws, 0.5))["Body"]))
            except TimeoutError:
                pass
        assert sorted(got) == [str(n).encode() for n in range(6)]


async def test_ack_mode_frames_carry_an_id_and_wait_for_the_answer(stack: ProxyStack) -> None:
    address = await proxy_url(stack)
    async with (
        connect(f"ws://{address}/broker?topic=acked&queue=q&ack=client") as ws,
        httpx.AsyncClient(base_url=f"http://{address}") as http,
    ):
        await http.post("/broker?topic=acked", content=b"one")
        await http.post("/broker?topic=acked", content=b"two")
        first = await recv_json(ws)
        assert base64.b64decode(first["Body"]) == b"one"
        assert first["Id"]
        with pytest.raises(TimeoutError):  # one unacknowledged frame at a time
            await recv_json(ws, 0.3)
        await ws.send(json.dumps({"Ack": first["Id"]}))
        second = await recv_json(ws)
        assert base64.b64decode(second["Body"]) == b"two"
        assert second["Id"] != first["Id"]


async def test_subscription_ends_when_the_proxy_stops(stack: ProxyStack) -> None:
    app = stack.app()
    address = await stack.served(app)
    async with connect(f"ws://{address}/broker?topic=t") as ws:
        app.end_streams()
        assert await close_code(ws) == 1001


@pytest.mark.parametrize(
    ("query", "code"),
    [("", 4400), ("topic=a%20b", 4400), ("topic=t&ack=server", 4400), ("topic=x", 4403)],
)
async def test_subscribe_bad_input(stack: ProxyStack, query: str, code: int) -> None:
    address = await proxy_url(stack, allow_topics=("t",))
    async with connect(f"ws://{address}/broker?{query}") as ws:
        assert (await recv_json(ws))["error"]["code"] == code - 4000
        assert await close_code(ws) == code


# -- auth and limits on WebSockets ---------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/registry", "/rpc?service=greeter&endpoint=Counter.Count", "/broker?topic=t"]
)
async def test_websockets_need_the_token(stack: ProxyStack, path: str) -> None:
    address = await proxy_url(stack, auth=static_tokens([TOKEN]))
    async with connect(f"ws://{address}{path}") as ws:
        assert await close_code(ws) == 4401
    async with connect(
        f"ws://{address}{path}", additional_headers={"Authorization": "Bearer x"}
    ) as ws:
        assert await close_code(ws) == 4401
    async with connect(f"ws://{address}{path}", additional_headers=AUTH) as ws:
        with pytest.raises(TimeoutError):  # open, waiting
            await asyncio.wait_for(ws.recv(), 0.3)


async def test_websocket_over_the_rate_limit_is_4429(stack: ProxyStack) -> None:
    address = await proxy_url(stack, rate_limit=1, rate_burst=1)
    async with connect(f"ws://{address}/registry") as ws:
        pass
    async with connect(f"ws://{address}/registry") as ws:
        err = await recv_json(ws)
        assert err["error"]["code"] == 429
        assert await close_code(ws) == 4429
