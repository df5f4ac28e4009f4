"""The gateway in-process: real RpcServers on memory backends, requests through httpx."""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from typing import Any

import pytest

from micro.broker import Event
from micro.errors import MicroError
from micro.testing import eventually
from micro.toolkit.api._errors import http_error
from micro.toolkit.api.proto import Event as ApiEvent
from tests.toolkit.api.conftest import Stack
from tests.toolkit.api.services import Calc

ERROR_KEYS = {"id", "code", "detail", "status"}


def error_of(body: bytes, status: int) -> dict[str, object]:
    err: dict[str, object] = json.loads(body)
    assert set(err) == ERROR_KEYS
    assert err["code"] == status
    return err


async def test_rpc_post_json_and_form_typed_json(stack: Stack) -> None:
    _, http = await stack.gateway()
    rsp = await http.post("/greeter/say-hello", content=b'{"name": "John"}')
    assert (rsp.status_code, rsp.json()) == (200, {"msg": "Hello John"})
    assert rsp.headers["content-type"] == "application/json"
    # curl -d sends JSON as a form: it is read as JSON
    form_typed = {"content-type": "application/x-www-form-urlencoded"}
    rsp = await http.post("/greeter/say-hello", content=b'{"name":"Ann"}', headers=form_typed)
    assert rsp.json() == {"msg": "Hello Ann"}
    rsp = await http.post("/greeter/say-hello", data={"name": "Form"})
    assert rsp.json() == {"msg": "Hello Form"}


async def test_rpc_get_query_is_typed_by_the_schema(stack: Stack) -> None:
    _, http = await stack.gateway()
    rsp = await http.get(
        "/calc/add", params={"a": "2", "b": "40", "scale": "0.5", "negate": "true"}
    )
    assert (rsp.status_code, rsp.json()) == (200, {"total": -21.0})
    rsp = await http.get("/calc/add", params={"a": "two"})
    assert error_of(rsp.content, 400)["detail"]


async def test_namespace_can_be_empty(stack: Stack) -> None:
    await stack.serve("greeter", *_greeter())
    _, http = await stack.gateway(namespace="")
    rsp = await http.post("/greeter/say-hello", json={"name": "Bare"})
    assert rsp.json() == {"msg": "Hello Bare"}


def _greeter() -> list[object]:
    from examples.greeter.server import Greeter

    return [Greeter()]


@pytest.mark.parametrize(
    ("path", "body", "headers", "status"),
    [
        ("/greeter/say-hello", b'{"name":', {}, 400),
        ("/greeter/say-hello", b"<x/>", {"content-type": "application/xml"}, 415),
        ("/greeter/say-hello", b'{"name": 3}', {}, 400),
        ("/nobody/say-hello", b"{}", {}, 404),
        ("/greeter/unknown-method", b"{}", {}, 404),
        ("/a b/c", b"{}", {}, 404),
        ("/failing/forbid", b"{}", {}, 403),
        ("/failing/crash", b"{}", {}, 500),
    ],
)
async def test_errors_keep_codes_with_json_bodies(
    stack: Stack, path: str, body: bytes, headers: dict[str, str], status: int
) -> None:
    _, http = await stack.gateway()
    rsp = await http.post(path, content=body, headers=headers)
    assert rsp.status_code == status
    assert rsp.headers["content-type"] == "application/json"
    error_of(rsp.content, status)


async def test_unknown_service_is_404_with_a_clear_detail(stack: Stack) -> None:
    _, http = await stack.gateway()
    rsp = await http.post("/nobody/say-hello", json={})
    detail = error_of(rsp.content, 404)["detail"]
    assert "go.micro.api.nobody" in str(detail)
    assert "/nobody/say-hello" in str(detail)


async def test_method_not_allowed(stack: Stack) -> None:
    _, http = await stack.gateway()
    rsp = await http.put("/greeter/say-hello", json={})
    assert rsp.status_code == 405
    assert rsp.headers["allow"] == "GET, POST"


async def test_timeout_is_504(stack: Stack) -> None:
    _, http = await stack.gateway(timeout=0.3)
    rsp = await http.post("/failing/slow", json={"seconds": 3})
    error_of(rsp.content, 504)
    # the Timeout header (seconds) shortens one call
    _, http = await stack.gateway()
    rsp = await http.post("/failing/slow", json={"seconds": 3}, headers={"Timeout": "0.2"})
    assert rsp.status_code == 504
    rsp = await http.post("/failing/slow", json={}, headers={"Timeout": "soon"})
    assert rsp.status_code == 400


async def test_unreachable_node_is_502(stack: Stack) -> None:
    from micro.registry import Node, Service

    ghost = Service("go.micro.api.ghost", nodes=[Node(id="ghost-1", address="127.0.0.1:1")])
    await stack.registry.register(ghost)
    _, http = await stack.gateway()
    rsp = await http.post("/ghost/x", json={})
    error_of(rsp.content, 502)


def test_error_mapping_of_plain_text_and_odd_codes() -> None:
    plain = http_error(MicroError.parse("something broke"))
    assert (plain.code, plain.detail) == (500, "error during request: something broke")
    assert http_error(MicroError("x", code=302)).code == 500
    assert http_error(RuntimeError("x")).code == 500


async def test_body_size_limit(stack: Stack) -> None:
    _, http = await stack.gateway(max_body=1000)
    big = b'{"name": "' + b"x" * 2000 + b'"}'
    rsp = await http.post("/greeter/say-hello", content=big)
    error_of(rsp.content, 413)

    async def chunks():  # no Content-Length: counted while reading
        for _ in range(5):
            yield b"x" * 400

    rsp = await http.post("/greeter/say-hello", content=chunks())
    assert rsp.status_code == 413
    rsp = await http.post("/greeter/say-hello", content=b'{"name": "small"}')
    assert rsp.status_code == 200


async def test_slow_body_is_408(stack: Stack) -> None:
    gw, _ = await stack.gateway(read_timeout=0.2)
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        await asyncio.sleep(5)
        return {"type": "http.request", "body": b"{}"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/greeter/say-hello",
        "headers": [(b"content-length", b"2")],
        "query_string": b"",
    }
    async with asyncio.timeout(3):
        await gw(scope, receive, send)
    assert sent[0]["status"] == 408


async def test_api_handler_passes_the_whole_request(stack: Stack) -> None:
    _, http = await stack.gateway(handler="api")
    rsp = await http.post("/shop/items?page=2", content=b"raw body", headers={"User-Agent": "t/1"})
    assert rsp.status_code == 201
    assert rsp.headers["x-shop"] == "open"
    assert rsp.headers["content-type"] == "application/json"
    echoed = rsp.json()
    assert echoed["method"] == "POST"
    assert echoed["path"] == "/shop/items"
    assert echoed["get"] == {"page": ["2"]}
    assert echoed["body"] == "raw body"
    assert echoed["agent"] == ["t/1"]
    assert echoed["url"] == "/shop/items?page=2"
    rsp = await http.post("/shop/items", data={"a": "1"})
    assert rsp.json()["post"] == {"a": ["1"]}
    assert rsp.json()["body"] == ""


async def test_meta_routes_by_endpoint_metadata(stack: Stack) -> None:
    _, http = await stack.gateway()  # handler meta is the default
    rsp = await http.post("/hello", json={"name": "Meta"})
    assert rsp.json() == {"msg": "Hello Meta"}
    rsp = await http.get("/hello")  # method not in the endpoint's list: falls back to rpc rules
    assert rsp.status_code == 404
    rsp = await http.get("/store/anything?x=1")  # Shop.Items declared handler api
    assert rsp.status_code == 201
    assert rsp.json()["get"] == {"x": ["1"]}
    rsp = await http.post("/calc/add", json={"a": 1, "b": 2})  # no metadata: rpc rules
    assert rsp.json() == {"total": 3.0}


async def test_event_handler_publishes_api_events(stack: Stack) -> None:
    got: asyncio.Queue[Event] = asyncio.Queue()

    async def on_event(event: Event) -> None:
        await got.put(event)

    sub = await stack.broker.subscribe("go.micro.api.user", on_event)
    _, http = await stack.gateway(handler="event")
    rsp = await http.post("/user/login/john", content=b'{"at": 1}')
    assert rsp.status_code == 200
    event = await asyncio.wait_for(got.get(), 2)
    import msgspec

    body = msgspec.json.decode(event.message.body, type=ApiEvent)
    assert (body.name, body.data, body.id) == ("login.john", '{"at": 1}', rsp.json()["id"])
    assert event.message.header["Content-Type"] == "application/json"
    rsp = await http.get("/user/logout?who=ann")
    body = msgspec.json.decode((await asyncio.wait_for(got.get(), 2)).message.body, type=ApiEvent)
    assert (body.name, json.loads(body.data)) == ("logout", {"who": "ann"})
    await sub.unsubscribe()


async def test_rpc_endpoint_is_off_by_default(stack: Stack) -> None:
    _, http = await stack.gateway()
    rsp = await http.post("/rpc", json={"service": "go.micro.api.greeter"})
    assert rsp.status_code == 404


async def test_rpc_endpoint(stack: Stack) -> None:
    _, http = await stack.gateway(enable_rpc=True)
    call = {"service": "go.micro.api.calc", "endpoint": "Calc.Add", "request": {"a": 1, "b": 1}}
    assert (await http.post("/rpc", json=call)).json() == {"total": 2.0}
    call = {"service": "go.micro.api.calc", "method": "Calc.Add", "request": '{"a": 5}'}
    assert (await http.post("/rpc", json=call)).json() == {"total": 5.0}
    form = {"service": "go.micro.api.calc", "endpoint": "Calc.Add", "request": '{"a": 7}'}
    assert (await http.post("/rpc", data=form)).json() == {"total": 7.0}
    rsp = await http.get("/rpc")
    assert rsp.status_code == 405
    assert rsp.headers["allow"] == "POST"
    for bad in ({}, {"service": "x"}, {"service": "x", "endpoint": 3}, [1]):
        rsp = await http.post("/rpc", json=bad)
        error_of(rsp.content, 400)
    rsp = await http.post("/rpc", json={**call, "request": "{bad"})
    assert rsp.status_code == 400


async def test_health_root_favicon(stack: Stack) -> None:
    _, http = await stack.gateway()
    rsp = await http.get("/health")
    assert rsp.json()["status"] == "ok"
    assert rsp.json()["services"] >= 4
    assert "version" in (await http.get("/")).json()
    assert (await http.get("/favicon.ico")).status_code == 404


async def test_cors(stack: Stack) -> None:
    _, http = await stack.gateway(cors_origins=("https://app.example",), cors_credentials=True)
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    rsp = await http.options("/greeter/say-hello", headers=preflight)
    assert rsp.status_code == 200
    assert rsp.headers["access-control-allow-origin"] == "https://app.example"
    assert "POST" in rsp.headers["access-control-allow-methods"]
    assert rsp.headers["access-control-allow-credentials"] == "true"
    rsp = await http.post(
        "/greeter/say-hello", json={"name": "c"}, headers={"Origin": "https://app.example"}
    )
    assert rsp.headers["access-control-allow-origin"] == "https://app.example"
    rsp = await http.options("/greeter/say-hello", headers={**preflight, "Origin": "https://evil"})
    assert rsp.status_code == 400
    _, plain = await stack.gateway()
    rsp = await plain.post(
        "/greeter/say-hello", json={"name": "c"}, headers={"Origin": "https://x"}
    )
    assert "access-control-allow-origin" not in rsp.headers


async def test_rate_limit_per_client(stack: Stack) -> None:
    _, http = await stack.gateway(rate_limit=1.0, rate_burst=3)
    codes = [(await http.post("/calc/add", json={"a": 1})).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    rsp = await http.post("/calc/add", json={"a": 1})
    assert int(rsp.headers["retry-after"]) >= 1
    error_of(rsp.content, 429)


async def test_auth_rejects_before_any_call(stack: Stack) -> None:
    from micro.toolkit.api.auth import static_tokens

    _, http = await stack.gateway(auth=static_tokens(["s3cret"]))
    before = Calc.calls
    rsp = await http.post("/calc/add", json={"a": 1})
    assert rsp.status_code == 401
    assert rsp.headers["www-authenticate"].startswith("Bearer")
    error_of(rsp.content, 401)
    bad = {"Authorization": "Bearer nope"}
    assert (await http.post("/calc/add", json={"a": 1}, headers=bad)).status_code == 401
    assert Calc.calls == before
    good = {"Authorization": "Bearer s3cret"}
    assert (await http.post("/calc/add", json={"a": 1}, headers=good)).status_code == 200
    assert Calc.calls == before + 1
    assert (await http.get("/health")).status_code == 200


async def open_sesame(token: str, scope: object) -> bool:
    """An ``--auth-function`` for the test below (async, as a real check would be)."""
    await asyncio.sleep(0)
    return token == "sesame"


async def test_auth_by_an_imported_function(stack: Stack) -> None:
    from micro.toolkit.api.auth import import_check

    _, http = await stack.gateway(auth=import_check("tests.toolkit.api.test_app:open_sesame"))

    async def status(token: str) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        return (await http.post("/calc/add", json={"a": 1}, headers=headers)).status_code

    assert (await status("sesame"), await status("other")) == (200, 401)


async def test_auth_by_service(stack: Stack) -> None:
    from micro.toolkit.api.auth import service_check

    check = service_check(stack.client, "go.micro.auth", "Auth.Verify")
    _, http = await stack.gateway(auth=check)

    async def status(token: str) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        return (await http.post("/calc/add", json={"a": 1}, headers=headers)).status_code

    assert await status("good") == 200
    assert await status("bad") == 401
    assert await status("refused") == 401
    await stack.servers[-1].stop(grace=0.1)  # the auth service is gone: the gateway fails
    assert await status("good") == 502


async def test_openapi_is_live(stack: Stack) -> None:
    gw, http = await stack.gateway()
    doc = (await http.get("/openapi.json")).json()
    assert doc["openapi"] == "3.1.0"
    op = doc["paths"]["/greeter/say-hello"]["post"]
    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert schema["required"] == ["name"]
    assert "/calc/add" in doc["paths"]
    assert "/rpc" not in doc["paths"]
    streams = {s["endpoint"] for s in doc["x-micro-streams"]}
    assert streams == {"Counter.Count", "Counter.Echo"}
    assert "/greeter/count" not in str(doc["paths"])

    class Late:
        async def ping(self, req: dict[str, str]) -> dict[str, str]:
            return {"pong": "1"}

    server = await stack.serve("go.micro.api.late", Late())
    await eventually(lambda: "/late/ping" in gw.document().decode())
    await server.stop(grace=0.1)
    await eventually(lambda: "/late/ping" not in gw.document().decode())
    page = (await http.get("/docs")).text
    assert "/greeter/say-hello" in page
    assert "Counter.Count" in page
