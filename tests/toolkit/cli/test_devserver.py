"""``micro run``'s dashboard + gateway server, in process: routing, ports, the banner lines."""

from __future__ import annotations

import asyncio
import io
import socket
from typing import Any

import httpx
import pytest
from rich.console import Console

from micro.registry import Endpoint, Node, Service, Value
from micro.registry.memory import MemoryRegistry
from micro.settings import BACKEND_GROUPS, load
from micro.toolkit.cli.app import CliError
from micro.toolkit.cli.devserver import (
    DevApp,
    DevServer,
    Seen,
    ServiceWatch,
    api_path,
    bind,
    curl_line,
    example_request,
)


def recorder(name: str, seen: list[dict[str, Any]]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append({"app": name, **{k: scope.get(k) for k in ("path", "raw_path", "root_path")}})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": name.encode()})

    return app


async def test_api_paths_go_to_the_gateway_without_their_prefix() -> None:
    seen: list[dict[str, Any]] = []
    app = DevApp(recorder("dashboard", seen), recorder("gateway", seen))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dev") as http:
        for path in ("/api/hello/call?x=1", "/api", "/", "/registry", "/apiary/x", "/health"):
            await http.post(path)
    assert [(s["app"], s["path"]) for s in seen] == [
        ("gateway", "/hello/call"),
        ("gateway", "/"),
        ("dashboard", "/"),
        ("dashboard", "/registry"),
        ("dashboard", "/apiary/x"),
        ("dashboard", "/health"),
    ]
    assert seen[0]["raw_path"] == b"/hello/call"
    assert seen[0]["root_path"] == "/api"


def test_api_path_is_what_the_gateway_resolves_back() -> None:
    assert api_path("hello", "Hello.Call") == "/api/hello/call"
    assert api_path("hello-world", "HelloWorld.Call") == "/api/hello-world/call"
    assert api_path("greeter", "Greeter.SayHello") == "/api/greeter/say-hello"
    assert api_path("hello", "Other.Call") == "/api/hello/other/call"
    want = "/api/go/micro/srv/greeter/greeter/say-hello"
    assert api_path("go.micro.srv.greeter", "Greeter.SayHello") == want
    for service, endpoint in (("x", "nodot"), ("a b", "A.B"), ("x", "Y.lower")):
        assert api_path(service, endpoint) is None


def test_example_request_and_curl_line() -> None:
    request = Value(
        "CallRequest",
        "CallRequest",
        [
            Value("name", "string"),
            Value("count", "int64"),
            Value("ratio", "float64"),
            Value("ok", "bool"),
            Value("tags", "[]string"),
            Value("inner", "Inner", [Value("id", "string")]),
        ],
    )
    assert example_request(request) == {
        "name": "John", "count": 0, "ratio": 0.0, "ok": False, "tags": [],
        "inner": {"id": "John"},
    }  # fmt: skip
    stream = Endpoint("Hello.Stream", metadata={"stream": "true"})
    call = Endpoint("Hello.Call", request=Value("R", "R", [Value("name", "string")]))
    svc = Service(name="hello", endpoints=[stream, call])
    assert curl_line("http://h:1", svc) == (
        """curl -H 'Content-Type: application/json' -d '{"name": "John"}' """
        "http://h:1/api/hello/call"
    )
    assert curl_line("http://h:1", Service(name="hello", endpoints=[stream])) is None


def test_without_an_address_a_taken_port_moves_to_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setattr("micro.toolkit.cli.devserver.DEFAULT_ADDRESS", f"127.0.0.1:{port}")
        moved = bind(None)
        try:
            assert moved.getsockname()[1] > port
        finally:
            moved.close()
        with pytest.raises(CliError, match=f"127.0.0.1:{port}: .*--address"):
            bind(f"127.0.0.1:{port}")
    with pytest.raises(CliError, match="micro run --address 'nonsense'") as bad:
        bind("nonsense")
    assert bad.value.code == 2


async def test_service_watch_reports_what_comes_changes_and_goes() -> None:
    registry = MemoryRegistry()
    events: list[tuple[str, int | None, int | None]] = []

    def changed(name: str, old: Seen | None, new: Seen | None) -> None:
        events.append((name, old.nodes if old else None, new.nodes if new else None))

    def node(i: int) -> Node:
        return Node(id=f"hello-{i}", address=f"127.0.0.1:{9000 + i}")

    watch = ServiceWatch(registry, changed)
    task = asyncio.create_task(watch.run())
    try:
        await registry.register(Service(name="hello", nodes=[node(1)]))
        await _until(lambda: events == [("hello", None, 1)])
        await registry.register(Service(name="hello", nodes=[node(2)]))
        await _until(lambda: events[-1:] == [("hello", 1, 2)])
        await registry.deregister(Service(name="hello", nodes=[node(1), node(2)]))
        await _until(lambda: events[-1:] == [("hello", 2, None)])
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len(events) == 3


async def test_service_watch_misses_no_change_made_while_it_reads() -> None:
    # a service that registers while the watch reads the registry (after the listing was
    # taken) is reported at once, not at the next periodic re-read seconds later
    class Racing(MemoryRegistry):
        raced = False

        async def list_services(self) -> list[Service]:
            listed = await super().list_services()
            if not self.raced:
                self.raced = True
                await self.register(Service(name="late", nodes=[Node(id="l", address="h:1")]))
            return listed

    registry = Racing()
    events: list[str] = []
    watch = ServiceWatch(registry, lambda name, old, new: events.append(name))
    task = asyncio.create_task(watch.run())
    try:
        await _until(lambda: "late" in events, timeout=2.0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _until(check: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "never happened"
        await asyncio.sleep(0.02)


def test_service_lines_escape_what_the_registry_says() -> None:
    lines: list[str] = []
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dev = DevServer(sock, load(groups=("web", *BACKEND_GROUPS)), lines.append)
        evil = "x\x1b[2J[bold]<b> y"
        dev._service_line(evil, None, Seen(1, Service(name=evil)))
        dev._service_line("go.micro.http.broker", None, Seen(1, Service(name="b")))
        dev._service_line("topic:events", None, Seen(1, Service(name="t")))
        dev._service_line(evil, Seen(1, Service(name=evil)), None)
    out = Console(file=io.StringIO(), width=300, color_system=None)
    for line in lines:
        out.print(line)
    assert isinstance(out.file, io.StringIO)
    added, gone = out.file.getvalue().splitlines()
    assert "\x1b" not in added + gone
    assert r"+ x\x1b[2J[bold]<b> y (1 node)" in added
    assert added.endswith("/registry?service=x%1B%5B2J%5Bbold%5D%3Cb%3E%20y")
    assert gone == r"  - x\x1b[2J[bold]<b> y gone"
