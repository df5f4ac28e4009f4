"""The real `micro api` process in front of real service processes, over real sockets.

Each test module run uses its own namespace, so the mDNS registry (on loopback) is shared
safely with anything else running.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from micro.registry import Endpoint, Node, Service
from micro.registry.mdns import MdnsRegistry
from tests.servers import address

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self._file = log.open("wb")
        environ = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'src'}", **(env or {})}
        self.proc = subprocess.Popen(
            args, stdout=self._file, stderr=subprocess.STDOUT, env=environ, cwd=ROOT
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._file.close()


def gateway(tmp: Path, ns: str, *flags: str, env: dict[str, str] | None = None) -> tuple[Proc, str]:
    port = free_port()
    args = [PY, "-m", "micro.toolkit.api", "--address", f"127.0.0.1:{port}", "--namespace", ns]
    proc = Proc([*args, *flags], tmp / f"gateway-{port}.log", env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.proc.poll() is not None or time.monotonic() > deadline:
            proc.stop()
            raise AssertionError(f"gateway did not start:\n{proc.text()}")
        time.sleep(0.1)


def wait_path(url: str, path: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while path not in httpx.get(url + "/openapi.json", timeout=2).text:
        assert time.monotonic() < deadline, f"{path} never appeared in the OpenAPI document"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def ns() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def services(ns: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    tmp = tmp_path_factory.mktemp("services")
    procs = [
        Proc(
            [PY, "tests/integration/greeter_service.py", "--server_name", f"{ns}.greeter"],
            tmp / "greeter.log",
        ),
        Proc(
            [PY, "tests/toolkit/api/counter_service.py", "--server_name", f"{ns}.counter"],
            tmp / "counter.log",
        ),
    ]
    yield
    for p in procs:
        p.stop()


@pytest.fixture(scope="module")
def api(
    ns: str, services: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Proc, str]]:
    tmp = tmp_path_factory.mktemp("gateway")
    proc, url = gateway(tmp, ns, "--enable-rpc", "--max-body", "64K", "--read-timeout", "1")
    try:
        wait_path(url, "/greeter/say-hello")
        wait_path(url, "/counter/count")
        yield proc, url
    finally:
        proc.stop()


def test_curl_done_when(api: tuple[Proc, str]) -> None:
    proc, url = api
    out = subprocess.run(
        ["curl", "-s", "-w", "\n%{http_code}", f"{url}/greeter/say-hello", "-d", '{"name":"John"}'],
        capture_output=True,
        timeout=20,
        check=True,
    ).stdout.decode()
    body, status = out.rsplit("\n", 1)
    assert (status, json.loads(body)) == ("200", {"msg": "Hello John"})
    logged = '"POST /greeter/say-hello HTTP/1.1" 200'  # the access log, written after the reply
    deadline = time.monotonic() + 5
    while logged not in proc.text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert logged in proc.text()


def test_http_client_over_every_rpc_path(api: tuple[Proc, str], ns: str) -> None:
    _, url = api
    with httpx.Client(base_url=url, timeout=10) as http:
        assert http.get("/greeter/say-hello", params={"name": "Q"}).json() == {"msg": "Hello Q"}
        call = {
            "service": f"{ns}.greeter",
            "endpoint": "Greeter.SayHello",
            "request": {"name": "R"},
        }
        assert http.post("/rpc", json=call).json() == {"msg": "Hello R"}
        rsp = http.post("/nobody/here", json={})
        assert rsp.status_code == 404
        assert f"{ns}.nobody" in rsp.json()["detail"]
        assert http.post("/greeter/say-hello", content=b"{bad").status_code == 400
        wrong = {"content-type": "application/xml"}
        assert http.post("/greeter/say-hello", content=b"<a/>", headers=wrong).status_code == 415
        assert http.post("/greeter/say-hello", content=b"x" * 100_000).status_code == 413
        doc = http.get("/openapi.json").json()
        assert "/greeter/say-hello" in doc["paths"]
        assert doc["openapi"] == "3.1.0"


def test_slow_client_gets_408(api: tuple[Proc, str]) -> None:
    _, url = api
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /greeter/say-hello HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n{")
        started = time.monotonic()
        answer = sock.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 408"), answer
    assert time.monotonic() - started < 5


async def test_websocket_streams(api: tuple[Proc, str]) -> None:
    _, url = api
    ws_url = url.replace("http://", "ws://")
    async with websockets.connect(ws_url + "/counter/count") as ws:  # server stream
        await ws.send(json.dumps({"to": 3, "delay": 0.01}))
        got = [json.loads(m) async for m in ws]
        assert got == [{"n": 1}, {"n": 2}, {"n": 3}]
        assert ws.close_code == 1000
    async with websockets.connect(ws_url + "/counter/echo") as ws:  # bidirectional
        for text in ("a", "b", "c"):
            await ws.send(json.dumps({"text": text}))
            assert json.loads(await ws.recv()) == {"text": text.upper()}
    async with websockets.connect(ws_url + "/greeter/say-hello") as ws:  # unary, per message
        await ws.send(json.dumps({"name": "W"}))
        assert json.loads(await ws.recv()) == {"msg": "Hello W"}
        await ws.send("{nope")
        assert json.loads(await ws.recv())["error"]["code"] == 400
    async with websockets.connect(ws_url + "/counter/count") as ws:
        await ws.send(json.dumps({"to": "x"}))
        error = json.loads(await ws.recv())["error"]
        assert error["code"] == 400
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4400


async def test_sigterm_with_open_streams_exits_0_at_once(
    ns: str, services: None, tmp_path: Path
) -> None:
    proc, url = gateway(tmp_path, ns)
    try:
        wait_path(url, "/counter/count")
        ws_url = url.replace("http://", "ws://")
        async with (
            websockets.connect(ws_url + "/counter/count") as count,
            websockets.connect(ws_url + "/counter/echo") as echo,
        ):
            await count.send(json.dumps({"to": 1000, "delay": 0.5}))
            assert json.loads(await count.recv()) == {"n": 1}
            await echo.send(json.dumps({"text": "a"}))
            assert json.loads(await echo.recv()) == {"text": "A"}
            started = time.monotonic()
            proc.proc.send_signal(signal.SIGTERM)
            while proc.proc.poll() is None:
                assert time.monotonic() - started < 3, proc.text()
                await asyncio.sleep(0.05)
            assert proc.proc.returncode == 0, proc.text()  # a graceful stop, as a service's
            for ws in (count, echo):
                await ws.wait_closed()
                assert ws.close_code == 1012  # service restart
    finally:
        proc.stop()


def test_schemathesis_finds_no_server_error(api: tuple[Proc, str], tmp_path: Path) -> None:
    _, url = api
    st = Path(PY).parent / "schemathesis"
    result = subprocess.run(
        [
            str(st),
            "run",
            f"{url}/openapi.json",
            "-c",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "-n",
            "15",
            "--seed",
            "1",
            "--request-timeout",
            "5",
            "--phases",
            "examples,coverage,fuzzing",
            "--exclude-path",
            "/rpc",  # its `address` would make the gateway dial (and resolve) any host
        ],
        capture_output=True,
        timeout=90,
        cwd=tmp_path,
    )
    out = result.stdout.decode() + result.stderr.decode()
    assert result.returncode == 0, out[-4000:]
    assert "Operations:       2 selected" in out, out[-4000:]
    assert " passed" in out, out[-4000:]


# -- http, web and event handlers --------------------------------------------------------


async def _site(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "path": request.url.path,
            "query": request.url.query,
            "body": (await request.body()).decode(),
            "forwarded_for": request.headers.get("x-forwarded-for"),
        },
        headers={"X-Site": "1"},
    )


async def _site_ws(ws: WebSocket) -> None:
    await ws.accept()
    async for text in ws.iter_text():
        await ws.send_text("site:" + text)


@pytest.fixture
async def http_site(ns: str) -> AsyncIterator[str]:
    """A plain HTTP+WebSocket app registered as `<ns>.site` (meta routes on /pages)."""
    app = Starlette(
        routes=[
            Route("/{p:path}", _site, methods=["GET", "POST"]),
            WebSocketRoute("/pages/ws", _site_ws),
        ]
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    endpoint = Endpoint(name="Site.Pages", metadata={"path": "^/pages", "handler": "web"})
    service = Service(
        f"{ns}.site",
        endpoints=[endpoint],
        nodes=[Node(id=f"site-{port}", address=f"127.0.0.1:{port}")],
    )
    async with MdnsRegistry() as registry:
        await registry.register(service, ttl=30)
        yield f"{ns}.site"
        await registry.deregister(service)
    server.should_exit = True
    await task


async def test_http_and_web_proxy(
    api: tuple[Proc, str], http_site: str, tmp_path: Path, ns: str
) -> None:
    _, url = api
    await asyncio.to_thread(wait_path, url, "Site.Pages")  # only for the catalog to see it
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        rsp = await http.post("/pages/a/b?x=1", content=b"hello")  # meta route, handler web
        assert rsp.status_code == 200
        assert rsp.headers["x-site"] == "1"
        assert rsp.json() == {
            "path": "/pages/a/b",
            "query": "x=1",
            "body": "hello",
            "forwarded_for": "127.0.0.1",
        }
    async with websockets.connect(url.replace("http", "ws") + "/pages/ws") as ws:
        await ws.send("hi")
        assert await ws.recv() == "site:hi"
    proc, http_url = await asyncio.to_thread(gateway, tmp_path, ns, "--handler", "http")
    try:
        async with httpx.AsyncClient(base_url=http_url, timeout=10) as http:
            rsp = await http.get("/site/any/where")
            assert rsp.json()["path"] == "/site/any/where"
            assert (await http.get("/absent/x")).status_code == 404
    finally:
        proc.stop()


async def test_event_handler_publishes_through_nats(ns: str, tmp_path: Path) -> None:
    from micro.broker import Event
    from micro.broker.nats import NatsBroker

    got: asyncio.Queue[Event] = asyncio.Queue()

    async def on_event(event: Event) -> None:
        await got.put(event)

    nats_address = address("nats")
    async with NatsBroker(address=nats_address) as broker:
        sub = await broker.subscribe(f"{ns}.user", on_event)
        env = {"MICRO_BROKER": "nats", "MICRO_BROKER_ADDRESS": nats_address}
        proc, url = await asyncio.to_thread(gateway, tmp_path, ns, "--handler", "event", env=env)
        try:
            async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                rsp = await http.post("/user/login/john", content=b'{"at": 1}')
            assert rsp.status_code == 200, rsp.text
            event = await asyncio.wait_for(got.get(), 5)
            body = json.loads(event.message.body)
            assert (body["name"], body["data"], body["id"]) == (
                "login.john",
                '{"at": 1}',
                rsp.json()["id"],
            )
        finally:
            proc.stop()
            await sub.unsubscribe()
