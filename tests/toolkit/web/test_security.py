"""The dashboard's protections: security headers, the same-origin check, auth with the
login cookie, rate and header limits, the access log."""

from __future__ import annotations

import logging

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from micro.toolkit.api.auth import static_tokens
from tests.toolkit.web.conftest import ORIGIN, Env

HTML = {"accept": "text/html"}
TOKEN = "s3cret"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def assert_secured(rsp: httpx.Response) -> None:
    assert rsp.headers["content-security-policy"] == CSP
    assert rsp.headers["x-content-type-options"] == "nosniff"
    assert rsp.headers["referrer-policy"] == "same-origin"


async def test_security_headers_on_dashboard_answers_only(env: Env) -> None:
    await env.webapp("hello")
    http = await env.http(env.dashboard())
    for rsp in (
        await http.get("/", headers=HTML),
        await http.get("/_/info"),
        await http.get("/static/index.html"),
        await http.get("/nobody/", headers=HTML),
        await http.post("/rpc", json={}, headers={"origin": "http://evil"}),
    ):
        assert_secured(rsp)
    proxied = await http.get("/hello/echo")
    assert proxied.status_code == 200
    assert "content-security-policy" not in proxied.headers
    assert "referrer-policy" not in proxied.headers


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 404),  # curl, go-micro: no Origin; the call itself fails (no such service)
        ({"origin": ORIGIN}, 404),
        ({"origin": "http://dash:80"}, 404),  # the default port is the same origin
        ({"origin": "HTTP://DASH"}, 404),
        ({"origin": "http://evil.example"}, 403),
        ({"origin": "https://dash"}, 403),  # another scheme is another origin
        ({"origin": "http://dash:8082"}, 403),
        ({"origin": "null"}, 403),
        ({"sec-fetch-site": "cross-site"}, 403),
        ({"origin": ORIGIN, "sec-fetch-site": "same-origin"}, 404),
    ],
)
async def test_same_origin_check_on_posts(env: Env, headers: dict[str, str], status: int) -> None:
    http = await env.http(env.dashboard())
    call = {"service": "nope", "endpoint": "X.Y", "request": {}}
    rsp = await http.post("/rpc", json=call, headers=headers)
    assert rsp.status_code == status
    if status == 403:
        assert rsp.json()["code"] == 403


async def test_cross_origin_writes_never_reach_a_web_service(env: Env) -> None:
    await env.webapp("hello")
    http = await env.http(env.dashboard())
    evil = {"origin": "http://evil.example"}
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        rsp = await http.request(method, "/hello/echo", content=b"x", headers=evil)
        assert rsp.status_code == 403, method
    assert (await http.get("/hello/echo", headers=evil)).status_code == 200  # reads pass
    assert (await http.post("/hello/echo", headers={"origin": ORIGIN})).status_code == 200


async def test_websocket_from_another_origin_is_refused(env: Env) -> None:
    await env.webapp("hello")
    url = await env.serve(env.dashboard())
    ws_url = url.replace("http://", "ws://") + "/hello/ws"
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(ws_url, origin="http://evil.example"):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 403
    async with websockets.connect(ws_url, origin=url) as ws:  # type: ignore[arg-type]
        await ws.send("same")
        assert await ws.recv() == "echo:same"


async def test_auth_off_leaves_everything_open(env: Env) -> None:
    http = await env.http(env.dashboard())
    assert (await http.get("/_/info")).json()["auth"] is False
    assert (await http.get("/", headers=HTML)).status_code == 200
    login = await http.get("/login", headers=HTML)
    assert (login.status_code, login.headers["location"]) == (303, "/")


async def test_auth_on_refuses_without_a_token(env: Env) -> None:
    http = await env.http(env.dashboard(auth=static_tokens([TOKEN])))
    page = await http.get("/call", params={"service": "x"}, headers=HTML)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=/call%3Fservice%3Dx"
    api = await http.get("/_/info")
    assert api.status_code == 401
    assert api.headers["www-authenticate"].startswith("Bearer")
    assert api.json()["code"] == 401
    assert_secured(api)
    wrong = await http.get("/_/info", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    events = await http.get("/_/events", headers={"accept": "text/event-stream"})
    assert events.status_code == 401
    registry = await http.get("/registry", headers={"accept": "application/json"})
    assert registry.status_code == 401
    rpc = await http.post("/rpc", json={"service": "x", "endpoint": "Y.Z"})
    assert rpc.status_code == 401
    for open_path in ("/health", "/static/index.html", "/login"):
        assert (await http.get(open_path, headers=HTML)).status_code == 200, open_path


async def test_bearer_token_is_accepted(env: Env) -> None:
    http = await env.http(env.dashboard(auth=static_tokens([TOKEN])))
    rsp = await http.get("/_/info", headers={"authorization": f"Bearer {TOKEN}"})
    assert rsp.status_code == 200
    assert rsp.json()["auth"] is True


async def test_cookie_login_and_logout(env: Env) -> None:
    http = await env.http(env.dashboard(auth=static_tokens([TOKEN])))
    bad = await http.post("/login", data={"token": "nope", "next": "/call"})
    assert bad.status_code == 303
    assert bad.headers["location"] == "/login?error=invalid&next=/call"
    assert "set-cookie" not in bad.headers
    assert "micro_token" not in http.cookies
    good = await http.post("/login", data={"token": TOKEN, "next": "/call"})
    assert good.status_code == 303
    assert good.headers["location"] == "/call"
    cookie = good.headers["set-cookie"].lower()
    assert cookie.startswith(f"micro_token={TOKEN}")
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "path=/" in cookie
    assert (await http.get("/_/info")).status_code == 200  # the cookie jar sends it now
    assert (await http.get("/call", headers=HTML)).status_code == 200
    out = await http.post("/logout")
    assert out.status_code == 303
    assert "micro_token" not in http.cookies
    assert (await http.get("/_/info")).status_code == 401


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "\\\\evil", ""])
async def test_login_never_redirects_elsewhere(env: Env, target: str) -> None:
    http = await env.http(env.dashboard(auth=static_tokens([TOKEN])))
    rsp = await http.post("/login", data={"token": TOKEN, "next": target})
    assert rsp.status_code == 303
    assert rsp.headers["location"] == "/"


async def test_json_login_and_cross_origin_login(env: Env) -> None:
    http = await env.http(env.dashboard(auth=static_tokens([TOKEN])))
    assert (await http.post("/login", json={"token": "nope"})).status_code == 401
    ok = await http.post("/login", json={"token": TOKEN})
    assert (ok.status_code, ok.json()) == (200, {"ok": True})
    assert "micro_token" in ok.headers["set-cookie"]
    assert (
        await http.post("/login", content=b"{bad", headers={"content-type": "application/json"})
    ).status_code == 400
    assert (await http.put("/login")).status_code == 405
    forged = await http.post("/login", data={"token": TOKEN}, headers={"origin": "http://evil"})
    assert forged.status_code == 403


async def test_dashboard_credentials_stay_with_the_dashboard(env: Env) -> None:
    await env.webapp("hello")
    http = await env.http(env.dashboard(auth=static_tokens([TOKEN])))
    assert (await http.get("/hello/echo")).status_code == 401
    rsp = await http.get(
        "/hello/echo",
        headers={"cookie": f"theme=dark; micro_token={TOKEN}; lang=en"},
    )
    assert rsp.status_code == 200
    seen = rsp.json()["headers"]
    assert seen["cookie"] == "theme=dark; lang=en"
    assert seen["authorization"] is None
    rsp = await http.get("/hello/echo", headers={"authorization": f"Bearer {TOKEN}"})
    assert rsp.json()["headers"]["authorization"] is None


async def test_without_auth_the_app_gets_its_own_authorization(env: Env) -> None:
    await env.webapp("hello")
    http = await env.http(env.dashboard())
    rsp = await http.get("/hello/echo", headers={"authorization": "Bearer app-token"})
    assert rsp.json()["headers"]["authorization"] == "Bearer app-token"


async def test_websocket_needs_the_token(env: Env) -> None:
    await env.webapp("hello")
    url = await env.serve(env.dashboard(auth=static_tokens([TOKEN])))
    ws_url = url.replace("http://", "ws://") + "/hello/ws"
    with pytest.raises(InvalidStatus):
        async with websockets.connect(ws_url):
            pass
    cookie = {"cookie": f"micro_token={TOKEN}"}
    async with websockets.connect(ws_url, additional_headers=cookie) as ws:
        await ws.send("in")
        assert await ws.recv() == "echo:in"


async def test_rate_limit(env: Env) -> None:
    http = await env.http(env.dashboard(rate_limit=1, rate_burst=2))
    codes = [(await http.get("/health")).status_code for _ in range(4)]
    assert codes[:2] == [200, 200]
    assert codes[-1] == 429


async def test_unreadable_header_is_400(env: Env) -> None:
    http = await env.http(env.dashboard())
    rsp = await http.get("/_/info", headers=[(b"x-thing", b"\xff\xfe")])
    assert rsp.status_code == 400


async def test_access_log_goes_to_micro_web_access(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    http = await env.http(env.dashboard(access_log=True))
    with caplog.at_level(logging.INFO, logger="micro.web.access"):
        await http.get("/health")
    lines = [r.getMessage() for r in caplog.records if r.name == "micro.web.access"]
    assert any('"GET /health HTTP/1.1" 200' in line for line in lines), lines
