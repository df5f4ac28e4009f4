"""The proxy's HTTP routes in-process (httpx over ASGI), over real services on memory
backends."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import pytest

from micro.broker import Event
from micro.registry import Node, Service
from micro.testing import eventually
from micro.toolkit.api.auth import static_tokens
from tests.toolkit.proxy.conftest import TOKEN, ProxyStack

ERROR_KEYS = {"id", "code", "detail", "status"}


def error_of(rsp: Any, status: int) -> dict[str, Any]:
    assert rsp.status_code == status, rsp.text
    assert rsp.headers["content-type"] == "application/json"
    err: dict[str, Any] = rsp.json()
    assert set(err) == ERROR_KEYS
    assert err["code"] == status
    return err


def node_service(name: str, port: int = 9) -> dict[str, Any]:
    return {
        "name": name,
        "version": "1",
        "nodes": [{"id": f"{name}-1", "address": f"10.0.0.1:{port}"}],
    }


# -- /health and unknown routes -------------------------------------------------------------


async def test_health_answers_without_a_token(stack: ProxyStack) -> None:
    _, http = await stack.proxy(auth=static_tokens([TOKEN]))
    rsp = await http.get("/health")
    assert rsp.status_code == 200
    body = rsp.json()
    assert body["status"] == "ok"
    assert body["version"]
    assert "app" not in body
    assert stack.broker.capabilities  # the memory broker keeps some: they must show
    assert body["broker"] == {
        "name": stack.broker.name,
        "capabilities": sorted(stack.broker.capabilities),
    }
    error_of(await http.post("/health"), 405)


class StubCompanion:
    def __init__(self) -> None:
        self.healthy = True
        self.calls: list[str] = []

    async def start(self) -> None:
        self.calls.append("start")

    async def close(self) -> None:
        self.calls.append("close")

    def status(self) -> dict[str, Any]:
        return {"name": "app", "address": "127.0.0.1:3000", "healthy": self.healthy}


async def test_health_reports_the_companion_app(stack: ProxyStack) -> None:
    app = stack.app()
    companion = app.companion = StubCompanion()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://proxy")
    stack.exits.push_async_callback(http.aclose)
    rsp = await http.get("/health")
    assert rsp.status_code == 200
    assert rsp.json()["app"] == companion.status()
    assert companion.calls == ["start"]
    companion.healthy = False
    rsp = await http.get("/health")
    assert rsp.status_code == 503
    assert rsp.json()["status"] == "unhealthy"
    await app.close()
    assert companion.calls == ["start", "close"]


@pytest.mark.parametrize("path", ["/", "/nothing", "/registry/x", "/greeter/say-hello"])
async def test_unknown_routes_are_404_json(stack: ProxyStack, path: str) -> None:
    _, http = await stack.proxy()
    err = error_of(await http.get(path), 404)
    assert err["id"] == "go.micro.proxy"


# -- /registry ------------------------------------------------------------------------------


async def test_registry_lists_every_service_as_a_json_array(stack: ProxyStack) -> None:
    _, http = await stack.proxy()
    rsp = await http.get("/registry")
    assert rsp.status_code == 200
    assert rsp.headers["content-type"] == "application/json"
    names = {s["name"] for s in rsp.json()}
    assert {"greeter", "calc", "failing"} <= names


async def test_registry_gets_one_service_with_nodes_and_endpoints(stack: ProxyStack) -> None:
    _, http = await stack.proxy()
    rsp = await http.get("/registry", params={"service": "greeter"})
    assert rsp.status_code == 200
    [svc] = rsp.json()
    assert svc["name"] == "greeter"
    assert svc["nodes"][0]["address"].startswith("127.0.0.1:")
    assert "Greeter.SayHello" in {e["name"] for e in svc["endpoints"]}
    err = error_of(await http.get("/registry", params={"service": "nobody"}), 404)
    assert "nobody" in err["detail"]


async def test_registry_register_with_ttl_and_deregister(stack: ProxyStack) -> None:
    _, http = await stack.proxy()
    rsp = await http.post("/registry", params={"ttl": "30s"}, json=node_service("remote"))
    assert (rsp.status_code, rsp.json()) == (200, {})
    [svc] = await stack.registry.get_service("remote")
    assert svc.nodes == [Node(id="remote-1", address="10.0.0.1:9")]
    rsp = await http.request("DELETE", "/registry", json=node_service("remote"))
    assert (rsp.status_code, rsp.json()) == (200, {})
    assert "remote" not in {s.name for s in await stack.registry.list_services()}
    # a ttl in plain seconds expires
    await http.post("/registry", params={"ttl": "0.2"}, json=node_service("brief"))
    assert await stack.registry.get_service("brief")

    async def gone() -> bool:
        return "brief" not in {s.name for s in await stack.registry.list_services()}

    await eventually(gone, timeout=3)


@pytest.mark.parametrize(
    ("params", "body", "needle"),
    [
        ({}, b'{"name": ', "invalid service"),
        ({}, b"[1, 2]", "invalid service"),
        ({}, b"", "empty body"),
        ({}, b'{"version": "1"}', "invalid service"),
        ({"ttl": "soon"}, json.dumps(node_service("x")).encode(), "invalid ttl"),
        ({"ttl": "-5s"}, json.dumps(node_service("x")).encode(), "invalid ttl"),
        ({"ttl": "0"}, json.dumps(node_service("x")).encode(), "invalid ttl"),
    ],
)
async def test_registry_bad_input_is_400(
    stack: ProxyStack, params: dict[str, str], body: bytes, needle: str
) -> None:
    _, http = await stack.proxy()
    err = error_of(await http.post("/registry", params=params, content=body), 400)
    assert needle in err["detail"]
    assert err["id"] == "go.micro.proxy"
    assert "x" not in {s.name for s in await stack.registry.list_services()}


async def test_registry_wrong_method_is_405_with_allow(stack: ProxyStack) -> None:
    _, http = await stack.proxy()
    rsp = await http.put("/registry", json=node_service("x"))
    error_of(rsp, 405)
    assert rsp.headers["allow"] == "GET, POST, DELETE"


async def test_registry_allow_list(stack: ProxyStack) -> None:
    _, http = await stack.proxy(allow_services=("greet*", "calc"))
    names = {s["name"] for s in (await http.get("/registry")).json()}
    assert names == {"greeter", "calc"}
    err = error_of(await http.get("/registry", params={"service": "failing"}), 403)
    assert err["detail"] == "service 'failing' is not allowed through this proxy"
    error_of(await http.post("/registry", json=node_service("outsider")), 403)
    assert "outsider" not in {s.name for s in await stack.registry.list_services()}
    assert (await http.post("/registry", json=node_service("greeter-2"))).status_code == 200


# -- /rpc -----------------------------------------------------------------------------------


async def test_rpc_calls_with_json_form_and_string_request(stack: ProxyStack) -> None:
    _, http = await stack.proxy()
    call = {"service": "greeter", "endpoint": "Greeter.SayHello", "request": {"name": "John"}}
    rsp = await http.post("/rpc", json=call)
    assert (rsp.status_code, rsp.json()) == (200, {"msg": "Hello John"})
    assert rsp.headers["content-type"] == "application/json"
    as_string = {"service": "greeter", "method": "Greeter.SayHello", "request": '{"name":"Ann"}'}
    assert (await http.post("/rpc", json=as_string)).json() == {"msg": "Hello Ann"}
    form = {"service": "greeter", "endpoint": "Greeter.SayHello", "request": '{"name":"F"}'}
    assert (await http.post("/rpc", data=form)).json() == {"msg": "Hello F"}


async def test_rpc_to_an_address(stack: ProxyStack) -> None:
    _, http = await stack.proxy()
    [svc] = await stack.registry.get_service("calc")
    call = {
        "service": "calc",
        "endpoint": "Calc.Add",
        "request": {"a": 1, "b": 2},
        "address": svc.nodes[0].address,
    }
    assert (await http.post("/rpc", json=call)).json() == {"total": 3.0}


@pytest.mark.parametrize(
    ("call", "status", "error_id", "detail"),
    [
        ({"service": "nobody", "endpoint": "X.Y"}, 404, None, "nobody"),
        ({"service": "failing", "endpoint": "Failing.Forbid"}, 403, "failing", "no entry"),
        ({"service": "failing", "endpoint": "Failing.Crash"}, 500, "failing", "boom"),
        ({"service": "greeter", "endpoint": "Greeter.Nothing"}, 404, None, "Greeter.Nothing"),
        ({"service": "calc", "endpoint": "Calc.Add", "request": {"a": "x"}}, 400, None, "a"),
    ],
)
async def test_rpc_errors_pass_through_unchanged(
    stack: ProxyStack, call: dict[str, Any], status: int, error_id: str | None, detail: str
) -> None:
    _, http = await stack.proxy()
    err = error_of(await http.post("/rpc", json=call), status)
    assert detail in err["detail"]
    if error_id is not None:
        assert err["id"] == error_id
    assert err["id"] != "go.micro.proxy"


async def test_rpc_timeout_header_gives_408(stack: ProxyStack) -> None:
    _, http = await stack.proxy()
    call = {"service": "failing", "endpoint": "Failing.Slow", "request": {"seconds": 5}}
    rsp = await http.post("/rpc", json=call, headers={"Timeout": "0.3"})
    err = error_of(rsp, 408)
    assert err["status"] == "Request Timeout"


async def test_rpc_headers_are_metadata_but_not_authorization(stack: ProxyStack) -> None:
    _, http = await stack.proxy(auth=static_tokens([TOKEN]))
    call = {"service": "headers", "endpoint": "Headers.Echo"}
    rsp = await http.post(
        "/rpc", json=call, headers={"Authorization": f"Bearer {TOKEN}", "X-User": "alice"}
    )
    meta = rsp.json()
    assert meta["X-User"] == "alice"
    assert "Authorization" not in meta


@pytest.mark.parametrize(
    ("body", "headers", "needle"),
    [
        (b'{"service": ', {}, "invalid JSON body"),
        (b'{"endpoint": "Greeter.SayHello"}', {}, "invalid service"),
        (b'{"service": "greeter"}', {}, "invalid endpoint"),
        (b"[]", {}, "JSON object"),
        (b'{"service": "greeter", "endpoint": "G.S", "address": "nowhere"}', {}, "address"),
        (b'{"service": "greeter", "endpoint": "G.S"}', {"Timeout": "soon"}, "Timeout"),
    ],
)
async def test_rpc_bad_input_is_400(
    stack: ProxyStack, body: bytes, headers: dict[str, str], needle: str
) -> None:
    _, http = await stack.proxy()
    err = error_of(await http.post("/rpc", content=body, headers=headers), 400)
    assert needle in err["detail"]
    assert err["id"] == "go.micro.proxy"


async def test_rpc_oversized_body_is_413_and_wrong_method_405(stack: ProxyStack) -> None:
    _, http = await stack.proxy(max_body=64)
    big = {"service": "greeter", "endpoint": "Greeter.SayHello", "request": {"name": "x" * 100}}
    error_of(await http.post("/rpc", json=big), 413)
    rsp = await http.get("/rpc")
    error_of(rsp, 405)
    assert rsp.headers["allow"] == "POST"


async def test_rpc_allow_list(stack: ProxyStack) -> None:
    _, http = await stack.proxy(allow_services=("greeter",))
    ok = {"service": "greeter", "endpoint": "Greeter.SayHello", "request": {"name": "J"}}
    assert (await http.post("/rpc", json=ok)).status_code == 200
    err = error_of(await http.post("/rpc", json={"service": "calc", "endpoint": "Calc.Add"}), 403)
    assert err["detail"] == "service 'calc' is not allowed through this proxy"
    # an address must then be a node of the allowed service: no reaching any host:port
    [calc] = await stack.registry.get_service("calc")
    [greeter] = await stack.registry.get_service("greeter")
    sneaky = {**ok, "address": calc.nodes[0].address}
    error_of(await http.post("/rpc", json=sneaky), 403)
    direct = {**ok, "address": greeter.nodes[0].address}
    assert (await http.post("/rpc", json=direct)).json() == {"msg": "Hello J"}


# -- /broker --------------------------------------------------------------------------------


async def _subscribe(stack: ProxyStack, topic: str) -> asyncio.Queue[Event]:
    got: asyncio.Queue[Event] = asyncio.Queue()

    async def handler(event: Event) -> None:
        await got.put(event)

    sub = await stack.broker.subscribe(topic, handler)
    stack.exits.push_async_callback(sub.unsubscribe)
    return got


async def test_broker_publish_passes_the_headers(stack: ProxyStack) -> None:
    got = await _subscribe(stack, "events")
    _, http = await stack.proxy(auth=static_tokens([TOKEN]))
    headers = [
        ("Authorization", f"Bearer {TOKEN}"),
        ("Content-Type", "application/json"),
        ("x-trace", "a"),
        ("X-Trace", "b"),
    ]
    rsp = await http.post(
        "/broker", params={"topic": "events"}, content=b'{"id":1}', headers=headers
    )
    assert (rsp.status_code, rsp.json()) == (200, {})
    event = await asyncio.wait_for(got.get(), 5)
    assert event.message.body == b'{"id":1}'
    header = dict(event.message.header)
    assert header["Content-Type"] == "application/json"
    assert header["X-Trace"] == "a, b"
    for dropped in ("Authorization", "Host", "Content-Length"):
        assert dropped not in header


async def test_broker_publish_a_frame_exactly(stack: ProxyStack) -> None:
    got = await _subscribe(stack, "framed")
    _, http = await stack.proxy()
    frame = {
        "Header": {"Micro-Id": "m-1", "Content-Type": "application/octet-stream"},
        "Body": base64.b64encode(b"\x00\xffraw").decode(),
    }
    rsp = await http.post(
        "/broker", params={"topic": "framed", "frame": "1"}, json=frame, headers={"X-No": "1"}
    )
    assert rsp.status_code == 200
    event = await asyncio.wait_for(got.get(), 5)
    assert event.message.body == b"\x00\xffraw"
    assert dict(event.message.header) == frame["Header"]


@pytest.mark.parametrize(
    ("params", "body", "status", "needle"),
    [
        ({}, b"x", 400, "missing topic"),
        ({"topic": "a b"}, b"x", 400, "spaces"),
        ({"topic": "t" * 300}, b"x", 400, "longer"),
        ({"topic": "t", "frame": "1"}, b"not json", 400, "invalid frame"),
        ({"topic": "t", "frame": "1"}, b'{"Body": "***"}', 400, "invalid frame"),
        ({"topic": "secret.x"}, b"x", 403, "topic 'secret.x' is not allowed through this proxy"),
    ],
)
async def test_broker_bad_input(
    stack: ProxyStack, params: dict[str, str], body: bytes, status: int, needle: str
) -> None:
    _, http = await stack.proxy(allow_topics=("t*", "a*"))
    err = error_of(await http.post("/broker", params=params, content=body), status)
    assert needle in err["detail"]


async def test_broker_wrong_method_and_oversized_body(stack: ProxyStack) -> None:
    _, http = await stack.proxy(max_body=10)
    rsp = await http.get("/broker", params={"topic": "t"})
    error_of(rsp, 405)
    assert rsp.headers["allow"] == "POST"
    error_of(await http.post("/broker", params={"topic": "t"}, content=b"x" * 11), 413)


async def test_broker_unreachable_is_503(stack: ProxyStack) -> None:
    from micro.broker.nats import NatsBroker

    dead = NatsBroker(address="127.0.0.1:1", connect_timeout=0.5)
    _, http = await stack.proxy(broker=dead)
    err = error_of(await http.post("/broker", params={"topic": "t"}, content=b"x"), 503)
    assert err["detail"].startswith("broker unavailable: ")


# -- auth and limits ------------------------------------------------------------------------


async def test_auth_refuses_without_the_token(stack: ProxyStack) -> None:
    _, http = await stack.proxy(auth=static_tokens([TOKEN]))
    for method, path in (("GET", "/registry"), ("POST", "/rpc"), ("POST", "/broker")):
        rsp = await http.request(method, path)
        error_of(rsp, 401)
        assert rsp.headers["www-authenticate"].startswith("Bearer")
        rsp = await http.request(method, path, headers={"Authorization": "Bearer wrong"})
        error_of(rsp, 401)
    ok = await http.get("/registry", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200


async def test_rate_limit_is_429_with_retry_after(stack: ProxyStack) -> None:
    _, http = await stack.proxy(rate_limit=1, rate_burst=2)
    assert [(await http.get("/registry")).status_code for _ in range(2)] == [200, 200]
    rsp = await http.get("/registry")
    error_of(rsp, 429)
    assert int(rsp.headers["retry-after"]) >= 1


def _layers(app: Any) -> list[str]:
    names = []
    while hasattr(app, "app"):
        names.append(type(app).__name__)
        app = app.app
    return names


async def test_a_request_passes_only_the_middleware_turned_on(stack: ProxyStack) -> None:
    """A layer turned off costs an HTTP request nothing; making refusals readable is for
    WebSockets only (see benchmarks/README.md, micro proxy)."""
    bare = stack.app()
    assert _layers(bare._app) == ["HeaderCheck"]
    assert _layers(bare._socket_app) == ["WebSocketRefusals", "HeaderCheck"]
    full = stack.app(access_log=True, rate_limit=5, auth=static_tokens([TOKEN]))
    assert _layers(full._app) == ["AccessLog", "HeaderCheck", "RateLimit", "Auth"]
    assert _layers(full._socket_app) == [
        "AccessLog",
        "WebSocketRefusals",
        "HeaderCheck",
        "RateLimit",
        "Auth",
    ]
    bare.set_auth(static_tokens([TOKEN]))
    assert _layers(bare._app) == ["HeaderCheck", "Auth"]


async def test_registered_service_shape_round_trips(stack: ProxyStack) -> None:
    """What POST registers is what GET returns (go-micro's JSON both ways)."""
    _, http = await stack.proxy()
    svc = Service(
        name="shape",
        version="2",
        metadata={"k": "v"},
        nodes=[Node(id="shape-1", address="10.0.0.2:80", metadata={"m": "n"})],
    )
    import msgspec

    await http.post("/registry", content=msgspec.json.encode(svc))
    [got] = (await http.get("/registry", params={"service": "shape"})).json()
    assert msgspec.convert(got, Service) == svc
