"""The dashboard's own routes over ASGI: pages, assets, /registry, /rpc, /health, /_/info,
and every bad input they can get."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from micro.registry import Endpoint, Node, Service, Value
from micro.toolkit.web import Dashboard
from micro.toolkit.web.pages import SNAPSHOT_BLOCK, STATIC_DIR, json_block
from tests.toolkit.web.conftest import ORIGIN, Env

HTML = {"accept": "text/html,application/xhtml+xml"}
JSON = {"accept": "application/json"}


async def raw_get(dash: Dashboard, path: str) -> tuple[int, bytes]:
    """GET ``path`` exactly as given (no client-side URL normalisation)."""
    status = 0
    body = b""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"dash")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        nonlocal status, body
        if message["type"] == "http.response.start":
            status = int(message["status"])  # type: ignore[call-overload]
        elif message["type"] == "http.response.body":
            body += message.get("body", b"")  # type: ignore[operator]

    await dash(scope, receive, send)  # type: ignore[arg-type]
    return status, body


@pytest.mark.parametrize(
    ("path", "page"),
    [
        ("/registry?service=greeter", "service"),
        ("/call", "call"),
        ("/client", "call"),
        ("/call?service=greeter&endpoint=Greeter.SayHello", "call"),
        ("/publish?topic=t", "publish"),
        ("/terminal", "terminal"),
        ("/cli", "terminal"),
    ],
)
async def test_pages_serve_their_shell(env: Env, path: str, page: str) -> None:
    http = await env.http(env.dashboard())
    rsp = await http.get(path, headers=HTML)
    assert rsp.status_code == 200
    assert rsp.headers["content-type"].startswith("text/html")
    assert rsp.content == (STATIC_DIR / f"{page}.html").read_bytes()
    assert rsp.headers["cache-control"] == "no-cache"
    assert "default-src 'self'" in rsp.headers["content-security-policy"]


TRICKY = "</script><script>alert(1)</script>"
"""A service name that would end a data block holding it as it is, and start a script."""
BLOCK = re.compile(rb'<script type="application/json" id="snapshot">(.*?)</script>', re.S)


@pytest.mark.parametrize("path", ["/", "/registry"])
async def test_services_page_carries_the_services_json(env: Env, path: str) -> None:
    """The services page comes with ``/_/services``'s JSON in its data block, escaped so
    that no name can end the block (or open a comment or a script) in the HTML parser."""
    await env.greeter("greeter")
    tricky = Service(
        TRICKY,
        version="<!--&\u2028\u2029-->",
        nodes=[Node("t-1", "127.0.0.1:1")],
    )
    await env.registry.register(tricky)
    http = await env.http(env.dashboard())
    rsp = await http.get(path, headers=HTML)
    assert rsp.status_code == 200
    assert rsp.headers["content-type"].startswith("text/html")
    assert rsp.headers["cache-control"] == "no-store"
    found = BLOCK.search(rsp.content)
    assert found is not None
    text = found.group(1)
    for raw in (b"<", b">", b"&", "\u2028".encode(), "\u2029".encode()):
        assert raw not in text
    assert json.loads(text) == (await http.get("/_/services")).json()
    assert TRICKY in [s["name"] for s in json.loads(text)["services"]]
    # Apart from the filled block, the page is index.html as it is.
    shell = (STATIC_DIR / "index.html").read_bytes()
    assert SNAPSHOT_BLOCK in shell
    assert rsp.content.replace(text, b"", 1) == shell
    head = await http.head(path, headers=HTML)
    assert (head.status_code, head.content) == (200, b"")
    assert int(head.headers["content-length"]) == len(rsp.content)


def test_json_block_escapes_keep_the_json() -> None:
    for value in [TRICKY, "<!--<script>", "a & b > c", "\u2028\u2029", "\\</script>", "é 中"]:
        data = json.dumps({"v": value}, ensure_ascii=False).encode()
        block = json_block(data)
        assert json.loads(block) == {"v": value}
        assert not any(c in block for c in b"<>&")


async def test_pages_refuse_other_methods(env: Env) -> None:
    http = await env.http(env.dashboard())
    rsp = await http.post("/call", content=b"x")
    assert rsp.status_code == 405
    assert rsp.headers["allow"] == "GET"
    assert rsp.json()["code"] == 405


async def test_static_etag_and_no_cache(env: Env) -> None:
    http = await env.http(env.dashboard())
    rsp = await http.get("/static/index.html")
    assert rsp.status_code == 200
    etag = rsp.headers["etag"]
    assert rsp.headers["cache-control"] == "no-cache"
    again = await http.get("/static/index.html", headers={"if-none-match": etag})
    assert again.status_code == 304
    assert again.content == b""
    other = await http.get("/static/index.html", headers={"if-none-match": '"other"'})
    assert other.status_code == 200
    head = await http.head("/static/index.html")
    assert (head.status_code, head.content) == (200, b"")
    assert int(head.headers["content-length"]) == len(rsp.content)


@pytest.mark.parametrize(
    "path",
    [
        "/static/../app.py",
        "/static/../../../../etc/passwd",
        "/static//etc/passwd",
        "/static/./index.html",
        "/static/..\\app.py",
        "/static/.hidden",
        "/static/",
        "/static/nope.js",
        "/static/index.html\x00.js",
    ],
)
async def test_static_refuses_traversal_and_unknown_files(env: Env, path: str) -> None:
    dash = env.dashboard()
    await dash.start()
    status, body = await raw_get(dash, path)
    assert status == 404
    assert json.loads(body)["code"] == 404


async def test_static_post_is_405(env: Env) -> None:
    http = await env.http(env.dashboard())
    assert (await http.post("/static/index.html")).status_code == 405


async def test_health_and_info(env: Env) -> None:
    http = await env.http(env.dashboard(namespace="acme.web"))
    health = await http.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    info = (await http.get("/_/info")).json()
    assert info["namespace"] == "acme.web"
    assert info["registry"] == "memory"
    assert info["auth"] is False
    assert isinstance(info["version"], str)
    assert isinstance(info["broker"], str)
    assert (await http.post("/health")).status_code == 405


async def test_unknown_api_path_is_json_404(env: Env) -> None:
    http = await env.http(env.dashboard())
    rsp = await http.get("/_/nothing", headers=HTML)
    assert rsp.status_code == 404
    assert rsp.json()["code"] == 404


async def test_registry_json_lists_every_service(env: Env) -> None:
    await env.greeter("greeter")
    await env.registry.register(
        Service(
            "other",
            version="2",
            metadata={"k": "v"},
            endpoints=[Endpoint("Other.Do", request=Value("Req", "Req", [Value("a", "int")]))],
            nodes=[Node("o-1", "127.0.0.1:1", {"m": "n"})],
        )
    )
    http = await env.http(env.dashboard())
    for headers in (JSON, {"content-type": "application/json"}):
        rsp = await http.get("/registry", headers=headers)
        assert rsp.status_code == 200
        assert rsp.headers["content-type"] == "application/json"
        services = rsp.json()["services"]
        assert [s["name"] for s in services] == ["greeter", "other"]
        other = services[1]
        assert other["version"] == "2"
        assert other["metadata"] == {"k": "v"}
        assert other["nodes"] == [{"id": "o-1", "address": "127.0.0.1:1", "metadata": {"m": "n"}}]
        assert other["endpoints"][0]["request"]["values"][0] == {
            "name": "a",
            "type": "int",
            "values": None,
        }


async def test_registry_json_one_service_and_unknown(env: Env) -> None:
    await env.greeter("greeter")
    http = await env.http(env.dashboard())
    rsp = await http.get("/registry", params={"service": "greeter"}, headers=JSON)
    assert rsp.status_code == 200
    (greeter,) = rsp.json()["services"]
    assert greeter["name"] == "greeter"
    assert any(e["name"] == "Greeter.SayHello" for e in greeter["endpoints"])
    missing = await http.get("/registry", params={"service": "nope"}, headers=JSON)
    assert missing.status_code == 404
    assert missing.json()["code"] == 404
    assert "nope" in missing.json()["detail"]
    assert (await http.post("/registry", headers=JSON)).status_code == 405


async def test_rpc_calls_through_the_gateway(env: Env) -> None:
    await env.greeter("greeter")
    http = await env.http(env.dashboard())
    call = {"service": "greeter", "endpoint": "Greeter.SayHello", "request": {"name": "Web"}}
    rsp = await http.post("/rpc", json=call, headers={"origin": ORIGIN})
    assert rsp.status_code == 200
    assert rsp.json() == {"msg": "Hello Web"}
    unknown = await http.post("/rpc", json={**call, "service": "nope"})
    assert unknown.status_code == 404
    bad = await http.post("/rpc", content=b"{bad", headers={"content-type": "application/json"})
    assert bad.status_code == 400
    assert (await http.post("/rpc", json={"service": "greeter"})).status_code == 400
    assert (await http.get("/rpc")).status_code == 405


async def test_huge_bodies_get_413(env: Env) -> None:
    await env.greeter("greeter")
    http = await env.http(env.dashboard(max_body=1000))
    call = {"service": "greeter", "endpoint": "Greeter.SayHello", "request": {"name": "x" * 2000}}
    assert (await http.post("/rpc", json=call)).status_code == 413
    assert (await http.post("/login", content=b"token=" + b"x" * 100_000)).status_code == 413


async def test_favicon_is_quiet(env: Env) -> None:
    http = await env.http(env.dashboard())
    rsp = await http.get("/favicon.ico", headers=HTML)
    assert rsp.status_code in (200, 204)
    assert b"Not found" not in rsp.content


async def test_starts_on_lifespan_and_closes(env: Env) -> None:
    dash = env.dashboard()
    url = await env.serve(dash)
    async with httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/health")).json()["status"] == "ok"
    assert dash._started  # started by the lifespan event, before any request


async def test_bad_options_are_refused(env: Env) -> None:
    with pytest.raises(ValueError, match="namespace"):
        env.dashboard(namespace="")
