"""``micro mcp`` as a real process, over stdio and Streamable HTTP, with the MCP SDK's client,
in front of real service processes registered over mDNS on loopback."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from micro.registry.mdns import MdnsRegistry
from micro.toolkit.mcp.tools import object_schema
from tests.toolkit.mcp.conftest import (
    PY,
    ROOT,
    Notifications,
    base_env,
    start_service,
    stdio,
    tool_names,
    wait_tools,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(120)]


def hello(service: str) -> str:
    return f"{service}.Greeter.SayHello"


async def test_stdio_lists_endpoints_with_the_registrys_schemas(tools_service: str) -> None:
    async with stdio() as client:
        await wait_tools(client, lambda names: hello(tools_service) in names)
        tools = {t.name: t for t in (await client.list_tools()).tools}
        async with MdnsRegistry(interfaces=["127.0.0.1"]) as registry:
            [svc] = await registry.get_service(tools_service)
        for ep in svc.endpoints:
            tool = tools[f"{tools_service}.{ep.name}"]
            expected, _ = object_schema(json.loads(ep.metadata["request_schema"]), "request")
            assert tool.input_schema == expected
            response, _ = object_schema(json.loads(ep.metadata["response_schema"]), "result")
            assert tool.output_schema == response
        say = tools[hello(tools_service)]
        assert say.input_schema["properties"]["name"] == {"type": "string"}
        assert say.input_schema["required"] == ["name"]
        assert say.output_schema is not None
        assert say.output_schema["properties"]["msg"] == {"type": "string"}
        assert say.description is not None
        assert say.description.startswith("Greet someone by name.")
        assert say.annotations is not None
        assert say.annotations.read_only_hint is True
        assert {"services", "describe", "call", "health"} <= set(tools)
        assert "publish" not in tools


async def test_stdio_calls_return_structured_content(tools_service: str) -> None:
    async with stdio() as client:
        await wait_tools(client, lambda names: hello(tools_service) in names)
        result = await client.call_tool(hello(tools_service), {"name": "John"})
        assert not result.is_error
        assert result.structured_content == {"msg": "Hello John"}
        assert json.loads(result.content[0].text) == {"msg": "Hello John"}  # type: ignore[union-attr]
        total = await client.call_tool(f"{tools_service}.Tools.Sum", {"request": [1, 2, 3]})
        assert total.structured_content == {"result": 6}
        names = await client.call_tool(f"{tools_service}.Tools.Names", {"size": 2})
        assert names.structured_content == {"result": ["n0", "n1"]}
        via_call = await client.call_tool(
            "call",
            {"service": tools_service, "endpoint": "Greeter.SayHello", "request": {"name": "Al"}},
        )
        assert via_call.structured_content == {"msg": "Hello Al"}
        described = await client.call_tool("describe", {"service": tools_service})
        [version] = described.structured_content["versions"]
        endpoints = {e["name"]: e for e in version["endpoints"]}
        assert endpoints["Greeter.SayHello"]["tool"] == hello(tools_service)
        assert endpoints["Greeter.SayHello"]["request_schema"]["$ref"] == "#/$defs/HelloRequest"
        health = await client.call_tool("health", {"service": tools_service})
        assert health.structured_content["healthy"] is True


def error_of(result: object) -> dict[str, object]:
    assert getattr(result, "is_error", False), result
    error = result.structured_content["error"]  # type: ignore[attr-defined]
    assert isinstance(error, dict)
    return error


async def test_validation_service_and_bad_arguments_are_tool_errors(tools_service: str) -> None:
    async with stdio() as client:
        await wait_tools(client, lambda names: hello(tools_service) in names)
        missing = error_of(await client.call_tool(hello(tools_service), {}))
        assert missing["code"] == 400
        assert "name" in str(missing["detail"])
        wrong = error_of(await client.call_tool(hello(tools_service), {"name": 5}))
        assert wrong["code"] == 400
        failed = error_of(await client.call_tool(f"{tools_service}.Tools.Fail", {"key": "k"}))
        assert (failed["code"], failed["id"], failed["detail"]) == (404, "tools", "no item k")
        assert error_of(await client.call_tool("no.such.Tool.Here", {}))["code"] == 404
        assert error_of(await client.call_tool("not a tool", {}))["code"] == 404
        bad_call = await client.call_tool("call", {"service": 3, "endpoint": []})
        assert error_of(bad_call)["code"] == 400
        bad_meta = {"service": tools_service, "endpoint": "Greeter.SayHello", "metadata": [1]}
        assert error_of(await client.call_tool("call", bad_meta))["code"] == 400
        gone = error_of(await client.call_tool("describe", {"service": "no-such-service"}))
        assert gone["code"] == 404
        # the server is still there and serving
        again = await client.call_tool(hello(tools_service), {"name": "still"})
        assert again.structured_content == {"msg": "Hello still"}


async def test_timeout_and_result_size_limit(tools_service: str) -> None:
    async with stdio("--timeout", "500ms", "--max-result", "1K") as client:
        await wait_tools(client, lambda names: hello(tools_service) in names)
        slow = error_of(await client.call_tool(f"{tools_service}.Tools.Slow", {"seconds": 3}))
        assert slow["code"] == 408
        big = error_of(await client.call_tool(f"{tools_service}.Tools.Big", {"size": 2000}))
        assert big["code"] == 413
        small = await client.call_tool(f"{tools_service}.Tools.Big", {"size": 10})
        assert small.structured_content == {"data": "x" * 10}


async def test_handshake_client_hears_services_come_and_go(
    ns: str, tools_service: str, tmp_path: Path
) -> None:
    heard = Notifications()
    async with stdio(mode="legacy", on_message=heard) as client:
        assert client.server_capabilities.tools is not None
        assert client.server_capabilities.tools.list_changed is True
        await wait_tools(client, lambda names: hello(tools_service) in names)
        later = f"{ns}.later"
        proc = start_service(later, tmp_path)
        try:
            await heard.wait()
            await wait_tools(client, lambda names: hello(later) in names, timeout=5)
        finally:
            proc.stop()  # SIGTERM: the service deregisters
        await heard.wait()
        await wait_tools(client, lambda names: hello(later) not in names, timeout=5)


async def test_modern_http_client_hears_services_come_and_go(
    ns: str, tools_service: str, tmp_path: Path, http_mcp
) -> None:
    server = http_mcp()
    async with server.client() as client:
        assert client.protocol_version == "2026-07-28"
        await wait_tools(client, lambda names: hello(tools_service) in names)
        later = f"{ns}.later-http"
        async with client.listen(tools_list_changed=True) as events:
            stream = aiter(events)
            proc = start_service(later, tmp_path)
            try:
                async with asyncio.timeout(20):
                    await anext(stream)
                await wait_tools(client, lambda names: hello(later) in names, timeout=5)
            finally:
                proc.stop()
            async with asyncio.timeout(20):
                await anext(stream)
            await wait_tools(client, lambda names: hello(later) not in names, timeout=5)


async def test_allow_list_and_read_only(tools_service: str, http_mcp) -> None:
    allow = f"{tools_service}.Tools.*,services,call"
    server = http_mcp("--allow", allow, "--read-only")
    async with server.client() as client:
        lookup = f"{tools_service}.Tools.Lookup"
        names = await wait_tools(client, lambda names: lookup in names)
        assert names == {lookup, "services", "call"}
        found = await client.call_tool(lookup, {"key": "abc"})
        assert found.structured_content == {"key": "abc", "value": 3}
        # not offered: outside the allow-list, not safe, or a built-in left out
        assert error_of(await client.call_tool(hello(tools_service), {"name": "x"}))["code"] == 403
        sum_ = await client.call_tool(f"{tools_service}.Tools.Sum", {"request": [1]})
        assert error_of(sum_)["code"] == 403
        around = {"service": tools_service, "endpoint": "Tools.Sum", "request": [1]}
        assert error_of(await client.call_tool("call", around))["code"] == 403
        assert error_of(await client.call_tool("describe", {"service": "x"}))["code"] == 403
        through = {"service": tools_service, "endpoint": "Tools.Lookup", "request": {"key": "z"}}
        assert (await client.call_tool("call", through)).structured_content == {
            "key": "z",
            "value": 1,
        }


async def test_http_auth_with_per_token_scopes(tools_service: str, http_mcp) -> None:
    scopes = f"alice={tools_service}.Greeter.*|describe,bob=services"
    server = http_mcp("--auth-tokens", "alice,bob", "--auth-scopes", scopes)
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        assert (await http.post("/mcp", json={})).status_code == 401
        assert (await http.get("/health")).status_code == 200
    async with server.client(token="alice") as client:
        names = await wait_tools(client, lambda names: hello(tools_service) in names)
        assert names == {hello(tools_service), "describe"}
        ok = await client.call_tool(hello(tools_service), {"name": "A"})
        assert ok.structured_content == {"msg": "Hello A"}
        lookup = await client.call_tool(f"{tools_service}.Tools.Lookup", {"key": "k"})
        assert error_of(lookup)["code"] == 403
        assert error_of(await client.call_tool("services", {}))["code"] == 403
    async with server.client(token="bob") as client:
        assert await tool_names(client) == {"services"}


async def test_rate_limit_and_audit_log(tools_service: str, http_mcp) -> None:
    server = http_mcp("--rate-limit", "0.5", "--rate-burst", "2")
    async with server.client() as client:
        await wait_tools(client, lambda names: hello(tools_service) in names)
        first = await client.call_tool(hello(tools_service), {"name": "1"})
        assert not first.is_error
        await client.call_tool(hello(tools_service), {"name": "2"})
        limited = error_of(await client.call_tool(hello(tools_service), {"name": "3"}))
        assert limited["code"] == 429
    log = server.proc.text()
    assert f"tool={hello(tools_service)} service={tools_service}" in log
    assert "result=ok" in log
    assert "result=429" in log


def test_sigterm_stops_http_and_bad_options_fail_fast(http_mcp) -> None:
    server = http_mcp()
    server.proc.proc.send_signal(signal.SIGTERM)
    assert server.proc.proc.wait(15) == 0
    bad = subprocess.run(
        [PY, "-m", "micro.toolkit.mcp", "--address", "nowhere"],
        capture_output=True, text=True, env=base_env(), cwd=ROOT, timeout=30,
    )  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0
    assert "--address" in bad.stderr


def test_stdio_exits_when_stdin_closes() -> None:
    proc = subprocess.run(
        [PY, "-m", "micro.toolkit.mcp"], input="", capture_output=True, text=True,
        env=base_env(), cwd=ROOT, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""


def test_sigterm_stops_stdio_with_exit_0() -> None:
    proc = subprocess.Popen(
        [PY, "-m", "micro.toolkit.mcp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=base_env(), cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdin is not None
        hello_ = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        proc.stdin.write((json.dumps(hello_) + "\n").encode())
        proc.stdin.flush()
        assert proc.stdout is not None
        answer = json.loads(proc.stdout.readline())  # it serves: an answer to the ping
        assert answer["id"] == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
