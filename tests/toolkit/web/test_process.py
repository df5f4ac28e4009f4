"""The real ``micro web`` process over mDNS on loopback, with a real greeter and a real web
app in their own processes; and its options."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from micro.toolkit.web.cli import build_options, read_settings
from tests.toolkit.api.test_process import PY, Proc, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MICRO = [PY, "-m", "micro.toolkit.cli"]


def test_help_names_the_options() -> None:
    done = subprocess.run([*MICRO, "web", "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: micro web")
    for flag in ("--address", "--namespace", "--auth-tokens", "--max-body", "--registry"):
        assert flag in done.stdout
    assert "MICRO_WEB_ADDRESS" in done.stdout


def test_defaults_env_and_flags() -> None:
    o = build_options(read_settings([], environ={}))
    assert (o.address, o.namespace) == ("127.0.0.1:8082", "go.micro.web")
    env = {"MICRO_WEB_ADDRESS": ":9000", "MICRO_WEB_NAMESPACE": "acme.web"}
    o = build_options(read_settings([], environ=env))
    assert (o.address, o.namespace) == (":9000", "acme.web")
    o = build_options(read_settings(["--namespace", "x.web", "--max-body", "1K"], environ=env))
    assert (o.namespace, o.max_body) == ("x.web", 1024)


def test_bad_options_exit_2() -> None:
    done = subprocess.run(
        [*MICRO, "web", "--address", "nowhere"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert done.stderr.startswith("micro web: --address")
    assert "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def ns() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def web(ns: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``micro web`` over mDNS with a greeter (``<ns>.greeter``) and the web app
    (``<ns>.web.hello``) running; its base URL once it proxies the app."""
    tmp = tmp_path_factory.mktemp("web")
    greeter = Proc(
        [PY, "tests/integration/greeter_service.py", "--server_name", f"{ns}.greeter"],
        tmp / "greeter.log",
    )
    app = Proc(
        [PY, "tests/toolkit/web/webapp.py", "--name", "hello", "--namespace", f"{ns}.web"],
        tmp / "webapp.log",
    )
    port = free_port()
    dash = Proc(
        [*MICRO, "web", "--address", f"127.0.0.1:{port}", "--namespace", f"{ns}.web"],
        tmp / "web.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url + "/health", dash)
        wait_for(url + "/hello/", dash)
        yield url
    finally:
        for proc in (dash, app, greeter):
            proc.stop()


def wait_for(url: str, proc: Proc, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{url} never answered 200:\n{proc.text()}")
        time.sleep(0.1)


def test_health_pages_and_registry(web: str, ns: str) -> None:
    with httpx.Client(base_url=web, timeout=10) as http:
        assert http.get("/health").json()["status"] == "ok"
        page = http.get("/", headers={"accept": "text/html"})
        assert page.status_code == 200
        assert "default-src 'self'" in page.headers["content-security-policy"]
        deadline = time.monotonic() + 20
        while True:
            names = [
                s["name"]
                for s in http.get("/registry", headers={"accept": "application/json"}).json()[
                    "services"
                ]
            ]
            if f"{ns}.greeter" in names or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert f"{ns}.greeter" in names
        one = http.get(
            "/registry",
            params={"service": f"{ns}.greeter"},
            headers={"content-type": "application/json"},
        )
        assert one.json()["services"][0]["nodes"]


def test_rpc_calls_the_greeter(web: str, ns: str) -> None:
    call = {"service": f"{ns}.greeter", "endpoint": "Greeter.SayHello", "request": {"name": "P"}}
    out = subprocess.run(
        [
            "curl",
            "-s",
            "-w",
            "\n%{http_code}",
            f"{web}/rpc",
            "-H",
            "Content-Type: application/json",
            "-d",
            json.dumps(call),
        ],
        capture_output=True,
        timeout=20,
        check=True,
    ).stdout.decode()
    body, status = out.rsplit("\n", 1)
    assert (status, json.loads(body)) == ("200", {"msg": "Hello P"})


async def test_proxies_the_web_app_and_its_websocket(web: str) -> None:
    async with httpx.AsyncClient(base_url=web, timeout=10) as http:
        page = await http.get("/hello/")
        assert "webapp at /hello" in page.text
        echo = await http.post("/hello/echo?q=1", content=b"body", headers={"origin": web})
        assert (echo.json()["body"], echo.json()["query"]) == ("body", "q=1")
        missing = await http.get("/nobody/", headers={"accept": "text/html"})
        assert missing.status_code == 404
        assert 'href="/hello/"' in missing.text
    async with websockets.connect(web.replace("http://", "ws://") + "/hello/ws") as ws:
        await ws.send("over the process")
        assert await ws.recv() == "echo:over the process"


def test_access_log_lines(web: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    httpx.get(web + "/health?probe=1", timeout=5)
    logs = list(Path(tmp_path_factory.getbasetemp()).glob("web*/web.log"))
    assert logs
    deadline = time.monotonic() + 5
    while '"GET /health?probe=1 HTTP/1.1" 200' not in logs[0].read_text():
        assert time.monotonic() < deadline, logs[0].read_text()
        time.sleep(0.05)
    assert "micro.web.access" in logs[0].read_text()
