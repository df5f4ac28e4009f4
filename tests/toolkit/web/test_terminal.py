"""/_/terminal: micro cli's commands over the dashboard's registry and client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from micro.toolkit.web import terminal
from tests.toolkit.web.harness import (
    DATA_SERVICE,
    Spawn,
    records,
    serve,
    spawn,
    unique,
    wait_for,
)

__all__ = ["spawn"]  # the fixture

pytestmark = pytest.mark.integration


@pytest.fixture
async def term(spawn: Spawn, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    name = unique("web-term")
    spawn(DATA_SERVICE, name, "--record", str(tmp_path / "rec"))
    async with serve() as (dash, url), httpx.AsyncClient(base_url=url, timeout=30) as http:
        await wait_for(lambda: name in dash.live.names(), what=name)
        yield http, name


async def run(http: httpx.AsyncClient, line: Any) -> tuple[str, int]:
    rsp = await http.post("/_/terminal", json={"line": line})
    assert rsp.status_code == 200, rsp.text
    body = rsp.json()
    assert "\x1b" not in body["output"]
    return body["output"], body["code"]


async def test_list_get_call_and_stream(
    term: tuple[httpx.AsyncClient, str], capsys: pytest.CaptureFixture[str]
) -> None:
    http, name = term
    output, code = await run(http, "list services")
    assert code == 0
    assert name in output.split()
    assert output.splitlines()[0].strip() == "SERVICE"

    output, code = await run(http, f"""call {name} Greeter.SayHello '{{"name": "Term"}}'""")
    assert (output, code) == ('{\n  "msg": "Hello Term"\n}', 0)

    output, code = await run(http, f"get service {name}")
    assert code == 0
    assert f"service  {name}" in output
    assert "Endpoint: Greeter.SayHello" in output
    assert "name string" in output

    output, code = await run(http, f"-o json list nodes {name}")
    assert code == 0
    [node] = json.loads(output)
    assert node["address"].startswith("127.0.0.1:")

    output, code = await run(http, f"""stream {name} Ticker.Ticks '{{"to": 2, "delay": 0.01}}'""")
    assert (output, code) == ('{"n": 1}\n{"n": 2}', 0)

    output, code = await run(http, f"health {name}")
    assert code == 0
    assert "ok" in output.split()

    assert "Hello Term" not in capsys.readouterr().out  # nothing leaked to the process's stdout


async def test_json_goes_unquoted_after_call_stream_and_publish(
    spawn: Spawn, tmp_path: Path
) -> None:
    """As in go-micro's shell: a request typed as JSON without quotes keeps its quotes,
    with options before or after it."""
    name, topic, record = unique("web-term"), unique("web-term-topic"), tmp_path / "rec"
    spawn(DATA_SERVICE, name, "--record", str(record), "--topic", topic)
    async with serve() as (dash, url), httpx.AsyncClient(base_url=url, timeout=30) as http:
        await wait_for(lambda: name in dash.live.names(), what=name)

        line = f'call {name} Greeter.SayHello {{"name": "John  Smith"}}'
        assert await run(http, line) == ('{\n  "msg": "Hello John  Smith"\n}', 0)
        line = f'call -t 5s {name} Greeter.SayHello {{"name": "J"}} -m k=v -o json'
        output, code = await run(http, line)
        assert (json.loads(output), code) == ({"msg": "Hello J"}, 0)
        line = f'stream {name} Ticker.Ticks {{"to": 2, "delay": 0.01}}'
        assert await run(http, line) == ('{"n": 1}\n{"n": 2}', 0)
        output, code = await run(http, f'publish {topic} {{"id": 7, "tags": ["a b"]}}')
        assert code == 0, output
        found = await wait_for(lambda: [r for r in records(record) if "event" in r], 10)
        assert found == [{"event": {"id": 7, "tags": ["a b"]}}]

        output, code = await run(http, f"call {name} Greeter.SayHello {{name: John}} -t 5s")
        assert code == 1
        assert output.startswith("error: invalid JSON request (argument) at line 1, column 2")


async def test_errors_and_refusals_are_one_line(term: tuple[httpx.AsyncClient, str]) -> None:
    http, name = term
    output, code = await run(http, f'call {name} Calc.Add \'{{"a": "x"}}\'')
    assert code == 1
    assert output.startswith(f"error: error calling {name} Calc.Add:")
    assert "$.a" in output

    output, code = await run(http, "get service nobody-here")
    assert (output, code) == ("error: service not found: nobody-here", 1)

    output, code = await run(http, "lst services")
    assert code == 2
    assert "did you mean 'list'?" in output

    output, code = await run(http, "call greeter 'unclosed")
    assert code == 2
    assert output.startswith("error: cannot parse the line")

    for word in ("quit", "exit", "new x", "run x.py", "cli", "web", "api", "bot", "proxy"):
        output, code = await run(http, word)
        assert code == 2, word
        assert output.startswith(f"error: '{word.split()[0]}' does not run in the web terminal")
        assert "\n" not in output


async def test_help_lists_what_works_here(term: tuple[httpx.AsyncClient, str]) -> None:
    http, _ = term
    output, code = await run(http, "help")
    assert code == 0
    assert "list services" in output
    assert "not here: quit, exit, new, run" in output
    output, code = await run(http, "call --help")
    assert code == 0
    assert "usage:" in output
    assert await run(http, "   ") == ("", 0)


async def test_lines_run_side_by_side_with_their_own_output(
    term: tuple[httpx.AsyncClient, str],
) -> None:
    http, name = term
    lines = [f"""call {name} Greeter.SayHello '{{"name": "n{i}"}}'""" for i in range(6)]
    results = await asyncio.gather(*(run(http, line) for line in lines))
    for i, (output, code) in enumerate(results):
        assert (output, code) == (f'{{\n  "msg": "Hello n{i}"\n}}', 0)


async def test_a_command_has_a_time_limit(
    term: tuple[httpx.AsyncClient, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    http, name = term
    monkeypatch.setattr(terminal, "COMMAND_TIMEOUT", 0.5)
    output, code = await run(
        http, f"""stream {name} Ticker.Ticks '{{"to": 1000, "delay": 0.05}}'"""
    )
    assert code == 124
    assert output.splitlines()[0] == '{"n": 1}'
    assert output.splitlines()[-1] == "error: the command did not finish within 0.5s"


async def test_bad_requests(term: tuple[httpx.AsyncClient, str]) -> None:
    http, _ = term
    for body in ({"line": 5}, {}, {"line": "list services\nlist services"}):
        rsp = await http.post("/_/terminal", json=body)
        assert rsp.status_code == 400, body
        assert "line" in rsp.json()["error"]["detail"]
    rsp = await http.post("/_/terminal", content=b"not json")
    assert rsp.status_code == 400
    rsp = await http.get("/_/terminal")
    assert rsp.status_code == 405


async def test_the_terminal_and_the_pages_publish_through_one_broker() -> None:
    # two http brokers in one dashboard would register the process twice, and a tail
    # opened on the page would not share the terminal's connection
    async with serve() as (dash, url), httpx.AsyncClient(base_url=url, timeout=30) as http:
        topic = unique("web-term-one-broker")
        output, code = await run(http, f'publish {topic} {{"n": 1}}')
        assert code == 0, output
        rsp = await http.post("/_/publish", json={"topic": topic, "body": {"n": 2}})
        assert rsp.status_code == 200, rsp.text
        assert getattr(dash.client, "broker", None) is dash.broker
