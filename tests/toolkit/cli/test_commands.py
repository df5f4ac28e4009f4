"""End to end over mDNS: real service processes, the real ``micro`` executable."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.toolkit.cli.conftest import (
    COUNTER,
    FAILING,
    GREETER,
    MICRO,
    Spawn,
    base_env,
    micro,
    micro_json,
    unique,
    wait_registered,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def greeter(spawn: Spawn) -> str:
    name = unique("greeter")
    spawn(GREETER, name)
    wait_registered(name)
    return name


def test_list_and_get_a_running_service(greeter: str) -> None:
    assert greeter in micro_json("list", "services")
    assert greeter in micro_json("services")
    table = micro("list", "services")
    assert table.returncode == 0
    assert greeter in table.stdout.split()

    nodes = micro_json("list", "nodes", greeter)
    assert len(nodes) == 1
    assert nodes[0]["id"].startswith(greeter)
    assert nodes[0]["address"].startswith("127.0.0.1:")
    assert nodes[0]["metadata"]["protocol"] == "mucp"

    [svc] = micro_json("get", "service", greeter)
    assert svc["name"] == greeter
    [ep] = [e for e in svc["endpoints"] if e["name"] == "Greeter.SayHello"]
    assert ep["request"]["values"] == [{"name": "name", "type": "string", "values": None}]
    assert ep["response"]["values"][0]["name"] == "msg"

    text = micro("get", "service", greeter).stdout
    assert f"service  {greeter}" in text
    assert nodes[0]["address"] in text
    assert "Endpoint: Greeter.SayHello" in text
    assert "Request: HelloRequest" in text
    assert "name string" in text
    assert "Response: HelloResponse" in text


def test_call_from_argument_file_and_stdin(greeter: str, tmp_path: Path) -> None:
    assert micro_json("call", greeter, "Greeter.SayHello", '{"name": "Arg"}') == {
        "msg": "Hello Arg"
    }
    request = tmp_path / "req.json"
    request.write_text('{"name": "File"}')
    assert micro_json("call", greeter, "Greeter.SayHello", f"@{request}") == {"msg": "Hello File"}
    piped = micro_json("call", greeter, "Greeter.SayHello", "-", input='{"name": "Stdin"}')
    assert piped == {"msg": "Hello Stdin"}
    address = micro_json("list", "nodes", greeter)[0]["address"]
    done = micro(
        "call", greeter, "Greeter.SayHello", '{"name": "Direct"}',
        "--address", address, "-m", "user=alice", "-m", "trace=1", "--timeout", "2s",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"msg": "Hello Direct"}


def test_call_errors_are_one_line(greeter: str) -> None:
    bad = micro("call", greeter, "Greeter.SayHello", '{"name": }')
    assert bad.returncode == 1
    assert "invalid JSON request (argument) at line 1, column 10" in bad.stderr

    missing = micro("call", unique("nobody"), "Greeter.SayHello", "{}")
    assert missing.returncode == 1
    assert missing.stderr.startswith("micro: service not found: nobody-")

    invalid = micro("call", greeter, "Greeter.SayHello", '{"name": 5}')
    assert invalid.returncode == 1
    assert f"error calling {greeter} Greeter.SayHello" in invalid.stderr
    assert "400" in invalid.stderr

    unknown = micro("call", greeter, "Greeter.Nope", "{}")
    assert unknown.returncode == 1
    assert "Greeter.Nope" in unknown.stderr
    for done in (bad, missing, invalid, unknown):
        assert done.stdout == ""
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_health_and_stats_of_a_healthy_service(greeter: str) -> None:
    [row] = micro_json("health", greeter)
    assert row["status"] == "ok"
    assert row["node"].startswith(greeter)
    table = micro("health", greeter)
    assert table.returncode == 0
    assert "ok" in table.stdout.split()
    [stats] = micro_json("stats", greeter)
    assert stats["stats"]["memory"] > 1_000_000
    assert stats["stats"]["uptime"] >= 0
    assert "MEMORY" in micro("stats", greeter).stdout
    counts = ("requests", "errors", "in_flight")
    assert [stats["stats"][key] for key in counts] == [0, 0, 0]  # health/stats not counted

    assert micro("call", greeter, "Greeter.SayHello", '{"name": "x"}').returncode == 0
    assert micro("call", greeter, "Greeter.Nope", "{}").returncode == 1
    [stats] = micro_json("stats", greeter)
    assert [stats["stats"][key] for key in counts] == [2, 1, 0]
    header, row, note = micro("stats", greeter).stdout.splitlines()
    assert header.split()[7:11] == ["REQUESTS", "ERRORS", "IN", "FLIGHT"]
    assert "latency_p99_us" in note  # every later field is named (0 here: metrics are off)
    # node, address, date, time, uptime, memory (number, unit), threads, gc, then the counts
    assert row.split()[9:12] == ["2", "1", "0"]


def test_health_and_stats_ignore_a_protobuf_content_type(greeter: str) -> None:
    env = base_env(MICRO_CONTENT_TYPE="application/protobuf")
    [row] = micro_json("health", greeter, env=env)
    assert row["status"] == "ok"
    [stats] = micro_json("--content-type", "application/x-protobuf", "stats", greeter)
    assert stats["stats"]["uptime"] >= 0


def test_failing_service(spawn: Spawn) -> None:
    name = unique("failing")
    spawn(FAILING, name)
    deadline = time.monotonic() + 15
    while len(micro_json_safe("list", "nodes", name)) < 2:
        assert time.monotonic() < deadline, "ghost node never appeared"
        time.sleep(0.2)

    live = [n["address"] for n in micro_json("list", "nodes", name) if "ghost" not in n["id"]]
    fail = micro("call", name, "Failing.Fail", "{}", "--address", live[0])
    assert fail.returncode == 1
    assert f"error calling {name} Failing.Fail: it failed on purpose (500" in fail.stderr

    started = time.monotonic()
    slow = micro("call", name, "Failing.Slow", "{}", "--timeout", "0.5", "--address", live[0])
    assert time.monotonic() - started < 10
    assert slow.returncode == 1
    assert slow.stderr.strip() == f"micro: timeout after 0.5s calling {name} Failing.Slow"

    health = micro("-o", "json", "health", name)
    assert health.returncode == 1  # one node is dead
    rows = {r["node"]: r for r in json.loads(health.stdout)}
    assert rows[f"{name}-ghost"]["error"]
    assert [r["status"] for k, r in rows.items() if k != f"{name}-ghost"] == ["ok"]
    table = micro("health", name)
    assert table.returncode == 1
    assert "error:" in table.stdout
    assert " ok" in table.stdout
    assert "Traceback" not in table.stderr

    stats = micro("-o", "json", "stats", name)
    assert stats.returncode == 1
    by_node = {r["node"]: r for r in json.loads(stats.stdout)}
    assert "error" in by_node[f"{name}-ghost"]
    assert sum("stats" in r for r in by_node.values()) == 1


def micro_json_safe(*args: str) -> list[object]:
    done = micro("-o", "json", *args)
    return json.loads(done.stdout) if done.returncode == 0 else []


@pytest.fixture
def counter(spawn: Spawn) -> str:
    name = unique("counter")
    spawn(COUNTER, name)
    wait_registered(name)
    return name


def test_stream_prints_each_response_as_it_comes(counter: str) -> None:
    with subprocess.Popen(
        [MICRO, "stream", counter, "Counter.Count", '{"to": 3, "delay": 0.6}'],
        env=base_env(),
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        first_at = time.monotonic()
        rest = proc.stdout.read()
        done_at = time.monotonic()
        assert proc.wait(timeout=10) == 0
    assert json.loads(first) == {"n": 1}
    assert [json.loads(line) for line in rest.splitlines()] == [{"n": 2}, {"n": 3}]
    assert done_at - first_at > 0.9  # the first line was out before the others existed


def test_stream_json_output_and_bidi_from_stdin(counter: str) -> None:
    assert micro_json("stream", counter, "Counter.Count", '{"to": 2, "delay": 0}') == [
        {"n": 1},
        {"n": 2},
    ]
    lines = '{"text": "a"}\n{"text": "bc"}\n'
    echoed = micro_json("stream", counter, "Counter.Echo", "-", input=lines)
    assert echoed == [{"text": "A"}, {"text": "BC"}]
    bad = micro("stream", counter, "Counter.Count", '{"to": "x"}')
    assert bad.returncode == 1
    assert f"error calling {counter} Counter.Count" in bad.stderr


@pytest.mark.parametrize("output", ["table", "json"])
def test_stream_on_a_unary_endpoint_says_to_use_call(greeter: str, output: str) -> None:
    listed = micro("-o", output, "stream", greeter, "Greeter.SayHello", '{"name": "x"}')
    unlisted = micro("-o", output, "stream", greeter, "Debug.Health")  # found out by answer
    address = micro_json("list", "nodes", greeter)[0]["address"]
    direct = micro("stream", "-a", address, greeter, "Greeter.SayHello", '{"name": "x"}')
    for done in (listed, unlisted, direct):
        assert done.returncode == 2, done.stderr
        assert done.stdout == ""
        [line] = done.stderr.strip().splitlines()
        assert "not a stream" in line
    assert f"micro call {greeter} Greeter.SayHello" in listed.stderr
    assert f"micro call {greeter} Debug.Health" in unlisted.stderr


def test_stream_to_an_address_still_streams(counter: str) -> None:
    address = micro_json("list", "nodes", counter)[0]["address"]
    done = micro_json("stream", "-a", address, counter, "Counter.Count", '{"to": 2, "delay": 0}')
    assert done == [{"n": 1}, {"n": 2}]
